"""COCO instances and person_keypoints JSON, read into ``ImageAnnotation`` rows.

Class index = rank of the category id (ids sorted), names kept. ``bbox``
``[x, y, w, h]`` is already in the continuous frame: it becomes
``(x, y, x + w, y + h)``. Polygons and RLE (compressed or uncompressed)
become compressed RLE at the image's declared size. Keypoint names and the
skeleton come from the categories (the skeleton 1-based in COCO, 0-based
here); a horizontal flip swaps ``left_<part>`` with ``right_<part>``. An
image listed without annotations is an image with no objects.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any

from pipeline import fsutil
from pipeline.annotations import checks, masks
from pipeline.annotations.checks import Problem
from pipeline.annotations.source import DatasetTargets, ImageAnnotation, SourceObject
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow
from transforms.targets.types import KeypointSpec


def read_coco(
    path: str, image_root: str, *, split: str = "train", check_files: bool = True
) -> tuple[DatasetTargets, Iterator[ImageAnnotation | ErrorRow]]:
    """The dataset's classes and keypoints, and each listed image's annotation or error row (in file order).

    A file that is not COCO JSON at all (unreadable, malformed, no ``images``
    or ``categories``) raises ``UserError``: no image of it can be listed.
    ``check_files``: refuse images whose file is not under ``image_root``.
    """
    if check_files:
        checks.require_root(image_root)
    data = _load(path)
    categories = _categories(path, data)
    targets = DatasetTargets("coco", tuple(name for _, name in categories), _keypoint_spec(path, data))
    rank = {cid: n for n, (cid, _) in enumerate(categories)}
    return targets, _rows(path, data, image_root, rank, targets, split, check_files)


def _load(path: str) -> dict[str, Any]:
    try:
        text = fsutil.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"COCO annotation file {path!r} does not exist; give the instances/keypoints JSON") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: byte {exc.start} is not UTF-8; save the COCO JSON as UTF-8") from None
    except OSError as exc:
        raise UserError(f"COCO annotation file {path!r} cannot be read ({exc.strerror or exc}); check it") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); fix it") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{path}: not COCO JSON (no 'images' list); give an instances or person_keypoints file")
    if not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations", []), list):
        raise UserError(f"{path}: not COCO JSON (no 'categories' list); give an instances or person_keypoints file")
    return data


def _categories(path: str, data: dict[str, Any]) -> list[tuple[int, str]]:
    found: dict[int, str] = {}
    for n, category in enumerate(data["categories"]):
        cid = category.get("id") if isinstance(category, dict) else None
        name = category.get("name") if isinstance(category, dict) else None
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str):
            raise UserError(f"{path}: categories[{n}] needs an integer 'id' and a string 'name'; fix it")
        if cid in found:
            raise UserError(f"{path}: category id {cid} is listed twice; give each category one id")
        found[cid] = name
    return sorted(found.items())


def _keypoint_spec(path: str, data: dict[str, Any]) -> KeypointSpec | None:
    """The keypoints the categories name (one list for the dataset), their skeleton and left/right flip pairs."""
    spec: KeypointSpec | None = None
    for category in sorted(data["categories"], key=lambda c: c["id"]):
        names = category.get("keypoints")
        if not names:
            continue
        if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
            raise UserError(f"{path}: category {category['id']}: 'keypoints' must be a list of names; fix it")
        skeleton = []
        for pair in category.get("skeleton") or []:
            numbered = all(_is_int(v) and 1 <= v <= len(names) for v in pair) if isinstance(pair, list) else False
            if not (numbered and len(pair) == 2):
                raise UserError(
                    f"{path}: category {category['id']}: skeleton pair {pair!r} is not two keypoint numbers "
                    f"1..{len(names)} (COCO's are 1-based); fix it"
                )
            skeleton.append((pair[0] - 1, pair[1] - 1))
        found = KeypointSpec(tuple(names), flip_pairs(names), tuple(skeleton))
        if spec is not None and spec.names != found.names:
            raise UserError(f"{path}: categories name different keypoint lists; one dataset has one list")
        spec = spec or found
    return spec


def flip_pairs(names: list[str] | tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of ``left_<part>`` and ``right_<part>`` names, as COCO's person keypoints."""
    index = {name: n for n, name in enumerate(names)}
    return tuple(
        (n, index["right_" + name[5:]])
        for n, name in enumerate(names)
        if name.startswith("left_") and "right_" + name[5:] in index
    )


