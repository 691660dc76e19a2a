"""A CPU matmul for the few rows of a decoder step, as an XLA FFI custom call.

XLA's CPU dot streams weights at the memory's speed only for a single row; a decode step has two
rows per image (super-conditioning) and ran at a third of the bandwidth. `kernels/skinny_matmul.cc`
streams pre-packed weight panels with AVX2 instead (its header says how). It is compiled here with
the system's C++ compiler the first time a pipeline loads on a CPU, cached by source hash, and
registered with JAX. Where that is impossible (no compiler, no AVX2, a GPU backend, fp16 weights)
nothing is packed and XLA's dot runs instead: same results up to float rounding.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger(__name__)

PANEL_WIDTH = 48  # kPanel in skinny_matmul.cc
TARGET_NAME = "minidalle_skinny_matmul"
SOURCE = Path(__file__).parent / "kernels" / "skinny_matmul.cc"
HEADERS = (Path(__file__).parent / "kernels" / "crew.h",)
PACKABLE_DTYPES = (np.dtype(np.float32), np.dtype(jnp.bfloat16))

_registered: bool | None = None


def has_avx2_fma() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return False
    return "avx2" in flags and "fma" in flags


def default_build_folder() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dalle-queue" / "kernels"


def compile_kernel(folder: Path) -> Path:
    """Build the shared library (once per source and jaxlib version); returns its path."""
    include = jax.ffi.include_dir()
    flags = ["-O3", "-mavx2", "-mfma", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{include}"]
    sources = b"".join(path.read_bytes() for path in (SOURCE, *HEADERS))
    digest = hashlib.sha256(sources + " ".join(flags).encode()
                            + jax.__version__.encode()).hexdigest()[:16]
    library = folder / f"skinny_matmul-{digest}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        raise OSError("no C++ compiler (g++) on PATH")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built)], check=True,
                       capture_output=True, text=True)
        os.replace(built, library)  # atomic: a concurrent loader sees all of it or nothing
    return library


def ensure_registered(build_folder: Path | None = None) -> bool:
    """Compile and register the kernel if this process can use it; True when it is ready."""
    global _registered
    if _registered is not None:
        return _registered
    _registered = False
    if jax.default_backend() != "cpu" or not has_avx2_fma():
        return False
    try:
        library = ctypes.cdll.LoadLibrary(str(compile_kernel(build_folder or default_build_folder())))
        jax.ffi.register_ffi_target(TARGET_NAME, jax.ffi.pycapsule(library.MinidalleSkinnyMatmul),
                                    platform="cpu")
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        log.warning("CPU matmul kernel unavailable, using XLA's dot: %s", detail)
        return False
    _registered = True
    return True


def pack(kernel: np.ndarray) -> np.ndarray:
    """Dense kernel [K, N] → panels [P, K, 48] (N zero-padded to P·48), same dtype."""
    k_count, n_count = kernel.shape
    panel_count = -(-n_count // PANEL_WIDTH)
    padded = np.zeros((k_count, panel_count * PANEL_WIDTH), kernel.dtype)
    padded[:, :n_count] = kernel
    return np.ascontiguousarray(padded.reshape(k_count, panel_count, PANEL_WIDTH).transpose(1, 0, 2))


def is_packed(kernel) -> bool:
    return kernel.ndim == 3


def packed_matmul(x, packed, features: int):
    """x [..., K] · packed kernel → [..., features] fp32."""
    rows = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    width = packed.shape[0] * PANEL_WIDTH
    call = jax.ffi.ffi_call(TARGET_NAME, jax.ShapeDtypeStruct((rows.shape[0], width), jnp.float32))
    return call(rows, packed)[:, :features].reshape(x.shape[:-1] + (features,))


def matmul(x, kernel, features: int, dtype):
    """x · kernel for a plain [K, N] kernel or a packed one, accumulated in and returned as dtype."""
    if is_packed(kernel):
        return packed_matmul(x, kernel, features).astype(dtype)
    return jnp.dot(x.astype(kernel.dtype), kernel, preferred_element_type=dtype).astype(dtype)
