"""`--rank/--no-rank` (DALLEQ_RANK): unset, a worker ranks when the CLIP weights are in the
models cache; asked to rank without them, it says how to fetch them before loading anything."""

from click.testing import CliRunner

from dalleq.cli import main
from dalleq.ranking import CLIP_WEIGHT_FILES, clip_folder, load_ranker, should_rank
from dalleq.up import worker_rank_arguments


def fetch_fake_clip(cache):
    folder = clip_folder(cache)
    folder.mkdir(parents=True)
    for name in CLIP_WEIGHT_FILES:
        (folder / name).write_text("{}")


def test_unset_ranks_only_when_the_clip_weights_are_in_the_cache(tmp_path):
    assert should_rank(None, tmp_path) is False
    assert load_ranker(None, tmp_path) is None
    fetch_fake_clip(tmp_path)
    assert should_rank(None, tmp_path) is True
    assert should_rank(False, tmp_path) is False
    assert load_ranker(False, tmp_path) is None


def test_rank_without_clip_weights_says_how_to_fetch_them(tmp_path):
    for arguments, env in [(["--rank"], {}), ([], {"DALLEQ_RANK": "1"})]:
        result = CliRunner().invoke(main, ["worker", "--server", "http://127.0.0.1:9",
                                           "--token", "t", "--cache", str(tmp_path), "--once",
                                           *arguments], env=env)
        assert result.exit_code == 1, result.output
        assert "dalleq weights fetch clip" in result.output
        assert str(tmp_path / "clip") in result.output


def test_up_hands_rank_and_the_cache_to_its_worker(tmp_path):
    assert worker_rank_arguments(None, None) == []
    assert worker_rank_arguments(True, None) == ["--rank"]
    assert worker_rank_arguments(False, tmp_path) == ["--cache", str(tmp_path), "--no-rank"]
