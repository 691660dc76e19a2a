"""Who else is on this machine: running process names, and the processes using an NVIDIA GPU.

The worker steps aside for them (worker/availability.py). GPU users come from NVML (the
`pynvml` module of nvidia-ml-py, the library nvidia-smi itself uses), compute and graphics
processes both, and from `nvidia-smi --query-compute-apps` where NVML does not load; with
neither (no NVIDIA driver) the list is empty. Names are matched without regard to case, as
Windows names are (`EldenRing.exe`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from collections.abc import Callable

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_SECONDS = 10.0
NVIDIA_SMI_QUERY = ["--query-compute-apps=pid,process_name", "--format=csv,noheader"]


@dataclasses.dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str


def running_process_names() -> set[str]:
    """The lower-cased names of every process this user can see."""
    import psutil

    names = set()
    for process in psutil.process_iter(["name"]):
        name = process.info.get("name")
        if name:
            names.add(name.lower())
    return names


def process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return f"pid {pid}"


def parse_compute_apps(text: str) -> list[GpuProcess]:
    """nvidia-smi's `pid, process_name` CSV lines as GpuProcesses (unreadable lines skipped)."""
    found = []
    for line in text.splitlines():
        pid_text, _, name = line.partition(",")
        try:
            pid = int(pid_text.strip())
        except ValueError:
            continue
        found.append(GpuProcess(pid, os.path.basename(name.strip()) or f"pid {pid}"))
    return found


def nvml_gpu_processes() -> list[GpuProcess]:
    """Compute and graphics processes on every NVIDIA GPU, through NVML (raises when it can't)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        pids = set()
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for listing in (pynvml.nvmlDeviceGetComputeRunningProcesses,
                            pynvml.nvmlDeviceGetGraphicsRunningProcesses):
                pids.update(process.pid for process in listing(handle))
    finally:
        pynvml.nvmlShutdown()
    return [GpuProcess(pid, process_name(pid)) for pid in sorted(pids)]


def nvidia_smi_gpu_processes() -> list[GpuProcess]:
    """Compute processes as nvidia-smi lists them; [] without nvidia-smi or when it fails."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return []
    try:
        result = subprocess.run([command, *NVIDIA_SMI_QUERY], capture_output=True, text=True,
                                timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("nvidia-smi failed: %s", error)
        return []
    return parse_compute_apps(result.stdout)


def gpu_processes() -> list[GpuProcess]:
    """Every process using an NVIDIA GPU: NVML where it loads, nvidia-smi otherwise."""
    try:
        return nvml_gpu_processes()
    except Exception as error:  # noqa: BLE001 - ImportError or any NVMLError: try nvidia-smi
        log.debug("NVML unavailable (%s: %s); asking nvidia-smi", type(error).__name__, error)
        return nvidia_smi_gpu_processes()


def other_gpu_processes(own_pid: int | None = None,
                        probe: Callable[[], list[GpuProcess]] = gpu_processes) -> list[GpuProcess]:
    """probe()'s GPU processes but this one (the worker's own JAX context is listed too)."""
    own_pid = os.getpid() if own_pid is None else own_pid
    return [process for process in probe() if process.pid != own_pid]
