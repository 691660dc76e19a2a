"""`--rank/--no-rank` (DALLEQ_RANK): unset, a worker ranks when its model folder has a CLIP or
the CLIP weights are in the models cache; asked to rank without them, it says how to fetch them
before loading anything."""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from dalleq.cli import main
from dalleq.ranking import load_ranker
from dalleq.up import worker_rank_arguments
from minidalle import weights as hub


def test_unset_ranks_with_the_model_s_own_clip_or_the_fetched_one(tmp_path, tiny_checkpoint):
    pytest.importorskip("jax")
    cache, model_dir = tmp_path / "cache", tmp_path / "model"
    model_dir.mkdir()
    assert load_ranker(None, model_dir, cache) is None
    assert load_ranker(False, tiny_checkpoint, cache) is None
    folder, ranker = load_ranker(None, tiny_checkpoint, cache)
    assert folder == tiny_checkpoint / "clip"
    assert len(ranker.scores("a fox", [np.zeros((256, 256, 3), np.uint8)] * 2)) == 2
    shutil.copytree(tiny_checkpoint / "clip", hub.model_folder(hub.CLIP_NAME, cache))
    folder, _ranker = load_ranker(None, model_dir, cache)
    assert folder == cache / "clip"


def test_rank_without_clip_weights_says_how_to_fetch_them(tmp_path, tiny_checkpoint):
    model_dir = shutil.copytree(tiny_checkpoint, tmp_path / "model",
                                ignore=shutil.ignore_patterns("clip"))
    for arguments, env in [(["--rank"], {}), ([], {"DALLEQ_RANK": "1"})]:
        result = CliRunner().invoke(main, ["worker", "--server", "http://127.0.0.1:9",
                                           "--token", "t", "--cache", str(tmp_path), "--once",
                                           "--model", str(model_dir), *arguments], env=env)
        assert result.exit_code == 1, result.output
        assert "dalleq weights fetch clip" in result.output
        assert str(tmp_path / "clip") in result.output


def test_up_hands_rank_and_the_cache_to_its_worker(tmp_path):
    assert worker_rank_arguments(None, None) == []
    assert worker_rank_arguments(True, None) == ["--rank"]
    assert worker_rank_arguments(False, tmp_path) == ["--cache", str(tmp_path), "--no-rank"]
