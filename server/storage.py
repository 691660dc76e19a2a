"""Where a finished job's files live: one folder per result under DATA_DIR/jobs/.

Every path is built by the server from the job's own id plus a random suffix; nothing a client
sends ever becomes part of a path. A result is written completely into its own new folder before
the database points at it, so a crash mid-upload leaves at most an orphan folder, never a job
whose files are half there, and two racing uploads never write into the same folder.

"Completely" means on the disk, not in the page cache: every file is fsynced, then its folder and
the jobs folder (so the new names survive too), before save_result returns and so before the
commit that marks the job done. The worker deletes its spooled copy once the server answers, so
after a power cut the server's copy is the only one (issue 16, item 12).
"""

import os
import secrets
import shutil
from pathlib import Path

from .images import job_metadata, thumbnail, with_metadata

JOBS_FOLDER = "jobs"
GRID_NAME = "grid.png"
THUMB_NAME = "thumb.webp"


def tile_name(index: int) -> str:
    return f"tile_{index}.png"


def file_names(grid: int) -> list[str]:
    """Every file name a finished job of this grid size has."""
    return [GRID_NAME, THUMB_NAME] + [tile_name(i) for i in range(grid * grid)]


class Storage:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir).expanduser().resolve() / JOBS_FOLDER

    def folder(self, files_dir: str) -> Path:
        path = (self.root / files_dir).resolve()
        if path.parent != self.root:
            raise ValueError(f"files folder {files_dir!r} is outside the data dir")
        return path

    def save_result(self, job: dict, grid_png: bytes, tile_pngs: list[bytes], sizes,
                    best_image: int | None = None) -> tuple:
        """Write the grid and tiles, stamped with their index and the job, and a thumbnail to a new
        folder.

        Returns (files_dir, image rows for the images table). `sizes` gives (width, height) of the
        grid and then of each tile, as checked by images.check_png. The thumbnail is of tile
        `best_image` when the result is ranked (server/ranking.py), else of the grid.
        """
        files_dir = f"{job['id']}-{secrets.token_hex(4)}"
        folder = self.folder(files_dir)
        folder.mkdir(parents=True)
        metadata = job_metadata(job)
        rows = []

        def write(name, data, kind, size, tile_index=None):
            write_durably(folder / name, data)
            rows.append(
                {"kind": kind, "tile_index": tile_index, "filename": name, "width": size[0],
                 "height": size[1], "byte_count": len(data)}
            )

        grid_stamped = with_metadata(grid_png, {"grid": str(job["grid"])}, metadata)
        write(GRID_NAME, grid_stamped, "grid", sizes[0])
        for index, (tile_png, size) in enumerate(zip(tile_pngs, sizes[1:])):
            stamped = with_metadata(tile_png, {"tile": str(index)}, metadata)
            write(tile_name(index), stamped, "tile", size, index)
        thumb, thumb_size = thumbnail(grid_png if best_image is None else tile_pngs[best_image])
        write(THUMB_NAME, thumb, "thumb", thumb_size)
        fsync_folder(folder)
        fsync_folder(self.root)
        return files_dir, rows

    def remove(self, files_dir: str | None) -> None:
        if files_dir:
            shutil.rmtree(self.folder(files_dir), ignore_errors=True)

    def path(self, files_dir: str, name: str) -> Path:
        return self.folder(files_dir) / name



def write_durably(path: Path, data: bytes) -> None:
    """Write a new file and fsync it, so its bytes are on the disk when this returns."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_folder(folder: Path) -> None:
    """fsync a folder, so the names created in it survive a power cut (POSIX fsync(2))."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
