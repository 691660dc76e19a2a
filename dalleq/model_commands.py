"""`dalleq weights` and `dalleq generate`: the model from the command line, without the queue.

At import this module needs only click and JAX-free modules; JAX and the pipeline are imported
inside the commands, so `dalleq serve` and `dalleq --help` run on a machine without the model
stack (STYLE 7). The limits (grid size, seed and knob ranges) are the queue's (server/defaults.py),
so anything made here could have been a job, and its PNGs carry the text a job's do
(minidalle.grid.image_text) plus the dtype. The sampling defaults are pipeline.SamplingParams's
(tests/test_sampling.py holds the queue's, in server/defaults.py, equal to them).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path

import click

from minidalle import weights as hub
from server import defaults
from server.storage import tile_name

from .memory_check import BYTES_PER_GB, WORKER_BATCH_IMAGES, describe_plan, model_config
from .progress import progress_callback

# config.DTYPE_FROM_NAME's short names (config needs JAX); int8 is weight-only (minidalle/quantize.py)
DTYPE_NAMES = ("fp32", "bf16", "fp16", "int8")
# `weights info` plans every dtype, whether or not this machine can run it.
INFO_DTYPE_NAMES = DTYPE_NAMES
MODEL_STACK_HINT = "install the model stack: python3 -m pip install -e '.[model]'"
RANDOM_WEIGHTS_NOTE = "its images are noise-like patterns, not pictures of the prompt"


def sampling_defaults():
    """pipeline.SamplingParams() (imports JAX)."""
    from minidalle.pipeline import SamplingParams

    return SamplingParams()


class SamplingOption(click.Option):
    """A sampling knob whose click default is None ("not given": SamplingParams fills it in).

    --help still shows SamplingParams's default, read only while help is drawn, so building the
    command imports no JAX; without the model stack the help just leaves the default out.
    """

    def get_help_extra(self, ctx):
        extra = super().get_help_extra(ctx)
        try:
            default = getattr(sampling_defaults(), self.name)
        except ImportError:
            return extra
        if default is not None:
            extra["default"] = str(default)
        return extra


def cache_option(command):
    return click.option(
        "--cache", type=click.Path(file_okay=False, path_type=Path), envvar=hub.MODELS_ENV,
        show_envvar=True, metavar="DIR", show_default="~/.cache/dalle-queue/models",
        help="Where fetched models live, one folder each.",
    )(command)


def check_prompt(ctx, param, value: str) -> str:
    """The queue's rule for prompts (server/validation.py): stripped, not empty, not too long."""
    prompt = value.strip()
    if not prompt:
        raise click.BadParameter("the prompt is empty")
    if len(prompt) > defaults.PROMPT_MAX_CHARS:
        raise click.BadParameter(
            f"the prompt has {len(prompt)} characters; the most is {defaults.PROMPT_MAX_CHARS}"
        )
    return prompt


@click.group()
def weights():
    """Get model weights: the published checkpoints, or a tiny random model."""


@weights.command("fetch")
@click.argument("name", metavar="NAME", type=click.Choice(hub.FETCH_NAMES))
@cache_option
def weights_fetch(name, cache):
    """Download the published NAME checkpoint (mini or mega) and its VQGAN from huggingface.co;
    clip downloads CLIP ViT-B/32, which the worker ranks tiles with.

    Files already downloaded are not downloaded again: running it again resumes or checks.
    """
    folder = hub.model_folder(name, cache)
    click.echo(f"fetching {name} (about {hub.DOWNLOAD_GB_FROM_NAME[name]} GB) into {folder}",
               err=True)
    try:
        hub.fetch(name, cache)
    except ImportError as error:
        raise click.ClickException(
            f"fetching needs huggingface_hub ({error}); {MODEL_STACK_HINT}"
        ) from None
    except hub.WeightsError as error:
        raise click.ClickException(str(error)) from None
    if name == hub.CLIP_NAME:
        click.echo(f"clip is ready in {folder}: the worker ranks each grid's tiles with it")
    else:
        click.echo(f"{name} is ready in {folder}: dalleq generate --model {name} \"a red apple\"")


