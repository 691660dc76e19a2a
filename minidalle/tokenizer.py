"""Prompt → BART token ids, as DalleBartProcessor does it (§5.2): normalise, then the byte-level
BPE tokenizer read from the checkpoint folder, padded/truncated to the model's text length.

The empty (unconditional) prompt is tokenized without the normaliser, as the reference does.
The BPE is the checkpoint's `tokenizer.json` run by the `tokenizers` library, which is what
transformers' BartTokenizerFast runs too; going to it directly spares every start transformers'
import (seconds, and a "PyTorch was not found" line on a machine without torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import DalleBartConfig
from .text import WORD_FREQUENCY_FILE, TextNormalizer

UNKNOWN_ID = 3  # `<unk>` (§3.4)
PAD_TOKEN = "<pad>"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_FILES = ("vocab.json", "merges.txt", TOKENIZER_FILE, "tokenizer_config.json",
                   "special_tokens_map.json")


def load_bpe(folder: Path, max_length: int):
    """folder's tokenizer.json, adding `<s> … </s>`, padded and truncated to max_length ids."""
    from tokenizers import Tokenizer

    bpe = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
    bpe.enable_truncation(max_length)
    bpe.enable_padding(length=max_length, pad_id=bpe.token_to_id(PAD_TOKEN), pad_token=PAD_TOKEN)
    return bpe


class PromptTokenizer:
    """Turns prompts into `(ids, mask)` int32 arrays of shape [1, max_text_length]."""

    def __init__(self, folder: Path, config: DalleBartConfig):
        folder = Path(folder)
        self.config = config
        self.bpe = load_bpe(folder, config.max_text_length)
        word_frequencies = folder / WORD_FREQUENCY_FILE
        self.normalize = (
            TextNormalizer(word_frequencies if word_frequencies.exists() else None)
            if config.normalize_text else None
        )

    def ids_and_mask(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.bpe.encode(text)
        ids = np.asarray(encoded.ids, np.int32)
        # The BART vocabulary has 50265 entries, mini's embedding 50264 rows (§5.2).
        ids[ids >= self.config.encoder_vocab_size] = UNKNOWN_ID
        return ids[None], np.asarray(encoded.attention_mask, np.int32)[None]

    def encode(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        text = self.normalize(prompt) if self.normalize is not None else prompt
        return self.ids_and_mask(text)

    def encode_unconditional(self) -> tuple[np.ndarray, np.ndarray]:
        """`[<s>, </s>, <pad>...]` with mask `[1, 1, 0...]` (§4.1.1)."""
        return self.ids_and_mask("")
