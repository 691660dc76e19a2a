"""`dalleq worker`: the GPU box's side of the queue (shared/API.md, "For workers").

The model stack (JAX) is imported only when it runs.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import click

from minidalle import weights as hub
from worker import defaults
from worker.previews import PreviewSetting

from .logs import configure_logging
from .memory_check import check_worker_memory
from .model_commands import DTYPE_NAMES, cache_option, load_pipeline
from .parent_pipe import exit_with_parent
from .ranking import load_ranker

log = logging.getLogger(__name__)

SPOOL_ENV = "DALLEQ_SPOOL_DIR"


def default_spool_dir(worker_name: str) -> Path:
    return hub.default_cache().parent / "spool" / worker_name


def advertised_name(model: str, folder: Path) -> str:
    """mini/mega/demo keep their name; a model folder is known by the folder's name."""
    return model if model in hub.NAMED_MODELS else folder.resolve().name


def device_description() -> str:
    import jax

    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


class PreviewsType(click.ParamType):
    """`--previews off|auto|N` as a worker.previews.PreviewSetting."""

    name = "previews"

    def convert(self, value, param, ctx):
        if isinstance(value, PreviewSetting):
            return value
        try:
            return PreviewSetting.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def worker_options(command, model_default: str | None = "mini", model_help: str = ""):
    """The flags `dalleq worker` and `dalleq up` share."""
    options = [
        click.option("--model", "model", envvar="DALLEQ_DEFAULT_MODEL", show_envvar=True,
                     metavar="mini|mega|DIR", default=model_default,
                     show_default=model_default is not None,
                     help="A fetched model (dalleq weights fetch NAME) or a model folder."
                          + model_help),
        click.option("--dtype", type=click.Choice(DTYPE_NAMES), envvar="DALLEQ_DTYPE",
                     show_envvar=True, default="fp32", show_default=True,
                     help="Transformer precision (bf16 on a GPU; int8: weight-only, the smallest, "
                          "approximate); the VQGAN runs in fp32."),
        click.option("--max-batch", type=click.IntRange(1, 64), envvar="DALLEQ_MAX_BATCH",
                     show_envvar=True, default=defaults.MAX_BATCH, show_default=True,
                     help="Jobs claimed and generated together; each keeps its own images."),
        click.option("--rank/--no-rank", default=None, envvar="DALLEQ_RANK", show_envvar=True,
                     show_default="when a CLIP is found",
                     help="Score each image against the prompt with CLIP (the model folder's "
                          "own, or dalleq weights fetch clip); pages show the best first."),
        click.option("--previews", type=PreviewsType(), envvar="DALLEQ_PREVIEWS",
                     show_envvar=True, metavar="off|auto|N", default=defaults.PREVIEWS,
                     show_default=True,
                     help="Live previews of the grid forming, posted while a job runs: every N "
                          "steps, or auto: as often as keeps them under 10% of a job's time."),
    ]
    for option in reversed(options):
        command = option(command)
    return cache_option(command)


@click.command("worker")
@click.option("--server", "server_url", envvar="DALLEQ_SERVER", show_envvar=True, required=True,
              metavar="URL", help="The queue server, e.g. http://100.x.y.z:8000.")
@click.option("--token", envvar="DALLEQ_WORKER_TOKEN", show_envvar=True, required=True,
              help="The server's worker token.")
@worker_options
@click.option("--model-name", envvar="DALLEQ_MODEL_NAME", show_envvar=True,
              help="Model name to claim jobs for; mini/mega, or the model folder's name.")
@click.option("--name", envvar="DALLEQ_WORKER_NAME", show_envvar=True,
              default=socket.gethostname, show_default="this host's name",
              help="This worker's name in the server's log.")
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path),
              envvar=SPOOL_ENV, show_envvar=True, metavar="DIR",
              show_default="~/.cache/dalle-queue/spool/NAME",
              help="Where finished results wait until the server has them.")
