"""Our published Flax layout as min-dalle's PyTorch state_dicts, and min-dalle's modules holding it.

min-dalle (kuprel/min-dalle, PyPI `min-dalle`) is the independent implementation we check our
model against (tests/test_bart_min_dalle.py, tests/test_vqgan_min_dalle.py) and time our pipeline
against (bench/min_dalle_image.py). All three need the same conversion, so it lives here once.

The BART renaming follows the table in §2.1 of shared/reference/dalle-mini-architecture.md (after
min-dalle's old `load_params.py`); the VQGAN's follows min-dalle's `VQGanDetokenizer`, whose up
levels are indexed like ours (`up.0` is the full-resolution level, run last). Each builder
constructs its module as `MinDalle.init_encoder` / `init_decoder` / `init_detokenizer` do, then
loads strictly: every one of min-dalle's parameters is set and every one of ours is used.

Importing this module imports min_dalle, and min_dalle sets torch globals when it is imported (no
autograd, every core as a thread); callers that mind should change them back.
"""

import numpy as np
import torch
from flax.traverse_util import flatten_dict
from min_dalle.models import DalleBartDecoder, DalleBartEncoder, VQGanDetokenizer

from minidalle.config import DalleBartConfig
from minidalle.vqgan import GROUP_NORM_EPSILON, decode_path_params

MIN_DALLE_IMAGE_TOKEN_COUNT = 256  # its decoder's position table and KV cache are this long

# -- BART: encoder and decoder ----------------------------------------------------------------

STACKED_LAYERS = {"encoder": "FlaxBartEncoderLayers", "decoder": "FlaxBartDecoderLayers"}
# Per layer: our module path → min-dalle's module name (§2.1). An attention's q/k/v/out_proj keep
# their names below it.
TORCH_MODULE_FROM_LAYER_PATH = {
    "encoder": {
        "LayerNorm_0": "pre_self_attn_layer_norm",
        "FlaxBartAttention_0": "self_attn",
        "LayerNorm_1": "self_attn_layer_norm",
        "GLU_0/LayerNorm_0": "glu.ln0",
        "GLU_0/Dense_0": "glu.fc0",
        "GLU_0/Dense_1": "glu.fc1",
        "GLU_0/LayerNorm_1": "glu.ln1",
        "GLU_0/Dense_2": "glu.fc2",
    },
    "decoder": {
        "LayerNorm_0": "pre_self_attn_layer_norm",
        "FlaxBartAttention_0": "self_attn",
        "LayerNorm_1": "self_attn_layer_norm",
        "LayerNorm_2": "pre_encoder_attn_layer_norm",
        "FlaxBartAttention_1": "encoder_attn",
        "LayerNorm_3": "encoder_attn_layer_norm",
        "GLU_0/LayerNorm_0": "glu.ln0",
        "GLU_0/Dense_0": "glu.fc0",
        "GLU_0/Dense_1": "glu.fc1",
        "GLU_0/LayerNorm_1": "glu.ln1",
        "GLU_0/Dense_2": "glu.fc2",
    },
}
TORCH_LEAF_FROM_FLAX_LEAF = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "embedding": "weight",
}


def torch_module(side: str, layer_path: str) -> str:
    """'FlaxBartAttention_1/k_proj' → 'encoder_attn.k_proj' for the decoder."""
    table = TORCH_MODULE_FROM_LAYER_PATH[side]
    if layer_path in table:
        return table[layer_path]
    parent, child = layer_path.rsplit("/", 1)
    return f"{table[parent]}.{child}"


def bart_tensor(leaf: str, value: np.ndarray) -> torch.Tensor:
    """One of our BART leaves as the fp32 torch tensor min-dalle stores in its place."""
    if leaf == "kernel":
        value = np.swapaxes(value, -1, -2)  # (in, out) → torch Linear's (out, in)
    return torch.tensor(np.asarray(value, np.float32))  # a copy: checkpoint arrays are read-only


def bart_state(params: dict, side: str) -> dict:
    """min-dalle's state_dict for our "encoder" or "decoder" (plus lm_head), from our stacked
    tree. A bias-only LayerNorm gets weight 1, the scale it implicitly has (§2.1)."""
    flat = flatten_dict(params["model"][side], sep="/")
    stacked_prefix = f"layers/{STACKED_LAYERS[side]}/"
    state = {}
    for key, value in flat.items():
        path, leaf = key.rsplit("/", 1)
        names_values = [(path.replace("/", "."), value)]
        if path.startswith(stacked_prefix):  # split the leading layer axis
            module = torch_module(side, path.removeprefix(stacked_prefix))
            names_values = [
                (f"layers.{layer}.{module}", value[layer]) for layer in range(value.shape[0])
            ]
        for name, layer_value in names_values:
            state[f"{name}.{TORCH_LEAF_FROM_FLAX_LEAF[leaf]}"] = bart_tensor(leaf, layer_value)
            if leaf == "bias" and f"{path}/scale" not in flat:
                state[f"{name}.weight"] = torch.ones(layer_value.shape)
    if side == "decoder":
        state["lm_head.weight"] = bart_tensor("kernel", params["lm_head"]["kernel"])
    return state


