"""The prompt tokenizer: the ids transformers' BartTokenizerFast gave, without transformers.

The expected ids were read from BartTokenizerFast over the tiny checkpoint's tokenizer files before
the tokenizer moved to the `tokenizers` library; the tiny BPE is trained deterministically.
"""

import subprocess
import sys

import pytest

pytest.importorskip("jax")
pytest.importorskip("tokenizers")

from minidalle.tiny import tiny_config, write_tokenizer
from minidalle.tokenizer import PromptTokenizer
from tests.helpers import REPO


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    config = tiny_config(write_tokenizer(folder)).replace(normalize_text=False)
    return PromptTokenizer(folder, config)


@pytest.mark.parametrize("text, ids", [
    (" a red apple", [0, 261, 375, 579, 2]),
    (" a painting of a fox in the snow", [0, 261, 366, 273, 261, 333, 92, 272, 275, 329, 2]),
])
def test_ids_are_bart_tokenizer_fasts(tokenizer, text, ids):
    encoded, mask = tokenizer.ids_and_mask(text)
    assert encoded.shape == mask.shape == (1, 64)
    assert encoded[0, :len(ids)].tolist() == ids and (encoded[0, len(ids):] == 1).all()
    assert mask[0].tolist() == [1] * len(ids) + [0] * (64 - len(ids))


def test_no_pytorch_notice_and_no_transformers_without_torch(tmp_path):
    """On a machine without torch, tokenizing prints nothing and never imports transformers."""
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if PyTorch were not installed\n"
        "from pathlib import Path\n"
        "from minidalle.tiny import tiny_config, write_tokenizer\n"
        "from minidalle.tokenizer import PromptTokenizer\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "tokenizer = PromptTokenizer(folder, tiny_config(write_tokenizer(folder)))\n"
        "print(tokenizer.encode('a red apple')[0][0, :2].tolist())\n"
        "print(sorted(name for name in sys.modules if name.startswith('transformers')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[0, 261]", "[]"]
    assert "PyTorch" not in done.stderr and "[transformers]" not in done.stderr
