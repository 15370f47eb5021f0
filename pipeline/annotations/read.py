"""One entry point for every annotation format: ``--annotations PATH``, its format told by what PATH is.

A ``.json`` file is COCO; a folder of ``.xml`` files is Pascal VOC; a folder
of ``.txt`` label files is YOLO (its class names from ``data.yaml`` or
``classes.txt`` beside it, or ``names``). ``annotation_format`` overrides the
guess. The job and ``augbeam preview`` both read annotations through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pipeline import fsutil
from pipeline.annotations.coco import read_coco
from pipeline.annotations.source import DatasetTargets, ImageAnnotation
from pipeline.annotations.voc import read_voc
from pipeline.annotations.yolo import read_yolo
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow

FORMATS = ("auto", "coco", "voc", "yolo")


def annotation_format(path: str, fmt: str = "auto") -> str:
    """``coco``, ``voc`` or ``yolo`` for ``path``; one line naming the path and the fix when it is none of them."""
    if fmt not in FORMATS:
        raise UserError(f"--annotation-format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    if not fsutil.exists(path):
        raise UserError(f"--annotations {path!r} does not exist; give a COCO .json file or a VOC or YOLO labels folder")
    if fsutil.is_dir(path):
        first = _first_label_file(fsutil.normalize(path))
        if first == ".xml":
            return "voc"
        if first == ".txt":
            return "yolo"
        raise UserError(
            f"--annotations {path!r} holds no .xml (Pascal VOC) or .txt (YOLO) files; give the folder of "
            "label files (not the images' folder), or name the format with --annotation-format"
        )
    if path.lower().endswith(".json"):
        return "coco"
    raise UserError(
        f"--annotations {path!r} is neither a COCO .json file nor a folder of VOC .xml or YOLO .txt files; "
        "give one of those, or name the format with --annotation-format"
    )


def _first_label_file(root: str) -> str | None:
    """``.xml`` or ``.txt``: the suffix of the first label file in sorted walk order, hidden files skipped.

    Stops at the first one, so the driver reads O(1) entries of a large local folder, not the folder (a VOC
    devkit's ``Annotations/`` sorts before its ``ImageSets/*.txt``). A remote folder is matched once, as
    Beam's filesystems list it.
    """
    if fsutil.is_local(root):
        for _dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                suffix = os.path.splitext(name)[1].lower()
                if not name.startswith(".") and suffix in (".xml", ".txt"):
                    return suffix
        return None
    for path, _size in fsutil.list_files(root):
        suffix = os.path.splitext(path)[1].lower()
        if suffix in (".xml", ".txt") and not os.path.basename(path).startswith("."):
            return suffix
    return None


def read_annotations(
    path: str,
    image_root: str,
    *,
    fmt: str = "auto",
    split: str = "train",
    classes: tuple[str, ...] | None = None,
    names: str | None = None,
    check_files: bool = True,
) -> tuple[DatasetTargets, Iterator[ImageAnnotation | ErrorRow]]:
    """The annotation source's dataset facts and its rows (an image's annotation, or why it was refused)."""
    kind = annotation_format(path, fmt)
    if kind == "coco":
        return read_coco(path, image_root, split=split, check_files=check_files)
    if kind == "voc":
        return read_voc(path, image_root, classes=classes, split=split, check_files=check_files)
    return read_yolo(path, image_root, names=names, split=split, check_files=check_files)
