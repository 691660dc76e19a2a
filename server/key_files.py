"""Keys the server makes once and keeps in its data folder (the session key, the VAPID key).

Written whole under a temporary name with mode 0600, then linked into place: a server starting at
the same moment either wins the link or finds the complete file the other one linked, so two
servers always agree on one key.
"""

import os
from pathlib import Path


def write_once(path: Path, content: bytes) -> None:
    """Put `content` at `path` unless another writer got there first (then theirs stays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
