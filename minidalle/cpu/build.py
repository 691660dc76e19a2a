"""Our CPU kernels (kernels/*.cc): built once with the system's C++ compiler, registered with JAX
as XLA FFI custom calls.

XLA's CPU code reaches the memory bandwidth on neither of the decode step's two hot spots: the
matmuls of a few rows (`matmul`) and single-token attention over the KV cache (`attention`). Both
kernels go into one shared library, cached by source hash in ~/.cache/dalle-queue/kernels, so they
share one crew of threads (kernels/crew.h). They are built for the widest instruction set the CPU
runs (AVX-512 or AVX2; see ISA_CPU_FLAGS). Where building is impossible (no compiler, no AVX2, a
GPU backend) nothing is registered and the plain-JAX backend runs instead: same results up to float
rounding.
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

log = logging.getLogger(__name__)

KERNELS = Path(__file__).parent / "kernels"
SOURCES = (KERNELS / "skinny_matmul.cc", KERNELS / "decode_attention.cc")
HEADERS = (KERNELS / "crew.h", KERNELS / "stealable_ranges.h")
MATMUL_TARGET = "minidalle_skinny_matmul"
ATTENTION_TARGET = "minidalle_decode_attention"
SYMBOL_FROM_TARGET = {MATMUL_TARGET: "MinidalleSkinnyMatmul",
                      ATTENTION_TARGET: "MinidalleDecodeAttention"}

_registered: bool | None = None


# The instruction sets a build can target, with the CPU flags each needs; the compiler switch for
# flag f is -mf. The matmul kernel gives the same bits under both (skinny_matmul.cc, Load48).
ISA_CPU_FLAGS = {
    "avx2": ("avx2", "fma"),
    "avx512": ("avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"),
}


def cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return set()


def supported_isas() -> list[str]:
    """The instruction sets this CPU runs, widest last."""
    flags = cpu_flags()
    return [isa for isa, needed in ISA_CPU_FLAGS.items() if flags.issuperset(needed)]


def has_avx2_fma() -> bool:
    return "avx2" in supported_isas()


def default_build_folder() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dalle-queue" / "kernels"


def compile_kernels(folder: Path, isa: str | None = None) -> Path:
    """Build the shared library (once per source, instruction set and jaxlib version) for `isa`,
    by default the widest this CPU runs; returns its path."""
    isa = isa or supported_isas()[-1]
    include = jax.ffi.include_dir()
    flags = ["-O3", *(f"-m{flag}" for flag in ISA_CPU_FLAGS[isa]), "-std=c++17", "-shared",
             "-fPIC", "-w", f"-I{include}"]
    sources = b"".join(path.read_bytes() for path in (*SOURCES, *HEADERS))
    digest = hashlib.sha256(sources + " ".join(flags).encode()
                            + jax.__version__.encode()).hexdigest()[:16]
    library = folder / f"minidalle-kernels-{digest}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        raise OSError("no C++ compiler (g++) on PATH")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *flags, *map(str, SOURCES), "-o", str(built)], check=True,
                       capture_output=True, text=True)
        os.replace(built, library)  # atomic: a concurrent loader sees all of it or nothing
    return library


def register(library_path: Path, target_from_symbol: dict[str, str]) -> None:
    """Load a built library and register each of its handler symbols as a CPU FFI target."""
    library = ctypes.cdll.LoadLibrary(str(library_path))
    for symbol, target in target_from_symbol.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                    platform="cpu")


def ensure_registered(build_folder: Path | None = None) -> bool:
    """Compile and register the kernels if this process can use them; True when they are ready."""
    global _registered
    if _registered is not None:
        return _registered
    _registered = False
    if jax.default_backend() != "cpu" or not has_avx2_fma():
        return False
    try:
        register(compile_kernels(build_folder or default_build_folder()),
                 {symbol: target for target, symbol in SYMBOL_FROM_TARGET.items()})
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        log.warning("CPU kernels unavailable, using XLA's own ops: %s", detail)
        return False
    _registered = True
    return True
