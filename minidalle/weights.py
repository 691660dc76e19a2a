"""Where the published checkpoints live on disk, and `dalleq weights fetch`, which puts them there.

`Pipeline.load(folder)` wants one folder per model: the DalleBart files (config, weights, the BART
tokenizer files, and the word-frequency file the normaliser uses to split hashtags) with the VQGAN
in `folder/vqgan`. The Hugging Face hub keeps these in three repos (shared/reference/
dalle-mini-architecture.md §5.1, §5.2, §6.1): the model repo, `dalle-mini/dalle-mini` for the
word-frequency file (dalle-mini's own code reads it from mini's repo for mega too), and
`dalle-mini/vqgan_imagenet_f16_16384` at the commit dalle-mini's inference notebook pins.
`fetch` downloads each repo's files straight into their place in the folder
(`snapshot_download(local_dir=...)`), so there is nothing to move afterwards, a second fetch only
checks what is already there, and a person without internet access can copy the same files by hand.

`dalleq weights fetch clip` puts `openai/clip-vit-base-patch32` (config, Flax weights, tokenizer
files) in the cache's `clip` folder; the worker ranks tiles with it when `clip_folder` finds it
(a model folder's own `clip/`, as the tiny model has, comes first).

The demo model (`--model demo`) is a tiny checkpoint with random weights (tiny.py), written into
the cache by `resolve_model` the first time it is named: a few seconds, no download.

Only `fetch` touches the network (STYLE 7); `resolve_model` reads the disk, and writes only the
demo model. This module imports neither JAX nor huggingface_hub, so `dalleq` starts fast and
`dalleq serve` runs on a machine without the model stack; the file names below are the hub's, and a
test checks that they are the ones the loaders read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MODELS_ENV = "DALLEQ_MODELS"  # the cache root; each model is a folder in it named after the model
VQGAN_SUBFOLDER = "vqgan"  # pipeline.VQGAN_SUBFOLDER
CONFIG_FILE = "config.json"
WORD_FREQUENCY_FILE = "enwiki-words-frequency.txt"
DALLE_BART_FILES = (
    CONFIG_FILE, "flax_model.msgpack",
    # the BART tokenizer (tokenizer.TOKENIZER_FILES)
    "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json",
)
VQGAN_FILES = (CONFIG_FILE, "flax_model.msgpack")
CLIP_FILES = (
    CONFIG_FILE, "flax_model.msgpack",
    # CLIP's tokenizer, read by transformers' CLIPTokenizerFast
    "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json",
)

MINI_REPO = "dalle-mini/dalle-mini"
VQGAN_REPO = "dalle-mini/vqgan_imagenet_f16_16384"
VQGAN_COMMIT = "e93a26e7707683d349bf5d5c41c5b0ef69b677a9"  # pinned by dalle-mini's notebook
CLIP_REPO = "openai/clip-vit-base-patch32"
HUB_URL = "https://huggingface.co"


class WeightsError(Exception):
    """Weights that are missing, or that could not be downloaded; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class HubFiles:
    """Some files of one hub repo, and the subfolder of the model folder they belong in."""

    repo_id: str
    file_names: tuple[str, ...]
    subfolder: str = ""  # "" is the model folder itself
    revision: str | None = None  # None: the repo's main branch

    def describe(self, folder: Path) -> str:
        at = f" at revision {self.revision}" if self.revision else ""
        return (f"{', '.join(self.file_names)} from {HUB_URL}/{self.repo_id}{at} into "
                f"{folder / self.subfolder}")


def model_sources(model_repo: str) -> tuple[HubFiles, ...]:
    """What a model folder is made of when its DalleBart lives in `model_repo`."""
    word_frequencies = HubFiles(MINI_REPO, (WORD_FREQUENCY_FILE,))
    vqgan = HubFiles(VQGAN_REPO, VQGAN_FILES, VQGAN_SUBFOLDER, VQGAN_COMMIT)
    if model_repo == MINI_REPO:
        return HubFiles(MINI_REPO, DALLE_BART_FILES + (WORD_FREQUENCY_FILE,)), vqgan
    return HubFiles(model_repo, DALLE_BART_FILES), word_frequencies, vqgan


CLIP_NAME = "clip"
CLIP_SUBFOLDER = "clip"  # tiny.CLIP_SUBFOLDER: a model folder's own CLIP
SOURCES_FROM_NAME = {
    "mini": model_sources(MINI_REPO),
    "mega": model_sources("dalle-mini/dalle-mega"),
    CLIP_NAME: (HubFiles(CLIP_REPO, CLIP_FILES),),
}
MODEL_NAMES = ("mini", "mega")  # what generates images
FETCH_NAMES = (*MODEL_NAMES, CLIP_NAME)
DEMO_MODEL_NAME = "demo"
NAMED_MODELS = (*MODEL_NAMES, DEMO_MODEL_NAME)  # what --model takes besides a folder
# fp32 weights + VQGAN + word frequencies (reference §7, "Weight files"); CLIP's
# flax_model.msgpack is 605 MB. For the messages only.
DOWNLOAD_GB_FROM_NAME = {"mini": 2.1, "mega": 10.8, CLIP_NAME: 0.6}


