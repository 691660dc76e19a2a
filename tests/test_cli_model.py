"""`dalleq weights` and `dalleq generate`, run the way a person runs them.

The model is the tiny random checkpoint that `dalleq weights tiny` writes (STYLE 9), built once per
module because writing and compiling it take most of this file's time. Fetching can't reach the
hub here, which is exactly the path a person without internet access takes, so that is what the
fetch tests check, in a subprocess: huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT when it is
first imported, so only a fresh process sees them.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dalleq.cli import main
from minidalle import weights
from tests import test_docs
from tests.helpers import REPO, TILE, free_port


def dalleq(*args, env=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], prog_name="dalleq", env=env)


@pytest.fixture(scope="module")
def jax_cache_env(tmp_path_factory):
    """Keep the compiled programs Pipeline.load caches out of the home folder."""
    return {"DALLEQ_JAX_CACHE": str(tmp_path_factory.mktemp("jax-cache"))}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    result = dalleq("weights", "tiny", folder, "--seed", 0)
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.stdout and str(folder) in result.stdout
    return folder


@pytest.fixture(scope="module")
def two_runs(tiny_model, jax_cache_env, tmp_path_factory):
    """The same generate command twice, the first also writing its tiles."""
    out = tmp_path_factory.mktemp("out")
    results = [
        dalleq("generate", "a red apple", "--model", tiny_model, "--grid", 2, "--seed", 3,
               "-o", out / f"grid_{run}.png", *(["--tiles-dir", out / "tiles"] if run == 0 else []),
               env=jax_cache_env)
        for run in range(2)
    ]
    for result in results:
        assert result.exit_code == 0, result.output
    return out, results


def test_weights_tiny_writes_a_folder_the_pipeline_loads(tiny_model):
    from minidalle.pipeline import Pipeline
    from minidalle.tiny import is_random_weights

    pipeline = Pipeline.load(tiny_model, compilation_cache_dir=False)
    assert pipeline.model_dir == tiny_model and pipeline.code_count == 16384
    assert is_random_weights(tiny_model)
    assert weights.resolve_model(str(tiny_model)) == tiny_model


def test_generate_writes_a_grid_png_with_its_metadata(two_runs, tiny_model):
    from minidalle.pipeline import SamplingParams

    out, results = two_runs
    with Image.open(out / "grid_0.png") as grid:
        assert grid.format == "PNG" and grid.size == (2 * TILE, 2 * TILE)
        text = dict(grid.text)
    assert text["prompt"] == "a red apple" and text["seed"] == "3"
    assert text["model"] == str(tiny_model) and text["dtype"] == "fp32"
    assert json.loads(text["params"]) == dataclasses.asdict(SamplingParams())
    assert f"wrote {out / 'grid_0.png'} (2x2, seed 3)" in results[0].stdout
    assert "RANDOM weights" in results[0].stderr
    assert "2x2 grid" not in results[0].stderr  # no progress bar, not even its label, off a tty


def test_generate_is_byte_identical_across_runs(two_runs):
    out, _ = two_runs
    assert (out / "grid_0.png").read_bytes() == (out / "grid_1.png").read_bytes()


def test_tiles_are_the_grids_quadrants(two_runs):
    out, _ = two_runs
    assert sorted(path.name for path in (out / "tiles").iterdir()) == [
        f"tile_{index}.png" for index in range(4)
    ]
    grid = np.asarray(Image.open(out / "grid_0.png"))
    for index in range(4):
        with Image.open(out / "tiles" / f"tile_{index}.png") as tile:
            assert tile.size == (TILE, TILE) and tile.text["seed"] == "3"
            row, column = divmod(index, 2)
            quadrant = grid[row * TILE:(row + 1) * TILE, column * TILE:(column + 1) * TILE]
            np.testing.assert_array_equal(np.asarray(tile), quadrant)


def test_generate_without_a_seed_picks_one_and_prints_it(tiny_model, jax_cache_env, tmp_path):
    result = dalleq("generate", "a red apple", "--model", tiny_model, "--grid", 2,
                    "-o", tmp_path / "grid.png", env=jax_cache_env)
    assert result.exit_code == 0, result.output
    printed_seed = result.stderr.split("random seed ", 1)[1].split()[0]
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.text["seed"] == printed_seed
    assert f"seed {printed_seed})" in result.stdout


def test_generate_int8_writes_its_dtype_and_repeats_byte_for_byte(tiny_model, jax_cache_env,
                                                                  tmp_path):
    paths = [tmp_path / f"int8_{run}.png" for run in range(2)]
    for path in paths:
        result = dalleq("generate", "a red apple", "--model", tiny_model, "--seed", 3,
                        "--dtype", "int8", "-o", path, env=jax_cache_env)
        assert result.exit_code == 0, result.output
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with Image.open(paths[0]) as grid:
        assert grid.text["dtype"] == "int8"


@pytest.mark.parametrize("args, message", [
    (["--grid", 0], "'--grid': 0 is not in the range 1<=x<=4"),
    (["--grid", 5], "'--grid': 5 is not in the range 1<=x<=4"),
    (["--grid", "two"], "'two' is not a valid integer"),
    (["--seed", -1], "'--seed'"),
    (["--temperature", 0], "'--temperature'"),
    (["--top-k", 20000], "'--top-k'"),
    (["--top-p", 1.5], "'--top-p'"),
    (["--condition-scale", 0.5], "'--condition-scale'"),
    (["--dtype", "fp8"], "'fp8' is not one of 'fp32', 'bf16', 'fp16', 'int8'"),
])
def test_bad_options_are_usage_errors(tiny_model, args, message):
    result = dalleq("generate", "a red apple", "--model", tiny_model, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_fetch_knows_only_the_published_models():
    result = dalleq("weights", "fetch", "huge")
    assert result.exit_code == 2 and "'huge' is not one of 'mini', 'mega'" in result.stderr


@pytest.mark.parametrize("prompt, message", [("  ", "the prompt is empty"),
                                             ("a" * 501, "the most is 500")])
def test_bad_prompts_are_usage_errors(tiny_model, prompt, message):
    result = dalleq("generate", prompt, "--model", tiny_model)
    assert result.exit_code == 2 and message in result.stderr


def test_a_missing_model_folder_is_a_clear_error(tmp_path):
    result = dalleq("generate", "a red apple", "--model", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'nowhere'} does not exist: give mini or mega" in result.stderr
    assert "dalleq weights tiny DIR" in result.stderr
    assert isinstance(result.exception, SystemExit)  # handled: no traceback
    assert "Traceback" not in result.output


def test_an_unfetched_model_says_how_to_fetch_it(tmp_path):
    result = dalleq("generate", "a red apple", "--model", "mega", "--cache", tmp_path)
    assert result.exit_code == 1
    assert f"the mega weights are not in {tmp_path / 'mega'}" in result.stderr
    assert "run `dalleq weights fetch mega` first" in result.stderr


def test_a_broken_model_folder_names_what_is_wrong(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text())
    result = dalleq("generate", "a red apple", "--model", broken)
    assert result.exit_code == 1
    assert f"could not load the model in {broken}" in result.stderr
    assert "Traceback" not in result.output


def fetch_in_a_fresh_process(cache, tmp_path, name="mini", **env):
    """`python -m dalleq weights fetch NAME` with the hub settings in env and no cached token."""
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith(("HF_", "HUGGING_FACE"))}
    environ.update(HF_HOME=str(tmp_path / "hf-home"), **env)
    return subprocess.run(
        [sys.executable, "-m", "dalleq", "weights", "fetch", name, "--cache", str(cache)],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("hub_env", [
    {"HF_HUB_OFFLINE": "1"},
    {"HF_ENDPOINT": "http://127.0.0.1:{port}"},  # nothing listens there
], ids=["offline", "unreachable"])
def test_fetch_without_the_hub_explains_and_exits_1(tmp_path, hub_env):
    hub_env = {name: value.format(port=free_port()) for name, value in hub_env.items()}
    cache = tmp_path / "models"
    done = fetch_in_a_fresh_process(cache, tmp_path, **hub_env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    message = done.stderr.split("Error: ", 1)[1]
    assert message.startswith("Could not download the mini weights: dalle-mini/dalle-mini failed")
    assert "needs internet access to https://huggingface.co" in message
    assert f"enwiki-words-frequency.txt from https://huggingface.co/dalle-mini/dalle-mini into " \
           f"{cache / 'mini'}" in message
    assert f"revision {weights.VQGAN_COMMIT} into {cache / 'mini' / 'vqgan'}" in message
    assert message.count("\n") == 1  # one paragraph


def test_fetch_clip_without_the_hub_names_its_repo_and_files(tmp_path):
    cache = tmp_path / "models"
    done = fetch_in_a_fresh_process(cache, tmp_path, name="clip", HF_HUB_OFFLINE="1")
    assert done.returncode == 1, done.stderr
    message = done.stderr.split("Error: ", 1)[1]
    assert message.startswith("Could not download the clip weights: openai/clip-vit-base-patch32")
    assert f"special_tokens_map.json from https://huggingface.co/openai/clip-vit-base-patch32 " \
           f"into {cache / 'clip'}" in message
    assert "Then the worker finds them." in message


def test_fetch_offline_over_a_partial_folder_lists_what_is_missing(tmp_path):
    vqgan = tmp_path / "models" / "mini" / "vqgan"
    vqgan.mkdir(parents=True)
    for name in weights.VQGAN_FILES:
        (vqgan / name).write_text("{}")
    done = fetch_in_a_fresh_process(tmp_path / "models", tmp_path, HF_HUB_OFFLINE="1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "still lacks config.json, flax_model.msgpack, vocab.json" in done.stderr
    assert "vqgan/config.json" not in done.stderr.split("still lacks", 1)[1].split("(")[0]


def test_resolve_model_finds_fetched_models_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.MODELS_ENV, str(tmp_path / "cache"))
    folder = weights.model_folder("mega")
    assert folder == tmp_path / "cache" / "mega"
    with pytest.raises(weights.WeightsError, match=r"run `dalleq weights fetch mega` first"):
        weights.resolve_model("mega")
    for path in weights.missing_files("mega", folder):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert weights.resolve_model("mega") == folder
    with pytest.raises(weights.WeightsError, match="elsewhere/mega"):  # the argument wins
        weights.resolve_model("mega", tmp_path / "elsewhere")

    assert weights.resolve_model(str(folder)) == folder  # a folder with config.json is itself
    with pytest.raises(weights.WeightsError, match="has no config.json"):
        weights.resolve_model(tmp_path)
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.resolve_model(tmp_path / "nowhere")
    with pytest.raises(weights.WeightsError, match="unknown model 'huge'"):
        weights.model_folder("huge")


def test_fetch_lays_out_the_files_the_loaders_read():
    from dalleq.model_commands import DTYPE_NAMES
    from minidalle import checkpoint, clip, config, pipeline, text, tiny, tokenizer, vqgan

    assert weights.CONFIG_FILE == config.CONFIG_FILE
    assert set(weights.DALLE_BART_FILES) == {
        config.CONFIG_FILE, checkpoint.MODEL_FILE, *tokenizer.TOKENIZER_FILES
    }
    assert weights.WORD_FREQUENCY_FILE == text.WORD_FREQUENCY_FILE
    assert weights.VQGAN_FILES == (vqgan.CONFIG_FILE_NAME, vqgan.PARAMS_FILE_NAME)
    assert weights.VQGAN_SUBFOLDER == pipeline.VQGAN_SUBFOLDER
    assert set(DTYPE_NAMES) <= set(config.DTYPE_FROM_NAME)
    for name in weights.MODEL_NAMES:
        file_names = [name for source in weights.SOURCES_FROM_NAME[name]
                      for name in source.file_names]
        assert weights.WORD_FREQUENCY_FILE in file_names
    # CLIP's tokenizer file set has the same names as BART's
    assert set(weights.CLIP_FILES) == {
        clip.CONFIG_FILE, checkpoint.MODEL_FILE, *tokenizer.TOKENIZER_FILES
    }
    assert weights.CLIP_SUBFOLDER == tiny.CLIP_SUBFOLDER


def test_help_shows_the_pipelines_sampling_defaults():
    from minidalle.pipeline import SamplingParams

    help_text = " ".join(dalleq("generate", "--help").output.split())
    defaults = SamplingParams()
    for option, value in [("--temperature", defaults.temperature), ("--top-k", defaults.top_k),
                          ("--condition-scale", defaults.condition_scale)]:
        assert f"{option} " in help_text and f"[default: {value};" in help_text


@pytest.mark.parametrize("words", [["weights", "fetch"], ["weights", "tiny"], ["generate"]])
def test_readme_command_reference_matches_help(words):
    test_docs.test_readme_command_reference_matches_help(words)


def test_serve_and_help_need_no_model_stack():
    """With JAX and the hub client unimportable, `dalleq` still starts and explains `generate`."""
    script = (
        "import sys\n"
        "for name in ('jax', 'flax', 'huggingface_hub', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "from click.testing import CliRunner\n"
        "from dalleq.cli import main\n"
        "for args in (['--help'], ['serve', '--help'], ['generate', '--help'], 'modules',\n"
        "             ['generate', 'a red apple']):\n"
        "    if args == 'modules':\n"
        "        print(sorted(name for name in sys.modules if name.startswith('minidalle')))\n"
        "        continue\n"
        "    result = CliRunner().invoke(main, args, prog_name='dalleq')\n"
        "    print(result.exit_code, result.output.replace(chr(10), ' '))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:3]] == ["0", "0", "0"]
    assert lines[3] == "['minidalle', 'minidalle.weights']"
    assert lines[4].startswith("1 ") and "generating needs the model stack" in lines[4]
    assert ".[model]" in lines[4]


def test_model_demo_is_written_on_first_use_and_generates(jax_cache_env, tmp_path):
    from minidalle.tiny import is_random_weights

    cache = tmp_path / "models"
    result = dalleq("generate", "a red apple", "--model", "demo", "--cache", cache, "--grid", 1,
                    "--seed", 3, "-o", tmp_path / "grid.png", env=jax_cache_env)
    assert result.exit_code == 0, result.output
    assert f"{cache / 'demo'} has RANDOM weights" in result.stderr
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.text["model"] == "demo"
    folder = weights.resolve_model("demo", cache)
    assert folder == cache / "demo" and is_random_weights(folder)
    written = (folder / "config.json").stat().st_mtime_ns
    assert weights.resolve_model("demo", cache) == folder  # kept, not written again
    assert (folder / "config.json").stat().st_mtime_ns == written
    assert sorted(path.name for path in cache.iterdir()) == ["demo"]  # no scratch folder left


def test_the_worker_and_up_take_model_demo(tmp_path, monkeypatch):
    """`up` runs the model it is given through run_up, which resolves it as generate does
    (tests/test_up_browser.py runs the whole of it); unset, it is the demo."""
    from dalleq import up
    from dalleq.worker_command import advertised_name

    assert advertised_name("demo", tmp_path / "models" / "demo") == "demo"
    models = []
    monkeypatch.setattr(up, "run_up", lambda settings, **options: models.append(options["model"]))
    for model_args in (["--model", "demo"], []):
        result = dalleq("up", *model_args, "--db", tmp_path / "q.db", "--data", tmp_path / "data")
        assert result.exit_code == 0, result.output
    assert models == ["demo", "demo"]