def encoder_state(params: dict) -> dict:
    """min-dalle's DalleBartEncoder state_dict from our DalleBart params."""
    return bart_state(params, "encoder")


def decoder_state(params: dict) -> dict:
    """min-dalle's DalleBartDecoder state_dict (lm_head included) from our DalleBart params."""
    return bart_state(params, "decoder")


def min_dalle_encoder(config: DalleBartConfig, params: dict) -> DalleBartEncoder:
    """min-dalle's encoder at config's sizes, holding params, in eval mode.

    Its position ids (`pose_tokens`) are [2, 64] as min-dalle builds them, sized for its own batch:
    the unconditional row, then the prompt's.
    """
    encoder = DalleBartEncoder(
        layer_count=config.encoder_layers,
        embed_count=config.d_model,
        attention_head_count=config.encoder_attention_heads,
        text_vocab_count=config.encoder_vocab_size,
        text_token_count=config.max_text_length,
        glu_embed_count=config.encoder_ffn_dim,
        device="cpu",
    )
    encoder.load_state_dict(encoder_state(params), strict=True)
    return encoder.eval()


def min_dalle_decoder(config: DalleBartConfig, params: dict) -> DalleBartDecoder:
    """min-dalle's decoder at config's sizes (lm_head included), holding params, in eval mode."""
    assert config.image_length == MIN_DALLE_IMAGE_TOKEN_COUNT, (
        f"min-dalle hard-codes {MIN_DALLE_IMAGE_TOKEN_COUNT} image tokens"
    )
    decoder = DalleBartDecoder(
        image_vocab_count=config.image_vocab_size,
        embed_count=config.d_model,
        attention_head_count=config.decoder_attention_heads,
        glu_embed_count=config.decoder_ffn_dim,
        layer_count=config.decoder_layers,
        device="cpu",
    )
    decoder.load_state_dict(decoder_state(params), strict=True)
    return decoder.eval()


# -- VQGAN: the detokenizer -------------------------------------------------------------------


def vqgan_torch_name(flax_key: str) -> str:
    """'decoder/up_3/block_0/conv1/kernel' -> 'decoder.up.3.block.0.conv1.weight'."""
    if flax_key == "quantize/embedding/embedding":
        return "embedding.weight"
    parts = flax_key.split("/")
    if parts[0] == "decoder" and parts[1].startswith("up_"):
        # Levels, their blocks and attentions are ModuleLists there (up.3.block.0); mid's
        # block_1 and attn_1 are plain attributes, so they keep their underscore.
        parts[1:3] = [part.replace("_", ".") for part in parts[1:3]]
    leaf_name = {"kernel": "weight", "scale": "weight", "bias": "bias"}[parts[-1]]
    return ".".join(parts[:-1] + [leaf_name])


def vqgan_tensor(flax_key: str, value: np.ndarray) -> torch.Tensor:
    """One of our VQGAN leaves as the fp32 torch tensor min-dalle stores in its place."""
    if flax_key.endswith("/kernel"):
        value = value.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    return torch.tensor(np.asarray(value, np.float32))  # a copy: checkpoint arrays are read-only


def detokenizer_state(vqgan_params: dict) -> dict:
    """min-dalle's VQGanDetokenizer state_dict from our VQGAN tree (its encoder side, if there,
    is dropped: min-dalle only decodes)."""
    flat = flatten_dict(decode_path_params(vqgan_params), sep="/")
    return {vqgan_torch_name(key): vqgan_tensor(key, value) for key, value in flat.items()}


def min_dalle_detokenizer(vqgan_params: dict) -> VQGanDetokenizer:
    """min-dalle's VQGAN decoder (f16/16384 shapes, hard-coded there) holding our weights."""
    detokenizer = VQGanDetokenizer()
    detokenizer.load_state_dict(detokenizer_state(vqgan_params), strict=True)
    for module in detokenizer.modules():
        if isinstance(module, torch.nn.GroupNorm):
            # torch's default eps is 1e-5, vqgan-jax's 1e-6; matching it makes the two decoders
            # the same function, so what remains is float32 rounding.
            module.eps = GROUP_NORM_EPSILON
    return detokenizer.eval()
