"""Finished results on local disk until the server has them (issue: "never regenerated needlessly
and never lost").

A result is written here, complete, before its first upload, and removed only once the server
has answered for it. One folder per job: `claim.json` (the job and the lease it was made under),
`meta.json`, `grid.png`, `image_<i>.png`. A folder is written under a temporary name and renamed,
so a crash leaves either a whole entry or none. An entry whose lease was lost stays a while as an
orphan: if the same job (same id, same prompt, seed, grid, params and model) comes back to this
worker, its images are posted instead of made again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from .client import Claim

CLAIM_FILE = "claim.json"
META_FILE = "meta.json"
GRID_FILE = "grid.png"


def tile_file(index: int) -> str:
    return f"image_{index}.png"


@dataclasses.dataclass
class SpooledResult:
    folder: Path
    job: dict
    lease: str
    fingerprint: str
    is_orphan: bool
    meta: dict

    @property
    def job_id(self) -> str:
        return self.job["id"]

    def grid_png(self) -> bytes:
        return (self.folder / GRID_FILE).read_bytes()

    def tile_pngs(self) -> list[bytes]:
        return [(self.folder / tile_file(i)).read_bytes() for i in range(self.job["grid"] ** 2)]


class Spool:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, claim: Claim, fingerprint: str, grid_png: bytes, tile_pngs: list[bytes],
             meta: dict) -> SpooledResult:
        final = self.folder / claim.job_id
        scratch = self.folder / f".{claim.job_id}.{os.getpid()}.tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        (scratch / GRID_FILE).write_bytes(grid_png)
        for index, png in enumerate(tile_pngs):
            (scratch / tile_file(index)).write_bytes(png)
        (scratch / META_FILE).write_text(json.dumps(meta))
        self._write_claim(scratch, claim.job, claim.lease, fingerprint, is_orphan=False)
        fsync_tree(scratch)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(scratch, final)
        return self._read(final)

    def pending(self) -> list[SpooledResult]:
        """Entries still owed to the server (not orphans), oldest first."""
        return [entry for entry in self._entries() if not entry.is_orphan]

    def orphan_for(self, claim: Claim, fingerprint: str) -> SpooledResult | None:
        """A lost-lease result of exactly this job, re-bound to the new lease; None if none."""
        folder = self.folder / claim.job_id
        entry = self._read(folder) if (folder / CLAIM_FILE).is_file() else None
        if entry is None or entry.fingerprint != fingerprint:
            return None
        self._write_claim(folder, claim.job, claim.lease, fingerprint, is_orphan=False)
        return self._read(folder)

    def orphan(self, entry: SpooledResult) -> None:
        self._write_claim(entry.folder, entry.job, entry.lease, entry.fingerprint, is_orphan=True)

    def remove(self, entry: SpooledResult) -> None:
        shutil.rmtree(entry.folder, ignore_errors=True)

    def prune_orphans(self, keep_seconds: float, now_seconds: float | None = None) -> int:
        now_seconds = time.time() if now_seconds is None else now_seconds
        removed = 0
        for entry in self._entries():
            age = now_seconds - (entry.folder / CLAIM_FILE).stat().st_mtime
            if entry.is_orphan and age > keep_seconds:
                self.remove(entry)
                removed += 1
        return removed

    def _entries(self) -> list[SpooledResult]:
        folders = [f for f in self.folder.iterdir()
                   if f.is_dir() and not f.name.startswith(".") and (f / CLAIM_FILE).is_file()]
        folders.sort(key=lambda f: (f / CLAIM_FILE).stat().st_mtime)
        return [entry for entry in map(self._read, folders) if entry is not None]

    def _read(self, folder: Path) -> SpooledResult | None:
        try:
            claim = json.loads((folder / CLAIM_FILE).read_text())
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError):
            return None
        return SpooledResult(folder, claim["job"], claim["lease"], claim["fingerprint"],
                             claim["is_orphan"], meta)

    @staticmethod
    def _write_claim(folder: Path, job: dict, lease: str, fingerprint: str, is_orphan: bool):
        scratch = folder / (CLAIM_FILE + ".tmp")
        scratch.write_text(json.dumps({"job": job, "lease": lease, "fingerprint": fingerprint,
                                       "is_orphan": is_orphan}))
        os.replace(scratch, folder / CLAIM_FILE)


def fsync_tree(folder: Path) -> None:
    """Flush the files and the folder itself, so a power cut after rename keeps the bytes."""
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


