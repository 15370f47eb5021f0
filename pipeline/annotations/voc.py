"""Pascal VOC XML (one file per image), read into ``ImageAnnotation`` rows.

VOC's ``bndbox`` gives 1-based, inclusive pixel corners: ``xmin = 1`` is
the first pixel column and ``xmax = W`` the last. In the continuous frame
(the image covers ``[0, W]``, pixel ``j`` covers ``[j, j + 1]``, 0-based)
pixel column ``c`` (1-based) covers ``[c - 1, c]``, so the box becomes
``(xmin - 1, ymin - 1, xmax, ymax)``: exact, with no half-pixel shift, and
a box of one pixel is 1 wide. ``difficult`` objects become crowd objects
(``iscrowd``: regions a detector is neither rewarded nor punished for, as
VOC's evaluation treats them); ``truncated`` is checked (0 or 1) but not kept.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from pipeline import fsutil
from pipeline.annotations import checks
from pipeline.annotations.checks import Problem
from pipeline.annotations.source import DatasetTargets, ImageAnnotation, SourceObject
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow


def read_voc(
    folder: str,
    image_root: str,
    *,
    classes: tuple[str, ...] | None = None,
    split: str = "train",
    check_files: bool = True,
) -> tuple[DatasetTargets, Iterator[ImageAnnotation | ErrorRow]]:
    """Every ``.xml`` under ``folder`` (sorted), each as the image's annotation or its error row.

    ``classes``: the class list (index = position); without it, the sorted
    names the files use (read in a first pass). ``filename`` is the image's
    path relative to ``image_root`` (VOC's ``JPEGImages``): its key.
    """
    if check_files:
        checks.require_root(image_root)
    files = xml_files(folder)
    if classes is None:
        names: set[str] = set()
        for path in files:
            parsed = _parse(path)
            if isinstance(parsed, ET.Element):
                names.update((o.findtext("name") or "").strip() for o in parsed.iter("object"))
        classes = tuple(sorted(names - {""}))
    targets = DatasetTargets("voc", tuple(classes))
    index = {name: n for n, name in enumerate(classes)}
    return targets, (_row(folder, path, image_root, index, split, check_files) for path in files)


def xml_files(folder: str) -> list[str]:
    """The ``.xml`` files under ``folder``, sorted; hidden ones skipped."""
    if not fsutil.is_dir(folder):
        raise UserError(f"VOC annotation folder {folder!r} does not exist; give the folder of .xml files")
    root = fsutil.normalize(folder)
    found = [
        path
        for path, _ in fsutil.list_files(root)
        if path.lower().endswith(".xml") and not any(p.startswith(".") for p in _rel(root, path).split("/"))
    ]
    if not found:
        raise UserError(f"VOC annotation folder {folder!r} holds no .xml files; give the folder of .xml files")
    return found


def _parse(path: str) -> ET.Element | Problem:
    try:
        return ET.fromstring(fsutil.read_bytes(path))
    except ET.ParseError as exc:
        line, column = exc.position
        return Problem(checks.MALFORMED, f"{path}: line {line}, column {column}: not well-formed XML; fix it")


def _row(
    folder: str, path: str, root: str, index: dict[str, int], split: str, check_files: bool
) -> ImageAnnotation | ErrorRow:
    parsed = _parse(path)
    fallback = _rel(fsutil.normalize(folder), path)  # the XML's own name where the image's is not known
    if isinstance(parsed, Problem):
        return parsed.row(fallback, split)
    name = (parsed.findtext("filename") or "").strip()
    key = posixpath.normpath(name.replace("\\", "/")) if name else ""
    if not key or key.startswith(("/", "../")) or key == "..":
        return Problem(checks.MALFORMED, f"{path}: <filename> {name!r} is not a path inside the image root").row(
            fallback, split
        )
    width, height = _number(parsed, "size/width"), _number(parsed, "size/height")
    if width is None or height is None or width <= 0 or height <= 0 or width % 1 or height % 1:
        return Problem(checks.MALFORMED, f"{path}: <size> needs positive whole <width> and <height>; fix it").row(
            key, split
        )
    if check_files and not fsutil.exists(fsutil.join(root, key)):
        return Problem(checks.MISSING_IMAGE, f"{key}: named by {path} but not found under {root}; add it").row(
            key, split
        )
    objects: list[SourceObject] = []
    problems: list[Problem] = []
    for n, element in enumerate(parsed.iter("object")):
        made = _object(element, index, int(width), int(height))
        if isinstance(made, Problem):
            problems.append(checks.object_problem(f"{key} ({path})", n, made.message, made.error_type))
        else:
            objects.append(made)
    if problems:
        return checks.refusal(problems).row(key, split)
    return ImageAnnotation(key, int(width), int(height), tuple(objects))


def _object(element: ET.Element, index: dict[str, int], width: int, height: int) -> SourceObject | Problem:
    name = (element.findtext("name") or "").strip()
    if name not in index:
        return Problem(checks.UNKNOWN_CATEGORY, f"class {name!r} is not one of the classes; fix <name> or the list")
    corners = [_number(element, f"bndbox/{c}") for c in ("xmin", "ymin", "xmax", "ymax")]
    if any(v is None for v in corners):
        return Problem(checks.MALFORMED, "<bndbox> needs numbers <xmin>, <ymin>, <xmax>, <ymax>; fix it")
    xmin, ymin, xmax, ymax = (float(v) for v in corners)  # type: ignore[arg-type]
    box = checks.check_box((xmin - 1, ymin - 1, xmax, ymax), width, height)
    if isinstance(box, str):
        return Problem(checks.BAD, box.replace("box", "<bndbox> (as 0-based xyxy)", 1))
    flags = {}
    for flag in ("difficult", "truncated"):
        value = (element.findtext(flag) or "0").strip()
        if value not in ("0", "1"):
            return Problem(checks.BAD, f"<{flag}> is {value!r}, neither 0 nor 1; fix it")
        flags[flag] = value == "1"
    return SourceObject(box=box, category=index[name], iscrowd=flags["difficult"])


def _number(element: ET.Element, path: str) -> float | None:
    text = element.findtext(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _rel(root: str, path: str) -> str:
    return path[len(root) :].lstrip("/\\").replace("\\", "/")
