"""What a shared link puts in the queue form: Android's share sheet and plain /?prompt= links.

The manifest's share_target (pages.manifest, after the W3C Web Share Target spec) makes "Share ->
dalle-queue" open `/?title=...&text=...&url=...`; iOS Shortcuts and bookmarks use `/?prompt=...`.
Either only fills the form: nothing is queued until the person taps "Queue it". Apps fill the
three fields differently (a browser shares title and url, a notes app the text, some put a link
in the text), so the choice is: `prompt`, else the text, else the title. A link alone is not a
prompt (the model would draw the letters of the URL), so it fills nothing and says so.
"""

import re

from . import defaults

_LINK_ONLY = re.compile(r"\s*https?://\S*\s*", re.IGNORECASE)
LINK_ONLY_NOTE = "A link alone is not a prompt: type what you would like to see."


def is_link_only(text: str) -> bool:
    return bool(_LINK_ONLY.fullmatch(text))


def shared_prompt(args) -> tuple[str, str | None]:
    """The prompt a shared link asks for, cut to the prompt limit, and a note to show with it
    (why it was cut, or why nothing was filled); ("", None) when nothing was shared."""
    candidates = [args.get(name, "").strip() for name in ("prompt", "text", "title")]
    words = [text for text in candidates if text and not is_link_only(text)]
    if not words:
        has_link = any(candidates) or args.get("url", "").strip()
        return "", LINK_ONLY_NOTE if has_link else None
    prompt = words[0]
    limit = defaults.PROMPT_MAX_CHARS
    if len(prompt) <= limit:
        return prompt, None
    note = (f"The shared text has {len(prompt):,} characters; the prompt keeps the first {limit}. "
            "Check the end before you queue it.")
    return prompt[:limit], note
