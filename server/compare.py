"""The compare page: two or more jobs' grids side by side at phone size (issue 18, families).

A family's members are the same idea run again, with other seeds or an edited prompt, so each
column shows its grid, its seed, and its prompt with the words that differ from the first one's
marked. The ids come as `/compare?ids=a,b,c` (a link) or `?ids=a&ids=b` (the family strip's
checkboxes, a plain GET form); too few, too many or unknown ones get a readable 4xx page.
"""

import difflib

from flask import Blueprint, render_template, request

from . import pages, services
from .errors import InvalidInput

bp = Blueprint("compare", __name__)
bp.before_request(pages.guard)  # the pages' login and CSRF rules

COMPARE_MIN, COMPARE_MAX = 2, 6  # six grids still fit a phone's screen two abreast, three down


def ids_from(values: list[str]) -> list[str]:
    """The distinct ids of every `ids` value, each split at commas, in the order given."""
    ids = []
    for value in values:
        for job_id in value.split(","):
            if job_id.strip() and job_id.strip() not in ids:
                ids.append(job_id.strip())
    if len(ids) < COMPARE_MIN:
        raise InvalidInput("Choose at least two jobs to compare.")
    if len(ids) > COMPARE_MAX:
        raise InvalidInput(
            f"Compare at most {COMPARE_MAX} jobs at a time ({len(ids)} were chosen)."
        )
    return ids


def marked_words(prompt: str, reference: str) -> list[tuple[str, bool]]:
    """The prompt's words, each with True where it is not in the reference prompt at that place."""
    words, reference_words = prompt.split(), reference.split()
    matcher = difflib.SequenceMatcher(a=reference_words, b=words, autojunk=False)
    is_changed = [True] * len(words)
    for block in matcher.get_matching_blocks():
        is_changed[block.b : block.b + block.size] = [False] * block.size
    return list(zip(words, is_changed, strict=True))


@bp.get("/compare")
def compare():
    ids = ids_from(request.args.getlist("ids"))
    jobs = pages.public(services().catalog.get_many(ids))
    reference = jobs[0]["prompt"]
    columns = [
        {"job": job, "words": marked_words(job["prompt"], reference)} for job in jobs
    ]
    return render_template("compare.html", columns=columns)
