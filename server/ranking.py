"""CLIP scores of a job's images, read from the worker's result meta (shared/API-1.1.md).

The worker scores each tile against the prompt and sends the numbers in `meta.scores`; the server
never runs a model (issue 17, "CLIP ranking"). Ranking is a view: tiles keep their index order on
disk and in the grid, and the pages show them best first.
"""

import math


def scores_from_meta(meta: dict | None, image_count: int) -> list[float] | None:
    """The scores in `meta`, one finite number per image; None when there are none or they do not
    fit (rows stored before uploads were checked may hold anything)."""
    scores = (meta or {}).get("scores")
    if not isinstance(scores, list) or len(scores) != image_count:
        return None
    if not all(is_score(score) for score in scores):
        return None
    return [float(score) for score in scores]


def is_score(value) -> bool:
    """True for a JSON number that fits a float (not a bool, NaN, an infinity or 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def best_index(scores: list[float] | None) -> int | None:
    """The index of the highest score (the first of equals); None without scores."""
    if not scores:
        return None
    return max(range(len(scores)), key=scores.__getitem__)


def best_first(scores: list[float] | None, image_count: int) -> list[int]:
    """Image indices in the order the pages show them: by score, highest first (equal scores keep
    their index order); index order without scores."""
    if not scores:
        return list(range(image_count))
    return sorted(range(image_count), key=lambda index: -scores[index])
