"""`dalleq worker`: the GPU box's side of the queue (shared/API.md, "For workers").

The model stack (JAX) is imported only when it runs.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import click

from minidalle import weights as hub
from worker import defaults
from worker.availability import QuietHours, parse_process_names
from worker.gpu_memory import allocate_on_demand
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


class QuietHoursType(click.ParamType):
    """`--quiet-hours HH:MM-HH:MM` as a worker.availability.QuietHours."""

    name = "quiet hours"

    def convert(self, value, param, ctx):
        if isinstance(value, QuietHours):
            return value
        try:
            return QuietHours.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def idle_unload_seconds(minutes: float | None, device: str) -> float:
    """--idle-unload in seconds; unset: IDLE_UNLOAD_GPU_MINUTES on a GPU, off on a CPU, where
    the memory is the host's (paged out by the OS when a game needs it) and a reload would only
    cost the next job its time."""
    if minutes is None:
        is_gpu = device.split(":", 1)[0] in ("gpu", "cuda", "rocm")
        minutes = defaults.IDLE_UNLOAD_GPU_MINUTES if is_gpu else 0.0
    return minutes * 60.0


def gpu_sharing_options(command):
    """The flags that let the worker share its GPU with games (issue 19)."""
    options = [
        click.option("--idle-unload", "idle_unload", type=click.FloatRange(0),
                     metavar="MINUTES", envvar="DALLEQ_IDLE_UNLOAD", show_envvar=True,
                     show_default=f"{defaults.IDLE_UNLOAD_GPU_MINUTES:g} on a GPU, 0 on a CPU",
                     help="Free the model's device memory after this long without work; the "
                          "next job loads it again from disk. 0: never."),
        click.option("--quiet-hours", type=QuietHoursType(), envvar="DALLEQ_QUIET_HOURS",
                     show_envvar=True, metavar="HH:MM-HH:MM",
                     help="Claim no jobs in this daily window of local time, e.g. 23:00-07:00."),
        click.option("--yield-to", metavar="NAMES", envvar="DALLEQ_YIELD_TO", show_envvar=True,
                     help="Pause while a process of one of these names runs (comma-separated, "
                          "any case), e.g. steam,eldenring.exe."),
        click.option("--yield-to-gpu", is_flag=True, envvar="DALLEQ_YIELD_TO_GPU",
                     show_envvar=True,
                     help="Pause while another process uses the GPU (NVML, else nvidia-smi)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
    command = gpu_sharing_options(command)
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
def worker(server_url, token, model, dtype, max_batch, rank, previews, idle_unload, quiet_hours,
           yield_to, yield_to_gpu, cache, model_name, name, spool, once, stop_retry_seconds,
           device_memory_gb, parent_fd):
    """Claim jobs from the queue, generate them here, post the images back.

    Runs until Ctrl-C or SIGTERM: the first lets the current batch finish, a second hands the
    leases back. Results that cannot be uploaded wait in the spool folder and are posted later.
    """
    configure_logging()
    allocate_on_demand(os.environ)  # before JAX starts: see worker/gpu_memory.py
    if parent_fd is not None:
        exit_with_parent(parent_fd)
    raise SystemExit(run_worker(server_url, token, model, dtype, max_batch, cache, model_name,
                                name, spool, once, stop_retry_seconds, rank, previews,
                                device_memory_gb=device_memory_gb,
                                idle_unload=idle_unload, quiet_hours=quiet_hours,
                                yield_to=yield_to, yield_to_gpu=yield_to_gpu))


def run_worker(server_url, token, model, dtype, max_batch, cache, model_name, name, spool,
               once, stop_retry_seconds=defaults.STOP_RETRY_SECONDS, rank=None,
               previews: PreviewSetting | str = defaults.PREVIEWS,
               device_memory_gb: float | None = None, *,
               idle_unload: float | None = None, quiet_hours: QuietHours | None = None,
               yield_to: str | None = None, yield_to_gpu: bool = False) -> int:
    """idle_unload: minutes (None: idle_unload_seconds's default for the device)."""
    from worker.availability import Availability
    from worker.model_holder import ModelHolder
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
    device = device_description()
    options = WorkerOptions(server_url=server_url, token=token, name=name,
                            model_name=model_name or label,
                            spool_dir=spool or default_spool_dir(name), max_batch=max_batch,
                            is_once=once, stop_retry_seconds=stop_retry_seconds,
                            previews=PreviewsType().convert(previews, None, None),
                            idle_unload_seconds=idle_unload_seconds(idle_unload, device))
    info = ModelInfo(label=label, dtype=dtype, device=device,
                     is_random_weights=is_random_weights(folder))
    # An unloaded model is read from disk again through the same loader (worker/model_holder.py).
    models = ModelHolder(lambda: load_pipeline(str(folder), None, cache, dtype), pipeline)
    rankers = None
    if clip is not None:
        clip_dir, ranker = clip
        log.info("ranking each job's images with CLIP from %s", clip_dir)
        rankers = ModelHolder(lambda: load_ranker(True, folder, cache)[1], ranker,
                              what="CLIP ranker")
    availability = Availability(QuietHoursType().convert(quiet_hours, None, None)
                                if quiet_hours is not None else None,
                                parse_process_names(yield_to), yield_to_gpu)
    return Worker(options, models, info, stop=stop, ranker=rankers,
                  availability=availability).run()


def model_folder(model: str, cache: Path | None) -> Path:
    """The folder of --model (the demo is written on first use), a failure told as one line."""
    try:
        return hub.resolve_model(model, cache)
    except hub.WeightsError as error:
        raise click.ClickException(str(error)) from None
