"""The memory plan on the command line: `dalleq weights info`'s table and the worker's start check.

The numbers come from minidalle/memory_plan.py (computed from the config, nothing allocated); this
module picks the config (a model folder's config.json, else the published one), the batch a worker
runs at once, and how much memory the device has, and words the result for a person.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from server import defaults as server_defaults
from worker import defaults as worker_defaults

log = logging.getLogger(__name__)

BYTES_PER_GB = 1e9  # decimal, like the sizes GPU makers print and `format_bytes` shows
# The most images a worker generates at once: --max-batch jobs, each up to the largest grid.
IMAGES_PER_JOB = server_defaults.GRID_MAX ** 2
WORKER_BATCH_IMAGES = worker_defaults.MAX_BATCH * IMAGES_PER_JOB
INT8_NOTE = "int8: int8 kernels, fp32 scale per column; other weights, cache, activations bf16"
ACTIVATIONS_NOTE = "activations (estimated): logits, one layer, encoder, VQGAN (fp32, 1 image)"
TABLE_COLUMNS = ("dtype", "weights", "KV cache", "activations", "total")


def model_config(name_or_dir: str, cache: Path | None):
    """(DalleBartConfig, VQGANConfig, where the config came from) for mini, mega or a folder.

    A fetched mini/mega's own config.json wins; without it the published values are used, so
    this works before any download. Raises click.BadParameter for anything else."""
    from minidalle import weights as hub
    from minidalle.published_configs import PUBLISHED_NAMES, config_for, vqgan_config_for

    if name_or_dir in PUBLISHED_NAMES:
        folder = hub.model_folder(name_or_dir, cache)
        source = (f"{folder / hub.CONFIG_FILE}" if (folder / hub.CONFIG_FILE).is_file()
                  else "the published values, nothing downloaded")
    else:
        folder = Path(name_or_dir).expanduser()
        if not (folder / hub.CONFIG_FILE).is_file():
            what = "has no config.json" if folder.is_dir() else "does not exist"
            raise click.BadParameter(
                f"{folder} {what}: give {' or '.join(PUBLISHED_NAMES)}, or a model folder with "
                f"config.json", param_hint="NAME|DIR")
        source = str(folder / hub.CONFIG_FILE)
    try:
        return config_for(name_or_dir, folder), vqgan_config_for(folder), source
    except (OSError, ValueError, TypeError) as error:
        raise click.BadParameter(f"could not read {source}: {error}",
                                 param_hint="NAME|DIR") from None


def plan_table(config, vqgan_config, image_count: int) -> str:
    """The weights / KV cache / activations / total table, one row per dtype of the plan."""
    from minidalle.memory_plan import PLAN_DTYPES, format_bytes, memory_need

    rows = [TABLE_COLUMNS]
    for dtype in PLAN_DTYPES:
        need = memory_need(config, dtype, image_count, vqgan_config)
        rows.append((dtype, *(format_bytes(size) for size in (
            need.weight_bytes, need.kv_cache_bytes, need.activation_bytes, need.total_bytes))))
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0])]
                  + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)])
        for row in rows)


def describe_plan(label: str, config, vqgan_config, image_count: int, source: str) -> str:
    """What `dalleq weights info` prints: the parameter count, the table and what it counts."""
    from minidalle.memory_plan import ROWS_PER_IMAGE, param_count

    rows = ROWS_PER_IMAGE * image_count
    images = f"{image_count} image{'s' if image_count != 1 else ''}"
    return "\n".join([
        f"{label}: {param_count(config).total:,} parameters (config: {source})",
        f"memory for {images} at once ({rows} decoder rows with super-conditioning):",
        plan_table(config, vqgan_config, image_count),
        INT8_NOTE,
        ACTIVATIONS_NOTE,
    ])


def device_capacity(device=None) -> tuple[int | None, str]:
    """(bytes this process may still allocate on `device`, by default the first JAX device, and
    its label); None when the device does not say.

    On a GPU, `memory_stats()["bytes_limit"]` is the size of the pool JAX's allocator hands arrays
    from: the card's memory less what was in use when JAX started, times
    XLA_PYTHON_CLIENT_MEM_FRACTION. That, not the card's total, is what the model must fit in.
    On a CPU the device is host memory: psutil's `available` (free plus reclaimable caches)."""
    if device is None:
        import jax

        device = jax.devices()[0]
    label = f"{device.platform}:{device.id}"
    if device.platform == "cpu":
        import psutil

        return psutil.virtual_memory().available, f"{label} (host memory)"
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None, label
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), label


def check_worker_memory(model: str, folder: Path, dtype: str, max_batch: int,
                        device_memory_gb: float | None, dtype_choices: tuple[str, ...]) -> None:
    """Log the plan for the worker's model, dtype and largest batch, and raise
    click.ClickException (exit 1) before anything is loaded if the device cannot hold it.

    device_memory_gb: the capacity to plan for, instead of asking the device (tests, or a person
    who wants to leave room for a game)."""
    from minidalle.memory_plan import PLAN_DTYPES, check_fit
    from minidalle.published_configs import config_for, vqgan_config_for

    config, vqgan_config = config_for(model, folder), vqgan_config_for(folder)
    if device_memory_gb is not None:
        capacity_bytes, device_label = int(device_memory_gb * BYTES_PER_GB), "the device"
    else:
        capacity_bytes, device_label = device_capacity()
    if capacity_bytes is None:
        log.info("memory plan: %s does not report its memory; not checked", device_label)
        return
    fit = check_fit(config, dtype, max_batch, capacity_bytes, model_label=model,
                    device_label=device_label,
                    dtypes=[name for name in PLAN_DTYPES if name in dtype_choices],
                    images_per_batch_unit=IMAGES_PER_JOB, batch_flag="--max-batch",
                    vqgan_config=vqgan_config)
    if not fit.is_ok:
        raise click.ClickException(f"not starting: {fit.message}")
    log.info("memory plan: %s", fit.message)
