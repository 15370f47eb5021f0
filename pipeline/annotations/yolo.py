"""YOLO txt labels (boxes, YOLO-pose keypoints, YOLO-seg polygons), read into ``ImageAnnotation`` rows.

One ``.txt`` per image: ``labels/<path>/<stem>.txt`` belongs to the image
``<image root>/<path>/<stem>.<ext>`` (the stem without its extension, as
Ultralytics pairs them); an image without a label file has no objects. A
line is ``class cx cy w h`` (normalised to [0, 1]); with ``kpt_shape: [K, D]``
in ``data.yaml`` it is followed by K keypoints of D values (``x y`` or
``x y v``, normalised); a line of more than 6 values without ``kpt_shape``
is a YOLO-seg polygon ``class x1 y1 x2 y2 ...`` whose box is its extent.
The image's size is not known here: boxes, keypoints and polygons stay
normalised, ``width`` and ``height`` are 0, and ``objects.to_objects``
scales them at the decoded size (where a box more than 1 px outside is
refused).
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
from collections.abc import Iterator

import yaml

from pipeline import fsutil
from pipeline.annotations import checks
from pipeline.annotations.checks import Problem
from pipeline.annotations.source import DatasetTargets, ImageAnnotation, SourceObject
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow
from transforms.targets.types import KeypointSpec

# The image files a label can belong to (Ultralytics' list, and the other formats augbeam decodes).
IMAGE_SUFFIXES = (".avif", ".bmp", ".gif", ".jp2", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


@dataclasses.dataclass(frozen=True)
class YoloNames:
    """What ``data.yaml`` (or ``classes.txt``) declares: class names, keypoint shape and flip order."""

    classes: tuple[str, ...]
    kpt_shape: tuple[int, int] | None = None  # (K, D): K keypoints of D = 2 (x y) or 3 (x y v) values
    flip_idx: tuple[int, ...] = ()


def read_yolo(
    labels: str, image_root: str, *, names: str | None = None, split: str = "train", check_files: bool = True
) -> tuple[DatasetTargets, Iterator[ImageAnnotation | ErrorRow]]:
    """Every image under ``image_root`` with its label file's objects, in key order; then orphan label files.

    ``names``: the ``data.yaml`` or ``classes.txt`` to read; without it, the
    first of ``data.yaml``, ``classes.txt`` found in ``labels`` or its parent.
    A label file whose image is missing is a ``MissingImage`` row when
    ``check_files``.
    """
    checks.require_root(image_root)  # YOLO lists the images themselves: the root must be there
    if not fsutil.is_dir(labels):
        raise UserError(f"YOLO labels folder {labels!r} is not a folder; give the folder of .txt label files")
    names = names or _find_names(labels)
    declared = read_names(names)
    spec = None
    if declared.kpt_shape:
        count = declared.kpt_shape[0]
        flips = tuple((k, f) for k, f in enumerate(declared.flip_idx) if k < f)
        spec = KeypointSpec(tuple(str(k) for k in range(count)), flips)
    targets = DatasetTargets("yolo", declared.classes, spec)
    return targets, _rows(labels, image_root, declared, split, check_files, skip=fsutil.normalize(names))


def read_names(path: str) -> YoloNames:
    """Class names from ``data.yaml`` (``names`` list or ``{index: name}``, ``kpt_shape``, ``flip_idx``) or txt."""
    try:
        text = fsutil.read_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"YOLO class names {path!r} cannot be read ({exc}); give data.yaml or classes.txt") from None
    if not path.lower().endswith((".yaml", ".yml")):
        return YoloNames(tuple(line.strip() for line in text.splitlines() if line.strip()))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise UserError(f"{path}: {where}not valid YAML; fix it") from None
    raw = data.get("names") if isinstance(data, dict) else None
    if isinstance(raw, dict) and sorted(raw) == list(range(len(raw))):
        classes = tuple(str(raw[n]) for n in range(len(raw)))
    elif isinstance(raw, list) and raw:
        classes = tuple(str(v) for v in raw)
    else:
        raise UserError(f"{path}: 'names' must be a list of class names or a {{0: name, 1: ...}} mapping; fix it")
    shape = data.get("kpt_shape")
    if shape is None:
        return YoloNames(classes)
    if not (isinstance(shape, list) and len(shape) == 2 and shape[0] > 0 and shape[1] in (2, 3)):
        raise UserError(f"{path}: kpt_shape {shape!r} is not [keypoints, 2 or 3]; fix it")
    flip = data.get("flip_idx") or list(range(shape[0]))
    if sorted(flip) != list(range(shape[0])) or any(flip[flip[k]] != k for k in range(shape[0])):
        raise UserError(f"{path}: flip_idx must list each of the {shape[0]} keypoints' mirror once; fix it")
    return YoloNames(classes, (int(shape[0]), int(shape[1])), tuple(flip))


def _find_names(labels: str) -> str:
    base = fsutil.normalize(labels)
    parent = posixpath.dirname(base) if not fsutil.is_local(base) else fsutil.normalize(base + "/..")
    for folder in (base, parent):
        for name in ("data.yaml", "classes.txt"):
            if fsutil.exists(fsutil.join(folder, name)):
                return fsutil.join(folder, name)
    raise UserError(f"no data.yaml or classes.txt in {labels!r} or its parent; give the class names' file")


def _rows(
    labels: str, image_root: str, names: YoloNames, split: str, check_files: bool, skip: str
) -> Iterator[ImageAnnotation | ErrorRow]:
    """``skip``: the class names' file, when it is a ``classes.txt`` among the labels (not a label file)."""
    label_root, root = fsutil.normalize(labels), fsutil.normalize(image_root)
    label_files = {
        _rel(label_root, path)[:-4]: path
        for path, _ in fsutil.list_files(label_root)
        if path.endswith(".txt") and path != skip
    }
    label_files = {stem: path for stem, path in label_files.items() if not _hidden(stem)}
    found = (_rel(root, path) for path, _ in fsutil.list_files(root))
    keys = sorted(rel for rel in found if rel.lower().endswith(IMAGE_SUFFIXES) and not _hidden(rel))
    used = set()
    for key in keys:
        stem = posixpath.splitext(key)[0]
        path = label_files.get(stem)
        used.add(stem)
        if path is None:
            yield ImageAnnotation(key, 0, 0, ())
            continue
        made = _read_label(path, key, names)
        yield made.row(key, split) if isinstance(made, Problem) else made
    if check_files:
        for stem in sorted(set(label_files) - used):
            yield Problem(
                checks.MISSING_IMAGE,
                f"{label_files[stem]}: no image {stem}.<ext> under {image_root} for this label file; add it",
            ).row(stem + ".txt", split)


