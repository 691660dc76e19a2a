"""The newest live preview of each running job: one file per job under DATA_DIR/previews/.

A preview lives only while its job runs (shared/API-1.1.md), so unlike a result (storage.py) it is
not fsynced: a power cut loses at most a picture the next preview replaces. It is written under a
temporary name and renamed into place, so a page reading it never sees half a file. The job row
keeps the preview's steps (queue.py's post_preview); the queue drops the file when the job stops
running. Like storage.py, paths are built from the job's server-made id only.
"""

import os
import secrets
from pathlib import Path

PREVIEWS_FOLDER = "previews"
PREVIEW_NAME = "preview"  # served as /files/<job id>/preview (server/files.py)
PREVIEW_SUFFIX = ".preview"
# Leading bytes of the three formats a preview may be (images.check_preview), and their types.
MEDIA_TYPE_FROM_SIGNATURE = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}
WEBP_RIFF, WEBP_TAG = b"RIFF", b"WEBP"  # RIFF, 4 size bytes, WEBP


def media_type(head: bytes) -> str:
    """The Content-Type of a stored preview from its first 12 bytes."""
    if head[:4] == WEBP_RIFF and head[8:12] == WEBP_TAG:
        return "image/webp"
    for signature, kind in MEDIA_TYPE_FROM_SIGNATURE.items():
        if head.startswith(signature):
            return kind
    return "application/octet-stream"


class PreviewStore:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir).expanduser().resolve() / PREVIEWS_FOLDER

    def path(self, job_id: str) -> Path:
        path = (self.root / f"{job_id}{PREVIEW_SUFFIX}").resolve()
        if path.parent != self.root:
            raise ValueError(f"preview of job {job_id!r} is outside the data dir")
        return path

    def save(self, job_id: str, data: bytes) -> None:
        """Replace the job's preview: written whole under a temporary name, then renamed."""
        path = self.path(job_id)
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def remove(self, job_id: str) -> None:
        self.path(job_id).unlink(missing_ok=True)

    def files_older_than(self, cutoff_seconds: float) -> dict[str, Path]:
        """job id -> preview file, for the files last written before cutoff (a time.time());
        a temporary file a kill left behind counts under its own name, which no job has."""
        if not self.root.is_dir():
            return {}
        found = {}
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff_seconds:
                    found[path.name.removesuffix(PREVIEW_SUFFIX)] = path
            except OSError:  # removed while we looked
                continue
        return found