@weights.command("tiny")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(0, defaults.SEED_MAX), default=0, show_default=True,
              help="Seed of the random weights.")
def weights_tiny(folder, seed):
    """Write a tiny model with RANDOM weights to DIR, in the published layout.

    It loads and generates in seconds on a CPU, for tests and demos. DIR/clip holds a tiny CLIP
    (random too) in CLIP's published layout, to rank its tiles.
    """
    try:
        from minidalle.tiny import write_tiny_checkpoint
    except ImportError as error:
        raise click.ClickException(f"{error}; {MODEL_STACK_HINT}") from None
    write_tiny_checkpoint(folder, seed)
    click.echo(f"wrote {folder}: a tiny model with RANDOM weights; {RANDOM_WEIGHTS_NOTE}")


@weights.command("info")
@click.argument("model", metavar="NAME|DIR")
@click.option("--batch", "image_count", type=click.IntRange(1, 1024), metavar="N",
              default=WORKER_BATCH_IMAGES, show_default=True,
              help="Images generated together; the default is what a worker runs at once with "
                   "its defaults (--max-batch jobs of up to the largest grid).")
@click.option("--dtype", type=click.Choice(INFO_DTYPE_NAMES), default=DTYPE_NAMES[0],
              show_default=True, help="The precision --device-memory is checked for.")
@click.option("--device-memory", "device_memory_gb", type=click.FloatRange(0, min_open=True),
              metavar="GB", help="Also say whether the model fits in this much device memory.")
@cache_option
def weights_info(model, image_count, dtype, device_memory_gb, cache):
    """Print what NAME (mini or mega) or the model in DIR needs in memory: its parameter count,
    and its weights, KV cache and activations at each dtype.

    Computed from config.json alone (the published values if NAME is not fetched): nothing is
    downloaded or loaded.
    """
    try:
        from minidalle.memory_plan import PLAN_DTYPES, check_fit
    except ImportError as error:
        raise click.ClickException(f"{error}; {MODEL_STACK_HINT}") from None
    config, vqgan_config, source = model_config(model, cache)
    label = model if model in hub.MODEL_NAMES else Path(model).name
    click.echo(describe_plan(label, config, vqgan_config, image_count, source))
    if device_memory_gb is not None:
        fit = check_fit(config, dtype, image_count, int(device_memory_gb * BYTES_PER_GB),
                        model_label=label, device_label="the device",
                        dtypes=PLAN_DTYPES, vqgan_config=vqgan_config)
        click.echo(f"{'fits' if fit.is_ok else 'does not fit'}: {fit.message}")


@click.command()
@click.argument("prompt", callback=check_prompt)
@click.option("--model", "model_name", default=defaults.DEFAULT_MODEL, show_default=True,
              envvar="DALLEQ_DEFAULT_MODEL", show_envvar=True, metavar="mini|mega|DIR",
              help="A fetched model (dalleq weights fetch NAME) or a model folder.")
@click.option("--vqgan", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="VQGAN folder; the model folder's vqgan/ unless given.")
@cache_option
@click.option("--seed", type=click.IntRange(0, defaults.SEED_MAX),
              help="Seed; the same seed, prompt and knobs give the same images. Random (and "
                   "printed) unless given.")
