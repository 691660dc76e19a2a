"""The published mini and mega `config.json` values, so a memory plan works before any download.

The values are the tables of shared/reference/dalle-mini-architecture.md §1.1 (the Hugging Face
pages of `dalle-mini/dalle-mini` and `dalle-mini/dalle-mega`); only the keys that differ from
DalleBartConfig's defaults (which are mini's) are listed, as VQGANConfig's defaults are the
published VQGAN's. A model folder's own config.json wins over these (`config_for`);
tests/test_memory_plan.py checks their parameter counts against the reference's (§2).
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import CONFIG_FILE, DalleBartConfig
from .vqgan import VQGANConfig

VQGAN_SUBFOLDER = "vqgan"  # pipeline.VQGAN_SUBFOLDER

MINI_CONFIG_VALUES: dict = {}  # the DalleBartConfig defaults are the published mini's
MEGA_CONFIG_VALUES = {
    "d_model": 2048,
    "encoder_layers": 24,
    "decoder_layers": 24,
    "encoder_attention_heads": 32,
    "decoder_attention_heads": 32,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "encoder_vocab_size": 50272,
    "image_vocab_size": 16415,
    "init_std": 0.01,
}
CONFIG_VALUES_FROM_NAME = {"mini": MINI_CONFIG_VALUES, "mega": MEGA_CONFIG_VALUES}
PUBLISHED_NAMES = tuple(CONFIG_VALUES_FROM_NAME)


def published_config(name: str) -> DalleBartConfig:
    """The config of the published `mini` or `mega`; ValueError for any other name."""
    try:
        values = CONFIG_VALUES_FROM_NAME[name]
    except KeyError:
        raise ValueError(
            f"no published config named {name!r}; the published ones are "
            f"{', '.join(PUBLISHED_NAMES)}"
        ) from None
    return DalleBartConfig.from_dict(values)


def config_for(name: str, folder: Path | None) -> DalleBartConfig:
    """`folder/config.json` when the folder has one (a fetched model, or any model folder), else
    the published config of `name`."""
    if folder is not None and (Path(folder) / CONFIG_FILE).is_file():
        return DalleBartConfig.load(folder)
    return published_config(name)


def vqgan_config_for(folder: Path | None) -> VQGANConfig:
    """`folder/vqgan/config.json` when there is one, else the published f16/16384 VQGAN's."""
    path = Path(folder) / VQGAN_SUBFOLDER / CONFIG_FILE if folder is not None else None
    if path is not None and path.is_file():
        return VQGANConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return VQGANConfig()
