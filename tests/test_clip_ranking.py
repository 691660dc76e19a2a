"""CLIP's preprocessing against transformers' CLIPImageProcessor, and the tiny CLIP that
`dalleq weights tiny` writes, loaded through `ClipRanker.load` as the worker loads it."""

import numpy as np
import pytest

from minidalle import weights
from minidalle.ranking import ClipRanker, preprocess
from minidalle.tiny import CLIP_SUBFOLDER, RANDOM_WEIGHTS_MARKER, write_tiny_checkpoint

transformers = pytest.importorskip("transformers")


def clip_image_processor():
    """The PIL-based processor (transformers 5 names it CLIPImageProcessorPil), at its defaults,
    which are openai/clip-vit-base-patch32's preprocessor_config.json."""
    processor_class = getattr(transformers, "CLIPImageProcessorPil", None)
    return (processor_class or transformers.CLIPImageProcessor)()


@pytest.mark.parametrize("height, width", [(256, 256), (300, 240), (240, 333), (224, 224)])
def test_preprocessing_matches_clip_image_processor(height, width):
    image = np.random.default_rng(height + width).integers(0, 256, (height, width, 3), np.uint8)
    theirs = clip_image_processor()(images=[image], return_tensors="np")["pixel_values"][0]
    ours = preprocess(image, 224)
    assert ours.shape == (224, 224, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs.transpose(1, 2, 0), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny")


def test_weights_tiny_writes_a_clip_in_the_published_layout(tiny_model):
    clip_dir = tiny_model / CLIP_SUBFOLDER
    assert sorted(path.name for path in clip_dir.iterdir()) == sorted(
        (*weights.CLIP_FILES, RANDOM_WEIGHTS_MARKER))
    assert weights.clip_folder(tiny_model) == clip_dir


def test_the_fetched_clip_is_found_in_the_cache_only_when_complete(tmp_path):
    cache_clip = weights.model_folder(weights.CLIP_NAME, tmp_path)
    cache_clip.mkdir(parents=True)
    (cache_clip / "config.json").write_text("{}")
    assert weights.clip_folder(None, tmp_path) is None
    for name in weights.CLIP_FILES:
        (cache_clip / name).write_text("")
    assert weights.clip_folder(tmp_path / "no-such-model", tmp_path) == cache_clip


def test_ranker_loads_the_tiny_clip_and_scores_each_image_in_order(tiny_model):
    ranker = ClipRanker.load(tiny_model / CLIP_SUBFOLDER, compilation_cache_dir=False)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), np.uint8) for _ in range(4)]
    scores = ranker.scores("a red apple", images)
    assert len(scores) == 4 and all(isinstance(score, float) for score in scores)
    assert np.isfinite(scores).all()
    assert ranker.scores("a red apple", images[::-1]) == pytest.approx(scores[::-1], rel=1e-5)
    assert ranker.scores("a red apple", []) == []


def test_a_misshapen_clip_checkpoint_names_the_parameter(tiny_model, tmp_path):
    import shutil

    from minidalle.checkpoint import MODEL_FILE, read_msgpack, save_params

    broken = shutil.copytree(tiny_model / CLIP_SUBFOLDER, tmp_path / "clip")
    params = read_msgpack(broken / MODEL_FILE)
    params["visual_projection"]["kernel"] = np.zeros((3, 3), np.float32)
    save_params(broken, params)
    with pytest.raises(ValueError, match="visual_projection/kernel has shape"):
        ClipRanker.load(broken, compilation_cache_dir=False)