def default_cache() -> Path:
    """`$DALLEQ_MODELS`, else `$XDG_CACHE_HOME/dalle-queue/models` (`~/.cache/...`)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dalle-queue" / "models"


def model_folder(name: str, cache: Path | str | None = None) -> Path:
    """The folder `fetch` fills for `name` (mini, mega or clip); cache None: `default_cache()`."""
    if name not in SOURCES_FROM_NAME:
        raise WeightsError(
            f"unknown model {name!r}; the published ones are {', '.join(FETCH_NAMES)}"
        )
    return cache_root(cache) / name


def missing_files(name: str, folder: Path) -> list[Path]:
    """The files of model `name` that are not (yet) in `folder`."""
    return [
        folder / source.subfolder / file_name
        for source in SOURCES_FROM_NAME[name]
        for file_name in source.file_names
        if not (folder / source.subfolder / file_name).is_file()
    ]


def cache_root(cache: Path | str | None) -> Path:
    return Path(cache).expanduser() if cache is not None else default_cache()


def demo_model_folder(cache: Path | str | None = None) -> Path:
    """The demo checkpoint in the cache, written on first use (imports JAX that once).

    It is written beside its place and renamed into it, so a stop halfway leaves no half model.
    """
    folder = cache_root(cache) / DEMO_MODEL_NAME
    if (folder / CONFIG_FILE).is_file():
        return folder
    from .tiny import write_tiny_checkpoint

    log.info("writing the demo model (random weights) to %s", folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{DEMO_MODEL_NAME}-", dir=folder.parent))
    try:
        write_tiny_checkpoint(scratch)
        if folder.is_dir() and not (folder / CONFIG_FILE).is_file():
            shutil.rmtree(folder)  # what an older, interrupted writer left
        os.replace(scratch, folder)
    except OSError:
        if not (folder / CONFIG_FILE).is_file():  # else another process wrote it first
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def resolve_model(name_or_dir: str | Path, cache: Path | str | None = None) -> Path:
    """The folder to load for `--model`: mini/mega from the cache, the demo model (written on
    first use), else a folder with config.json.

    Raises WeightsError saying what to run or fix when there is nothing loadable there.
    """
    if str(name_or_dir) == DEMO_MODEL_NAME:
        return demo_model_folder(cache)
    if str(name_or_dir) in MODEL_NAMES:
        name = str(name_or_dir)
        folder = model_folder(name, cache)
        missing = missing_files(name, folder)
        if missing:
            raise WeightsError(
                f"the {name} weights are not in {folder} ({len(missing)} files missing, e.g. "
                f"{missing[0].relative_to(folder)}): run `dalleq weights fetch {name}` first "
                f"(about {DOWNLOAD_GB_FROM_NAME[name]} GB)"
            )
        return folder
    folder = Path(name_or_dir).expanduser()
    if (folder / CONFIG_FILE).is_file():
        return folder
    what = "has no config.json" if folder.is_dir() else "does not exist"
    raise WeightsError(
        f"{folder} {what}: give {' or '.join(MODEL_NAMES)} (after `dalleq weights fetch NAME`) "
        f"or a model folder with config.json (`dalleq weights tiny DIR` writes a small random one)"
    )


def clip_folder(model_dir: Path | None, cache: Path | str | None = None) -> Path | None:
    """The CLIP to rank tiles with: `model_dir/clip` if it has config.json, else the fetched one
    in the cache if all its files are there, else None (no ranking)."""
    if model_dir is not None and (Path(model_dir) / CLIP_SUBFOLDER / CONFIG_FILE).is_file():
        return Path(model_dir) / CLIP_SUBFOLDER
    folder = model_folder(CLIP_NAME, cache)
    return folder if not missing_files(CLIP_NAME, folder) else None


def network_errors() -> tuple[type[BaseException], ...]:
    """What a download raises when the hub can't be reached or refuses: huggingface_hub's own errors
    and Python's network errors are OSErrors; its HTTP client's errors (httpx2 in 2.x, httpx in
    1.x) are not, so they are looked up in the modules it has already imported."""
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx"):
        module = sys.modules.get(module_name)
        if module is not None and isinstance(getattr(module, "HTTPError", None), type):
            errors.append(module.HTTPError)
    return tuple(errors)


def root_cause(error: BaseException) -> str:
    """The first line of the innermost error: `ConnectError: [Errno 111] Connection refused`."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0].rstrip('.')}"


def unreachable_message(name: str, folder: Path, what_failed: str) -> str:
    """One paragraph: what failed, that huggingface.co must be reachable, and the by-hand route."""
    by_hand = "; ".join(source.describe(folder) for source in SOURCES_FROM_NAME[name])
    return (
        f"Could not download the {name} weights: {what_failed}. `dalleq weights fetch` needs "
        f"internet access to {HUB_URL} (and HF_HUB_OFFLINE unset). To install them by hand, copy "
        f"these files from a machine that has them (or from the hub's web pages): {by_hand}. "
        f"Then {'the worker' if name == CLIP_NAME else f'`dalleq generate --model {name}`'} "
        f"finds them."
    )


def fetch(name: str, cache: Path | str | None = None) -> Path:
    """Download `name` (mini or mega with its VQGAN, or clip) into `model_folder(name, cache)`.

    Files already there are kept. Returns the folder; raises WeightsError with a paragraph to show
    the user when the hub can't be reached or a file is still missing afterwards.
    """
    from huggingface_hub import snapshot_download

    folder = model_folder(name, cache)
    for source in SOURCES_FROM_NAME[name]:
        try:
            snapshot_download(
                source.repo_id, revision=source.revision, local_dir=folder / source.subfolder,
                allow_patterns=list(source.file_names),
            )
        except network_errors() as error:
            raise WeightsError(unreachable_message(
                name, folder, f"{source.repo_id} failed with {root_cause(error)}"
            )) from error
    # Offline, snapshot_download hands back a non-empty local_dir as it is, complete or not.
    missing = missing_files(name, folder)
    if missing:
        listed = ", ".join(str(path.relative_to(folder)) for path in missing)
        raise WeightsError(unreachable_message(
            name, folder, f"{folder} still lacks {listed} (was the hub unreachable?)"
        ))
    return folder
