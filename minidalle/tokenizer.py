"""Prompt → BART token ids, as DalleBartProcessor does it (§5.2): normalise, then the byte-level
BPE tokenizer read from the checkpoint folder, padded/truncated to the model's text length.

The empty (unconditional) prompt is tokenized without the normaliser, as the reference does.
`transformers` is used for the tokenizer only, and imported when a tokenizer is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import DalleBartConfig
from .text import WORD_FREQUENCY_FILE, TextNormalizer

UNKNOWN_ID = 3  # `<unk>` (§3.4)
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


def load_bpe(folder: Path):
    """The published BartTokenizerFast files in folder, without touching the network."""
    from transformers import BartTokenizerFast

    return BartTokenizerFast.from_pretrained(str(folder), local_files_only=True)


class PromptTokenizer:
    """Turns prompts into `(ids, mask)` int32 arrays of shape [1, max_text_length]."""

    def __init__(self, folder: Path, config: DalleBartConfig):
        folder = Path(folder)
        self.config = config
        self.bpe = load_bpe(folder)
        word_frequencies = folder / WORD_FREQUENCY_FILE
        self.normalize = (
            TextNormalizer(word_frequencies if word_frequencies.exists() else None)
            if config.normalize_text else None
        )

    def ids_and_mask(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.bpe(
            text, padding="max_length", truncation=True, max_length=self.config.max_text_length,
            return_attention_mask=True,
        )
        ids = np.asarray(encoded["input_ids"], np.int32)
        # The BART vocabulary has 50265 entries, mini's embedding 50264 rows (§5.2).
        ids[ids >= self.config.encoder_vocab_size] = UNKNOWN_ID
        return ids[None], np.asarray(encoded["attention_mask"], np.int32)[None]

    def encode(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        text = self.normalize(prompt) if self.normalize is not None else prompt
        return self.ids_and_mask(text)

    def encode_unconditional(self) -> tuple[np.ndarray, np.ndarray]:
        """`[<s>, </s>, <pad>...]` with mask `[1, 1, 0...]` (§4.1.1)."""
        return self.ids_and_mask("")