@click.option("--once", is_flag=True,
              help="Serve what is queued now (one batch), then exit: for scripts and cron. "
                   "Exits with status 1 if the server can't be reached.")
@click.option("--stop-retry", "stop_retry_seconds", type=click.FloatRange(0), metavar="SECONDS",
              envvar="DALLEQ_STOP_RETRY_SECONDS", show_envvar=True,
              default=defaults.STOP_RETRY_SECONDS, show_default=True,
              help="After Ctrl-C or SIGTERM, how long an unreachable server is retried before "
                   "the worker exits, leaving its results in the spool.")
@click.option("--device-memory", "device_memory_gb", type=click.FloatRange(0, min_open=True),
              envvar="DALLEQ_DEVICE_MEMORY", show_envvar=True, metavar="GB",
              show_default="what the device reports",
              help="Device memory the model may use: the worker refuses to start if its memory "
                   "plan (dalleq weights info) needs more.")
@click.option("--parent-fd", type=int, hidden=True,
              help="dalleq up: a pipe whose closing (its parent died) ends this worker at once.")
def worker(server_url, token, model, dtype, max_batch, rank, previews, cache, model_name, name,
           spool, once, stop_retry_seconds, device_memory_gb, parent_fd):
    """Claim jobs from the queue, generate them here, post the images back.

    Runs until Ctrl-C or SIGTERM: the first lets the current batch finish, a second hands the
    leases back. Results that cannot be uploaded wait in the spool folder and are posted later.
    """
    configure_logging()
    if parent_fd is not None:
        exit_with_parent(parent_fd)
    raise SystemExit(run_worker(server_url, token, model, dtype, max_batch, cache, model_name,
                                name, spool, once, stop_retry_seconds, rank, previews,
                                device_memory_gb=device_memory_gb))


def run_worker(server_url, token, model, dtype, max_batch, cache, model_name, name, spool,
               once, stop_retry_seconds=defaults.STOP_RETRY_SECONDS, rank=None,
               previews: PreviewSetting | str = defaults.PREVIEWS,
               device_memory_gb: float | None = None) -> int:
    from worker.runner import ModelInfo, Worker, WorkerOptions
    from worker.stopping import StopRequests, stops_at_once

    with stops_at_once("loading the model"):  # nothing is claimed yet: nothing to finish
        log.info("loading the model %s (Ctrl-C stops at once: nothing is claimed until it is "
                 "ready)", model)
        folder = model_folder(model, cache)
        check_worker_memory(advertised_name(model, folder), folder, dtype, max_batch,
                            device_memory_gb, DTYPE_NAMES)
        clip = load_ranker(rank, folder, cache)  # first: a missing CLIP is told before the long load
        pipeline = load_pipeline(str(folder), None, cache, dtype)
    stop = StopRequests()
    stop.install()
    from minidalle.tiny import is_random_weights  # JAX: loaded by now

    label = advertised_name(model, folder)
    options = WorkerOptions(server_url=server_url, token=token, name=name,
                            model_name=model_name or label,
                            spool_dir=spool or default_spool_dir(name), max_batch=max_batch,
                            is_once=once, stop_retry_seconds=stop_retry_seconds,
                            previews=PreviewsType().convert(previews, None, None))
    info = ModelInfo(label=label, dtype=dtype, device=device_description(),
                     is_random_weights=is_random_weights(folder))
    ranker = None
    if clip is not None:
        clip_dir, ranker = clip
        log.info("ranking each job's images with CLIP from %s", clip_dir)
    return Worker(options, pipeline, info, stop=stop, ranker=ranker).run()


def model_folder(model: str, cache: Path | None) -> Path:
    """The folder of --model (the demo is written on first use), a failure told as one line."""
    try:
        return hub.resolve_model(model, cache)
    except hub.WeightsError as error:
        raise click.ClickException(str(error)) from None
