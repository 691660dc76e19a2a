"""Our VQGAN decoder against an independent one: min-dalle's PyTorch VQGanDetokenizer.

min-dalle hard-codes the published f16/16384 shapes, so both decode the same random weights of
the real size. tests/min_dalle_layout.py converts our tree to its module names; its up levels are
indexed like ours (`up.0` is the full-resolution level, run last).
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("min_dalle.models")  # sets torch globals when imported

from minidalle.vqgan import (
    VQGANConfig,
    VQGANDecoder,
    decode_path_params,
    decode_to_uint8,
)
from minidalle.random_weights import random_vqgan_params
from tests.min_dalle_layout import min_dalle_detokenizer, vqgan_torch_name

FLOAT_TOLERANCE = 1e-4  # absolute; outputs are of order 1 and differ by ~5e-6 (seed 0)


def test_torch_names():
    assert vqgan_torch_name("decoder/up_3/block_0/nin_shortcut/kernel") == (
        "decoder.up.3.block.0.nin_shortcut.weight"
    )
    assert vqgan_torch_name("decoder/up_4/attn_2/norm/scale") == "decoder.up.4.attn.2.norm.weight"
    assert vqgan_torch_name("decoder/up_1/upsample/conv/bias") == "decoder.up.1.upsample.conv.bias"
    assert (
        vqgan_torch_name("decoder/mid/attn_1/proj_out/kernel")
        == "decoder.mid.attn_1.proj_out.weight"
    )


def test_decodes_like_min_dalle():
    config = VQGANConfig()
    params = decode_path_params(random_vqgan_params(config, seed=0))
    codes = np.random.default_rng(0).integers(0, config.n_embed, (1, 256))

    ours = np.asarray(jax.jit(VQGANDecoder(config).apply)({"params": params}, codes))
    our_pixels = decode_to_uint8(params, config, codes)

    detokenizer = min_dalle_detokenizer(params)
    captured = []
    decoder_forward = detokenizer.decoder.forward

    def decoder_forward_kept(z):
        # min-dalle calls .forward directly, so torch hooks never fire; wrap the method instead.
        output = decoder_forward(z)
        captured.append(output.permute(0, 2, 3, 1).clone())  # NCHW -> NHWC, before clipping
        return output

    detokenizer.decoder.forward = decoder_forward_kept
    with torch.no_grad():
        # One image: its "grid" is 1x1, so it returns [256, 256, 3] = clip(x, 0, 1) * 255.
        their_scaled = detokenizer.forward(False, torch.from_numpy(codes))
    theirs = captured[0].numpy()
    their_pixels = their_scaled.to(torch.uint8).numpy()  # as min-dalle casts its images

    assert ours.shape == theirs.shape == (1, 256, 256, 3)
    assert 0.05 < (ours.clip(0, 1)).mean() < 0.95, "random weights should not give a flat image"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=FLOAT_TOLERANCE)
    pixel_gap = np.abs(our_pixels[0].astype(np.int16) - their_pixels.astype(np.int16))
    assert (pixel_gap <= 1).mean() >= 0.999
    assert pixel_gap.max() <= 1