def _read_label(path: str, key: str, names: YoloNames) -> ImageAnnotation | Problem:
    try:
        text = fsutil.read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return Problem(checks.MALFORMED, f"{path}: not UTF-8 text; save the label file as text")
    objects: list[SourceObject] = []
    problems: list[Problem] = []
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    for index, (number, values) in enumerate(lines):
        made = _object(values, names)
        if isinstance(made, Problem):
            where = f"{path}: line {number}" if made.error_type == checks.MALFORMED else f"{key} ({path}:{number})"
            problems.append(checks.object_problem(where, index, made.message, made.error_type))
        else:
            objects.append(made)
    if problems:
        return checks.refusal(problems)
    return ImageAnnotation(key, 0, 0, tuple(objects))


def _object(values: list[str], names: YoloNames) -> SourceObject | Problem:
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return Problem(checks.MALFORMED, f"{' '.join(values)!r} is not numbers; fix the line")
    cls = numbers[0]
    if not math.isfinite(cls) or cls != int(cls):
        return Problem(checks.MALFORMED, f"class {values[0]!r} is not a whole number; fix the line")
    if not 0 <= cls < len(names.classes):
        return Problem(checks.UNKNOWN_CATEGORY, f"class {int(cls)} is not one of the {len(names.classes)} names")
    rest = numbers[1:]
    if names.kpt_shape:
        count, dims = names.kpt_shape
        if len(rest) != 4 + count * dims:
            return Problem(
                checks.MALFORMED, f"{len(values)} values where YOLO-pose has 5 + {count}x{dims}; fix the line"
            )
        return _boxed(int(cls), rest[:4], _keypoints(rest[4:], dims))
    if len(rest) == 4:
        return _boxed(int(cls), rest, ())
    if len(rest) >= 6 and len(rest) % 2 == 0:
        if not checks.finite(rest):
            return Problem(checks.BAD, "polygon has a non-finite number; fix the line")
        xs, ys = rest[0::2], rest[1::2]
        box = checks.check_box((min(xs), min(ys), max(xs), max(ys)), 0, 0)
        if isinstance(box, str):
            return Problem(checks.BAD, "polygon's extent " + box)
        return SourceObject(box=box, category=int(cls), polygon=tuple(rest))
    return Problem(
        checks.MALFORMED, f"{len(values)} values: neither a box (5) nor a polygon (class + 3 or more x y); fix the line"
    )


def _boxed(cls: int, values: list[float], keypoints: tuple[float, ...]) -> SourceObject | Problem:
    cx, cy, w, h = values
    box = checks.check_box((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 0, 0)
    if isinstance(box, str):
        return Problem(checks.BAD, box.replace("box", f"box (cx cy w h {cx:g} {cy:g} {w:g} {h:g} as xyxy)", 1))
    wrong = checks.check_keypoints(keypoints, 0, 0)
    if wrong:
        return Problem(checks.BAD, wrong)
    return SourceObject(box=box, category=cls, keypoints=keypoints)


def _keypoints(values: list[float], dims: int) -> tuple[float, ...]:
    """Flat (x, y, v) triples; with 2 values a keypoint at (0, 0) is not labelled (v 0), else visible (2)."""
    if dims == 3:
        return tuple(values)
    out: list[float] = []
    for x, y in zip(values[0::2], values[1::2], strict=True):
        out += [x, y, 0.0 if x == 0 and y == 0 else 2.0]
    return tuple(out)


def _rel(root: str, path: str) -> str:
    return path[len(root) :].lstrip("/\\").replace("\\", "/")


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))
