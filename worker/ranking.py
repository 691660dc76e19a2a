"""Scoring a job's tiles against its prompt (issue 17, "CLIP ranking"), as the DALL-E Mini
inference notebook does after sampling, so the pages can show the best tile first.

The ranker is any object with `scores(prompt, images) -> list[float]`; the real one is
minidalle.ranking.ClipRanker, loaded by the `dalleq worker` command. Scores travel in the result's
`meta` (shared/API-1.1.md). Ranking is an extra: a ranker that fails, or answers something the
server would refuse, never costs the job its images; the result goes without scores.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class Ranker(Protocol):
    def scores(self, prompt: str, images: Sequence[np.ndarray]) -> list[float]:
        """One score per image ([H, W, 3] uint8), higher for a better match with the prompt."""


def ranking_meta(ranker: Ranker | None, job_id: str, prompt: str, images: Sequence) -> dict:
    """`scores` and `rank_seconds` for the result meta; {} without a ranker or when it fails."""
    if ranker is None:
        return {}
    started = time.perf_counter()
    try:
        scores = [float(score) for score in
                  ranker.scores(prompt, [np.asarray(image, dtype=np.uint8) for image in images])]
    except Exception as error:  # noqa: BLE001 - ranking is an extra; the images still go
        log.warning("job %s: ranking failed, posting without scores: %s: %s", job_id,
                    type(error).__name__, error)
        return {}
    seconds = time.perf_counter() - started
    if len(scores) != len(images) or not all(math.isfinite(score) for score in scores):
        log.warning("job %s: the ranker gave %d scores for %d images (or one not finite); "
                    "posting without scores", job_id, len(scores), len(images))
        return {}
    return {"scores": scores, "rank_seconds": round(seconds, 3)}
