"""Our Flax CLIP against transformers' PyTorch CLIPModel on the same random weights (issue 17).

The weights are written in `openai/clip-vit-base-patch32`'s layout and read back through
`ClipRanker.load`, as the real checkpoint is; the PyTorch model gets them renamed and transposed
(a Flax Dense kernel is [in, out], a torch Linear weight [out, in]; a Flax Conv kernel HWIO, a
torch Conv2d weight OIHW). The config is the tiny one (STYLE 17): the same code at small widths.
"""

import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from minidalle.checkpoint import MODEL_FILE, read_msgpack
from minidalle.clip_tiny import tiny_clip_config, write_random_clip
from minidalle.ranking import ClipRanker
from minidalle.tiny import CORPUS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPT = "a painting of a fox in the snow"
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    folder = write_random_clip(tmp_path_factory.mktemp("clip"), tiny_clip_config, CORPUS, seed=1)
    return ClipRanker.load(folder, compilation_cache_dir=False)


def torch_state_from_flax(params: dict) -> dict:
    """transformers' CLIPModel names for the published Flax tree."""
    state = {}
    for key, value in flatten_dict(params, sep=".").items():
        value = np.array(value, np.float32)  # a writable copy of the memory-mapped file
        prefix, leaf = key.rpartition(".")[0], key.rpartition(".")[2]
        if leaf == "kernel":
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
            key = f"{prefix}.weight"
        elif leaf in ("scale", "embedding"):
            key = f"{prefix}.weight"
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    return state


@pytest.fixture(scope="module")
def torch_model(ranker):
    config = ranker.config
    torch_config = transformers.CLIPConfig(
        # transformers checks the special ids against the vocabulary: the tiny one's last two
        text_config={**vars(config.text), "bos_token_id": config.text.vocab_size - 2,
                     "pad_token_id": config.text.vocab_size - 1},
        vision_config={**vars(config.vision)},
        projection_dim=config.projection_dim,
        logit_scale_init_value=config.logit_scale_init_value,
    )
    model = transformers.CLIPModel(torch_config).eval()
    params = read_msgpack(ranker.folder / MODEL_FILE)
    missing, unexpected = model.load_state_dict(torch_state_from_flax(params), strict=False)
    assert not unexpected and all("position_ids" in name for name in missing)
    return model


def features(output):
    """get_*_features gives a tensor in transformers 4, an output with pooler_output in 5."""
    return (output if isinstance(output, torch.Tensor) else output.pooler_output).numpy()


def sample_images(count: int) -> list[np.ndarray]:
    """Tiles that differ in colour and texture, so that their scores are spread out."""
    rng = np.random.default_rng(7)
    images = []
    for index in range(count):
        base = rng.integers(0, 256, 3)
        noise = rng.integers(-40 * (index % 3), 40 * (index % 3) + 1, (256, 256, 3))
        images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return images


def relative_error(ours, theirs) -> float:
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def test_text_embeddings_agree_with_transformers(ranker, torch_model):
    from minidalle.clip import Clip

    ids = ranker.token_ids(PROMPT)
    ours = np.asarray(Clip(ranker.config).apply({"params": ranker.params}, ids,
                                                 method=Clip.embed_text))
    with torch.no_grad():
        theirs = features(torch_model.get_text_features(input_ids=torch.from_numpy(ids).long()))
    assert relative_error(ours, theirs) < RELATIVE_TOLERANCE


def test_image_embeddings_agree_with_transformers(ranker, torch_model):
    from minidalle.clip import Clip

    pixels = ranker.pixels(sample_images(4))
    ours = np.asarray(Clip(ranker.config).apply({"params": ranker.params}, pixels,
                                                 method=Clip.embed_images))
    with torch.no_grad():
        theirs = features(torch_model.get_image_features(
            pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy())))
    assert relative_error(ours, theirs) < RELATIVE_TOLERANCE


def test_scores_and_ranking_agree_with_transformers(ranker, torch_model):
    images = sample_images(9)
    ours = np.asarray(ranker.scores(PROMPT, images))
    pixels = ranker.pixels(images).transpose(0, 3, 1, 2).copy()
    with torch.no_grad():
        theirs = torch_model(input_ids=torch.from_numpy(ranker.token_ids(PROMPT)).long(),
                             pixel_values=torch.from_numpy(pixels)).logits_per_image[:, 0].numpy()
    assert relative_error(ours, theirs) < RELATIVE_TOLERANCE
    assert len(set(np.round(theirs, 3))) == len(images), "the test needs distinct scores"
    assert list(np.argsort(-ours)) == list(np.argsort(-theirs))
