"""`dalleq weights tiny DIR`: a small random DalleBart + VQGAN written in the published format.

The folder has what `dalle-mini/dalle-mini` has (config.json, flax_model.msgpack, the BART
tokenizer files) plus a `vqgan/` folder like `dalle-mini/vqgan_imagenet_f16_16384`, so tests and
the demo load it through exactly the code that loads real weights (STYLE 9); `clip/` holds a
tiny CLIP in `openai/clip-vit-base-patch32`'s layout (clip_tiny.py) to rank its tiles. The architecture is
the published one at small widths; the image side keeps the real 16384 codes and 256×256 output,
so the sampler's restriction to codes and the server's tile sizes are exercised for real.

The tokenizer is a byte-level BPE trained here on a few hundred words of prompt-like text: its
ids differ from BART's, but the files have the published layout and special ids
(`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4).
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import save_params
from .clip_tiny import write_tiny_clip
from .config import CONFIG_FILE, DalleBartConfig
from .random_weights import random_params, random_vqgan_params
from .tokenizer import TOKENIZER_FILE
from .vqgan import VQGANConfig, save_vqgan

RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS.txt"
CLIP_SUBFOLDER = "clip"  # weights.CLIP_SUBFOLDER: the tiny CLIP that ranks the tiny model's tiles
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# What transformers' BART tokenizer reads from tokenizer_config.json (the published file's keys).
TOKENIZER_CONFIG = {
    "tokenizer_class": "BartTokenizer", "add_prefix_space": False, "trim_offsets": True,
    "errors": "replace", "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
    "sep_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
}
TOKENIZER_VOCAB_SIZE = 600

TINY_VQGAN = VQGANConfig(ch=32, ch_mult=(1, 1, 1, 1, 1), num_res_blocks=1, z_channels=32,
                         embed_dim=32)

CORPUS = """
a painting of a fox in the snow, an astronaut riding a horse on the moon, a watercolor of a
lighthouse at sunset, a cat wearing sunglasses, a bowl of ramen in the style of van gogh, a robot
reading a book in a library, the eiffel tower made of cheese, an avocado armchair, a teddy bear on
a skateboard in times square, a castle on a hill under a starry night, a photograph of a mountain
lake at dawn, pixel art of a dragon, a drawing of a city street in the rain, sunflowers in a blue
vase, an oil painting of a ship in a storm, a cute corgi puppy playing in the grass, a futuristic
car in a neon city, a portrait of an old man with a beard, a forest path in autumn with red and
yellow leaves, a cup of coffee on a wooden table, two people walking on the beach, a white horse
in a green field, a bird sitting on a branch, a red apple and a green pear, a small house by the
river, children playing football in the park, a black and white photo of a train station, the
northern lights over snowy mountains, a plate of pancakes with strawberries, a snowman with a
carrot nose, a hot air balloon over the desert, a golden retriever in the water, an elephant
painting a picture, a penguin in a tuxedo, a cyberpunk samurai, a medieval knight on a horse
"""


def tiny_config(text_vocab_size: int) -> DalleBartConfig:
    """The published switches (normformer, GLU, bias-free, bias-only norms) at small widths."""
    return DalleBartConfig(
        d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=96, decoder_ffn_dim=96,
        encoder_vocab_size=text_vocab_size, image_vocab_size=16384, init_std=0.02,
    )


def write_tokenizer(folder: Path) -> int:
    """Train the small BPE, save the published tokenizer file set; returns its vocabulary size."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    bpe = ByteLevelBPETokenizer()
    words = CORPUS.split()
    bpe.train_from_iterator([CORPUS] * 4 + words, vocab_size=TOKENIZER_VOCAB_SIZE,
                            min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe.save_model(str(folder))  # vocab.json, merges.txt
    # BART's post-processor: <s> … </s> around every text, as the published tokenizer.json has.
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                           ("<s>", bpe.token_to_id("<s>")), trim_offsets=True,
                                           add_prefix_space=False)
    bpe.save(str(folder / TOKENIZER_FILE))
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    return bpe.get_vocab_size()


def write_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write a random model to folder (and folder/vqgan), and a random CLIP to folder/clip;
    returns folder."""
    folder = Path(folder)
    write_tiny_clip(folder / CLIP_SUBFOLDER, CORPUS, seed)
    write_random_marker(folder / CLIP_SUBFOLDER)
    return write_random_checkpoint(folder, tiny_config, TINY_VQGAN, seed)


def write_random_checkpoint(folder: Path, config_for_vocab_size, vqgan_config: VQGANConfig,
                            seed: int = 0) -> Path:
    """Write a random model of any shape: config_for_vocab_size(text vocab size) gives its config
    (bench/bench_worker.py writes the real mini shape this way)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_vocab_size = write_tokenizer(folder)
    config = config_for_vocab_size(text_vocab_size)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    save_params(folder, random_params(config, seed))
    save_vqgan(folder / "vqgan", vqgan_config, random_vqgan_params(vqgan_config, seed))
    write_random_marker(folder)
    return folder


def write_random_marker(folder: Path) -> None:
    (folder / RANDOM_WEIGHTS_MARKER).write_text(
        "These weights are random: the images are noise-like patterns, not pictures of the "
        "prompt, and CLIP scores mean nothing. Written by `dalleq weights tiny` for tests and "
        "the demo.\n"
    )


def is_random_weights(folder: Path) -> bool:
    return (Path(folder) / RANDOM_WEIGHTS_MARKER).exists()