@click.option("--grid", "grid_side", type=click.IntRange(defaults.GRID_MIN, defaults.GRID_MAX),
              default=defaults.GRID_DEFAULT, show_default=True,
              help="Tiles per side: --grid 3 makes 9 images.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default="grid.png", show_default=True, help="Where to write the grid PNG.")
@click.option("--tiles-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also write each tile there as tile_<i>.png (i from 0, row by row).")
@click.option("--dtype", type=click.Choice(DTYPE_NAMES), default=DTYPE_NAMES[0], show_default=True,
              help="Transformer precision; int8: weight-only, the smallest (approximate). The VQGAN "
                   "always runs in fp32.")
@click.option("--temperature", cls=SamplingOption,
              type=click.FloatRange(0, defaults.TEMPERATURE_MAX, min_open=True),
              help="Sampling temperature; higher is more varied.")
@click.option("--top-k", cls=SamplingOption, type=click.IntRange(0, defaults.TOP_K_MAX),
              help="Draw from the k likeliest codes; 0 turns it off.")
@click.option("--top-p", cls=SamplingOption, type=click.FloatRange(0, 1, min_open=True),
              help="Draw from the likeliest codes whose probabilities add up to p; off unless "
                   "given.")
@click.option("--condition-scale", cls=SamplingOption,
              type=click.FloatRange(defaults.CONDITION_SCALE_MIN, defaults.CONDITION_SCALE_MAX),
              help="Super-conditioning: how far the prompt outweighs an empty prompt.")
def generate(prompt, model_name, vqgan, cache, seed, grid_side, output, tiles_dir, dtype,
             **knobs):
    """Generate a grid of images of PROMPT on this machine and write it as a PNG.

    The PNGs carry the prompt, seed, model and knobs as text, like the queue's.
    """
    try:
        from minidalle.pipeline import SamplingParams
    except ImportError as error:
        raise click.ClickException(
            f"generating needs the model stack ({error}); {MODEL_STACK_HINT}"
        ) from None
    if seed is None:
        seed = secrets.randbelow(defaults.SEED_MAX + 1)
        click.echo(f"random seed {seed}", err=True)
    params = SamplingParams(**{name: value for name, value in knobs.items() if value is not None})

    started_seconds = time.perf_counter()
    pipeline = load_pipeline(model_name, vqgan, cache, dtype)
    loaded_seconds = time.perf_counter()
    tile_count = grid_side * grid_side
    with progress_callback(pipeline.config.image_length,
                           f"{grid_side}x{grid_side} grid") as on_progress:
        images = pipeline.generate(prompt, seed, tile_count, **dataclasses.asdict(params),
                                   on_progress=on_progress)
    generated_seconds = time.perf_counter()

    from minidalle.grid import image_text

    metadata = image_text(prompt, seed, model_name, dataclasses.asdict(params), dtype)
    write_images(images, metadata, output, tiles_dir)
    click.echo(
        f"wrote {output} ({grid_side}x{grid_side}, seed {seed}) in "
        f"{time.perf_counter() - started_seconds:.1f} s: "
        f"load {loaded_seconds - started_seconds:.1f} s, "
        f"generate {generated_seconds - loaded_seconds:.1f} s"
    )


def load_pipeline(model_name: str, vqgan: Path | None, cache: Path | None, dtype: str):
    """Pipeline.load for --model/--vqgan, with every way it can fail told as one line."""
    from minidalle.pipeline import Pipeline
    from minidalle.tiny import is_random_weights

    try:
        model_dir = hub.resolve_model(model_name, cache)
    except hub.WeightsError as error:
        raise click.ClickException(str(error)) from None
    if is_random_weights(model_dir):
        click.echo(f"{model_dir} has RANDOM weights: {RANDOM_WEIGHTS_NOTE}", err=True)
    try:
        return Pipeline.load(model_dir, vqgan, dtype=dtype)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"could not load the model in {model_dir}: {error}") from None


def write_images(images, metadata: dict, output: Path, tiles_dir: Path | None) -> None:
    """The grid to output and, with tiles_dir, tile_<i>.png there; every PNG carries metadata."""
    from minidalle.grid import make_grid, png_bytes

    try:
        write_png(output, png_bytes(make_grid(images), metadata))
        for index, image in enumerate(images if tiles_dir is not None else []):
            write_png(tiles_dir / tile_name(index), png_bytes(image, metadata))
    except OSError as error:
        raise click.ClickException(f"could not write the images: {error}") from None


def write_png(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
