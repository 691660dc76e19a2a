"""The packed weights' arena: aligned arrays in one mapping that asks for transparent huge pages,
read in place by XLA."""

from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle import cpu_kernels
from minidalle.huge_pages import ARRAY_ALIGNMENT_BYTES, HUGE_PAGE_BYTES, HugePageArena

THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
needs_thp = pytest.mark.skipif(
    not THP_SETTING.exists() or "[never]" in THP_SETTING.read_text(),
    reason="needs Linux with transparent huge pages in 'always' or 'madvise' mode")


def mapping_of(address: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping that holds `address`."""
    fields: dict[str, str] = {}
    is_inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):  # "start-end perms ...": a new mapping
            if is_inside:
                break
            start, end = (int(bound, 16) for bound in head.split("-"))
            is_inside = start <= address < end
        elif is_inside:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


def test_arrays_are_page_aligned_disjoint_and_start_on_a_huge_page():
    specs = [((3, 5), np.float32), ((1000, 48), jnp.bfloat16), ((7,), np.float32)]
    arena = HugePageArena.for_arrays(specs)
    arrays = [arena.empty(shape, dtype) for shape, dtype in specs]
    assert arrays[0].ctypes.data % HUGE_PAGE_BYTES == 0
    for array, (shape, dtype) in zip(arrays, specs, strict=True):
        assert array.shape == shape and array.dtype == np.dtype(dtype)
        assert array.ctypes.data % ARRAY_ALIGNMENT_BYTES == 0
    for array, value in zip(arrays, (1, 2, 3), strict=True):
        array[...] = value
    assert [float(array.ravel()[-1]) for array in arrays] == [1, 2, 3]
    with pytest.raises(ValueError, match="bytes left"):
        arena.empty((1,), np.float32)


@needs_thp
def test_the_arena_is_backed_by_huge_pages():
    arena = HugePageArena(16 << 20)
    array = arena.empty((16 << 20,), np.uint8)
    array[...] = 1  # the pages exist once touched
    mapping = mapping_of(array.ctypes.data)
    assert "hg" in mapping["VmFlags"].split()  # madvise(MADV_HUGEPAGE)
    assert int(mapping["AnonHugePages"].split()[0]) >= HUGE_PAGE_BYTES // 1024


@needs_thp
@pytest.mark.skipif(not cpu_kernels.ensure_registered(),
                    reason="needs a CPU backend with AVX2/FMA and a C++ compiler")
def test_xla_reads_the_pipelines_packed_weights_in_place_from_the_arena(tiny_pipeline):
    decoder_layer = tiny_pipeline.params["model"]["decoder"]["layers"]["FlaxBartDecoderLayer_0"]
    packed = [tiny_pipeline.params["lm_head"]["kernel"],
              decoder_layer["GLU_0"]["Dense_0"]["kernel"],
              decoder_layer["FlaxBartAttention_0"]["q_proj"]["kernel"]]
    for kernel in packed:
        assert kernel.ndim == 3  # packed
        # XLA's own buffers come from malloc, which does not ask for huge pages
        assert "hg" in mapping_of(kernel.unsafe_buffer_pointer())["VmFlags"].split()
