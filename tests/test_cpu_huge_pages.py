"""The packed weights' arena: aligned arrays in one mapping that asks for transparent huge pages,
read in place by XLA."""

from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

from minidalle.cpu.huge_pages import ARRAY_ALIGNMENT_BYTES, HUGE_PAGE_BYTES, HugePageArena

THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def has_thp() -> bool:
    """Whether this kernel backs a mapping that asks with huge pages ('always' or 'madvise')."""
    return THP_SETTING.exists() and "[never]" not in THP_SETTING.read_text()


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


def test_the_arena_asks_for_huge_pages_and_gets_them_where_the_kernel_gives_them():
    arena = HugePageArena(16 << 20)
    array = arena.empty((16 << 20,), np.uint8)
    array[...] = 1  # the pages exist once touched
    mapping = mapping_of(array.ctypes.data)
    assert "hg" in mapping["VmFlags"].split()  # madvise(MADV_HUGEPAGE)
    huge_kib = int(mapping["AnonHugePages"].split()[0])
    assert huge_kib >= HUGE_PAGE_BYTES // 1024 if has_thp() else huge_kib == 0


def test_xla_reads_the_pipelines_packed_weights_in_place_from_the_arena(cpu_kernels,
                                                                         tiny_pipeline):
    decoder_layer = tiny_pipeline.params["model"]["decoder"]["layers"]["FlaxBartDecoderLayer_0"]
    packed = [tiny_pipeline.params["lm_head"]["kernel"],
              decoder_layer["GLU_0"]["Dense_0"]["kernel"],
              decoder_layer["FlaxBartAttention_0"]["q_proj"]["kernel"]]
    for kernel in packed:
        assert kernel.ndim == 3  # packed
        # XLA's own buffers come from malloc, which does not ask for huge pages
        assert "hg" in mapping_of(kernel.unsafe_buffer_pointer())["VmFlags"].split()