def _rows(
    path: str,
    data: dict[str, Any],
    root: str,
    rank: dict[int, int],
    targets: DatasetTargets,
    split: str,
    check_files: bool,
) -> Iterator[ImageAnnotation | ErrorRow]:
    by_image: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for n, annotation in enumerate(data.get("annotations", [])):
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        by_image.setdefault(image_id, []).append((n, annotation))
    num_keypoints = len(targets.keypoints.names) if targets.keypoints else 0
    listed = set()
    for n, image in enumerate(data["images"]):
        header = _image_header(path, n, image)
        if isinstance(header, tuple):
            key, problem = header
            yield problem.row(key, split)
            listed.add(image.get("id") if isinstance(image, dict) else None)
            continue
        listed.add(image["id"])
        key, width, height = header.file, header.width, header.height
        if check_files and not fsutil.exists(fsutil.join(root, key)):
            yield Problem(
                checks.MISSING_IMAGE, f"{key}: listed in {path} but not found under {root}; add it or fix file_name"
            ).row(key, split)
            continue
        objects: list[SourceObject] = []
        problems: list[Problem] = []
        for index, (_, annotation) in enumerate(by_image.get(image["id"], [])):
            made = _object(annotation, rank, width, height, num_keypoints)
            if isinstance(made, Problem):
                problems.append(checks.object_problem(key, index, made.message, made.error_type))
            else:
                objects.append(made)
        if problems:
            yield checks.refusal(problems).row(key, split)
        else:
            yield ImageAnnotation(key, width, height, tuple(objects))
    for image_id, orphans in by_image.items():
        if image_id in listed:
            continue
        for n, annotation in orphans:
            name = annotation.get("id", n) if isinstance(annotation, dict) else n
            yield Problem(
                checks.BAD,
                f"{path}: annotation {name} names image_id {image_id!r}, which 'images' does not list; fix image_id",
            ).row(f"{posixpath.basename(path)}#annotation-{name}", split)


def _image_header(path: str, n: int, image: Any) -> ImageAnnotation | tuple[str, Problem]:
    """The image's key and declared size (as an empty annotation), or its key and why it is refused."""
    if not isinstance(image, dict):
        problem = Problem(checks.MALFORMED, f"{path}: images[{n}] is not an object; fix it")
        return f"{posixpath.basename(path)}#image-{n}", problem
    name = image.get("file_name")
    key = _key(name) if isinstance(name, str) else None
    shown = key or f"{posixpath.basename(path)}#image-{image.get('id', n)}"
    if key is None:
        return shown, Problem(
            checks.MALFORMED, f"{path}: images[{n}] file_name {name!r} is not a path inside the image root; fix it"
        )
    width, height = image.get("width"), image.get("height")
    if not (_is_int(image.get("id")) and isinstance(width, int) and isinstance(height, int) and min(width, height) > 0):
        return shown, Problem(
            checks.MALFORMED, f"{path}: image {key} needs an integer 'id' and positive integer 'width' and 'height'"
        )
    return ImageAnnotation(key, width, height, ())


def _object(
    annotation: Any, rank: dict[int, int], width: int, height: int, num_keypoints: int
) -> SourceObject | Problem:
    """One annotation as an object, or what is wrong with it (message without the image's name)."""
    if not isinstance(annotation, dict):
        return Problem(checks.MALFORMED, "annotation is not a JSON object; fix it")
    category = annotation.get("category_id")
    if category not in rank or not _is_int(category):
        return Problem(
            checks.UNKNOWN_CATEGORY, f"category_id {category!r} is not one of the file's categories; fix it or add it"
        )
    bbox = annotation.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return Problem(checks.BAD, f"bbox {bbox!r} is not four numbers [x, y, w, h]; fix it")
    x, y, w, h = (float(v) for v in bbox)
    box = checks.check_box((x, y, x + w, y + h), width, height)
    if isinstance(box, str):
        return Problem(checks.BAD, box)
    crowd = annotation.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        return Problem(checks.BAD, f"iscrowd {crowd!r} is neither 0 nor 1; fix it")
    rle = _mask(annotation.get("segmentation"), width, height)
    if isinstance(rle, Problem):
        return rle
    keypoints = annotation.get("keypoints") or []
    if keypoints:
        if not (isinstance(keypoints, list) and all(_is_number(v) for v in keypoints)):
            return Problem(checks.BAD, "keypoints are not a list of numbers; fix them")
        if len(keypoints) != 3 * num_keypoints:
            return Problem(
                checks.BAD,
                f"{len(keypoints)} keypoint values where the category names {num_keypoints} keypoints "
                f"({3 * num_keypoints} values x, y, v); fix them",
            )
        wrong = checks.check_keypoints([float(v) for v in keypoints], width, height)
        if wrong:
            return Problem(checks.BAD, wrong)
    return SourceObject(
        box=box, category=rank[category], iscrowd=bool(crowd), mask_rle=rle, keypoints=tuple(map(float, keypoints))
    )


def _mask(segmentation: Any, width: int, height: int) -> str | None | Problem:
    if segmentation is None or segmentation == []:
        return None
    if isinstance(segmentation, dict):
        made = masks.rle_to_rle(segmentation, height, width)
        return Problem(checks.BAD, made[0] + "; fix the segmentation") if isinstance(made, tuple) else made
    wrong = masks.polygon_problem(segmentation)
    if wrong:
        return Problem(checks.BAD, wrong + "; fix the segmentation")
    return masks.polygons_to_rle(segmentation, height, width)


def _key(name: str) -> str | None:
    """``file_name`` as a key (``/``-separated, relative, inside the root), or None."""
    rel = posixpath.normpath(name.replace("\\", "/"))
    if not name or rel.startswith(("/", "../")) or rel in (".", ".."):
        return None
    return rel


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
