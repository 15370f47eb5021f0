"""Files written beside the shards at finalize, made from the finished manifest draft.

Each maker is a module with ``make_files(out, manifest: Manifest) -> {name: bytes}``:
TensorFlow Datasets metadata and the run report. They are written before
the manifest (which names them with their sizes and checksums), into the work
folder, and moved beside the shards after it (``finalize.publish``, in
``publish_order``); they must be deterministic (no times or host names: the
same run gives the same bytes on any runner), and so are checked by
``augbeam verify`` like every other file.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable

from pipeline import fsutil
from pipeline.format.manifest import FileInfo, Manifest
from pipeline.format.tfds_info import DATASET_INFO

MAKERS: tuple[str, ...] = ("pipeline.format.tfds_info", "pipeline.report.page")
# What the makers import when they run (warm_up imports them ahead).
WARM_UP_MODULES = ("pipeline.report.params", "pipeline.report.sheet", "pipeline.report.preview")


def make_side_files(out: str, manifest: Manifest) -> dict[str, bytes]:
    """Every maker's files, by name, not yet written."""
    made: dict[str, bytes] = {}
    for module in MAKERS:
        files = importlib.import_module(module).make_files(out, manifest)
        for name, data in sorted(files.items()):
            if name in made:
                raise ValueError(f"{module} writes {name!r}, which another side file already wrote")
            made[name] = data
    return made


def write_side_files(folder: str, files: dict[str, bytes]) -> dict[str, FileInfo]:
    """Writes the files atomically into ``folder``; returns their sizes and checksums for the manifest."""
    written: dict[str, FileInfo] = {}
    for name, data in files.items():
        fsutil.write_atomic(fsutil.join(folder, name), data)
        written[name] = FileInfo(len(data), hashlib.sha256(data).hexdigest())
    return written


def publish_order(names: Iterable[str]) -> list[str]:
    """The order side files go beside the shards: ``dataset_info.json``, by which TFDS loads a folder, last."""
    return sorted(names, key=lambda name: (name == DATASET_INFO, name))


def warm_up() -> None:
    """Imports what finalizing needs, in a thread while the workers run, instead of after them.

    On a small job these imports (pyarrow.parquet, the makers and their Pillow and record modules) were
    0.1-0.2 s between the last worker's end and the manifest; the driver's core is idle while workers
    start. Any failure is left for finalizing itself to report.
    """
    try:
        import pyarrow.parquet  # noqa: F401
        from PIL import ImageDraw, PngImagePlugin  # noqa: F401

        for module in (*MAKERS, *WARM_UP_MODULES):
            importlib.import_module(module)
    except Exception:  # only a warm-up
        pass
