"""A tiny CLIP with random weights, in `openai/clip-vit-base-patch32`'s layout.

`dalleq weights tiny DIR` writes it to `DIR/clip` beside the tiny DalleBart, so tests and the
demo rank tiles through exactly the code that loads the real CLIP (STYLE 9). Its scores mean
nothing. The tokenizer is CLIP's byte-level BPE scheme (each byte alone, each byte ending a word
with `</w>`, then merges, then `<|startoftext|>` and `<|endoftext|>` last, so the end-of-text
token has the highest id, as in CLIP's vocabulary) with a few merges learned here from a prompt corpus
(tiny.py's); transformers' CLIPTokenizerFast reads the files and writes the `tokenizer.json`.
"""

from __future__ import annotations

import collections
import itertools
import json
from pathlib import Path

from .checkpoint import save_params
from .clip import CONFIG_FILE, ClipConfig, ClipTextConfig, ClipVisionConfig
from .clip_checkpoint import random_params

WORD_END = "</w>"
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"
MERGE_COUNT = 100
MAX_TEXT_LENGTH = 77  # CLIP's context length: the tokenizer's model_max_length too


def tiny_clip_config(vocab_size: int) -> ClipConfig:
    """The published architecture at small widths; images stay 224 x 224 in 32 x 32 patches."""
    return ClipConfig(
        text=ClipTextConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                            num_hidden_layers=2, vocab_size=vocab_size),
        vision=ClipVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                num_hidden_layers=2),
        projection_dim=16,
    )


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte 0..255, which CLIP's BPE uses too."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    symbols, shifted_count = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted_count))
            shifted_count += 1
    return symbols


def learn_merges(words: list[str], merge_count: int) -> list[tuple[str, str]]:
    """Classic BPE (Sennrich et al. 2016): merge the most frequent adjacent pair, repeat."""
    spellings = collections.Counter(tuple(word[:-1]) + (word[-1] + WORD_END,) for word in words)
    merges = []
    for _ in range(merge_count):
        pairs = collections.Counter()
        for spelling, count in spellings.items():
            for pair in itertools.pairwise(spelling):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))  # ties: a fixed order
        merges.append(best)
        merged = collections.Counter()
        for spelling, count in spellings.items():
            symbols, index = [], 0
            while index < len(spelling):
                if spelling[index:index + 2] == best:
                    symbols.append(best[0] + best[1])
                    index += 2
                else:
                    symbols.append(spelling[index])
                    index += 1
            merged[tuple(symbols)] += count
        spellings = merged
    return merges


def write_clip_tokenizer(folder: Path, corpus: str) -> int:
    """vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
    merges learned from corpus; returns the vocabulary size."""
    from transformers import CLIPTokenizerFast

    words = [word.strip(",.") for word in corpus.lower().split()]
    merges = learn_merges([word for word in words if word], MERGE_COUNT)
    symbols = byte_symbols()
    vocab = symbols + [symbol + WORD_END for symbol in symbols]
    vocab += [first + second for first, second in merges] + [START_TOKEN, END_TOKEN]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{first} {second}\n" for first, second in merges))
    CLIPTokenizerFast.from_pretrained(str(folder)).save_pretrained(str(folder))  # tokenizer.json
    special_tokens = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN,
                      "pad_token": END_TOKEN}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_TEXT_LENGTH,
        "do_lower_case": True, "errors": "replace", **special_tokens,
    }, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2) + "\n")
    return len(vocab)


def write_tiny_clip(folder: Path, corpus: str, seed: int = 0) -> Path:
    """Write a random tiny CLIP to folder; returns folder."""
    return write_random_clip(folder, tiny_clip_config, corpus, seed)


def write_random_clip(folder: Path, config_for_vocab_size, corpus: str, seed: int = 0) -> Path:
    """A random CLIP of any shape: config_for_vocab_size(vocab size) gives its config
    (bench/bench_clip.py writes ViT-B/32's shape this way)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = config_for_vocab_size(write_clip_tokenizer(folder, corpus))
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    save_params(folder, random_params(config, seed))
    return folder
