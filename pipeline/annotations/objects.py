"""An image's annotation at its decoded size: ``to_objects``, what the worker calls after decoding.

The declared size must be the decoded one (a mask or box drawn on another
size of the image would land on the wrong pixels): otherwise the image is
refused with one ``Problem``, returned rather than raised, so the worker
writes its error row and goes on. Normalised sources (YOLO: ``width`` and
``height`` 0) are scaled here, and their boxes checked against the image
with the same 1 px tolerance as the others.
"""

from __future__ import annotations

import numpy as np

from pipeline.annotations import checks, masks
from pipeline.annotations.checks import Problem
from pipeline.annotations.source import ImageAnnotation, SourceObject
from transforms.targets.types import Objects


def to_objects(
    annotation: ImageAnnotation, height: int, width: int, num_keypoints: int | None = None
) -> Objects | Problem:
    """``Objects`` at ``(height, width)``: boxes in pixels, masks ``[N, H, W]``, keypoints ``[N, K, 3]``, ids 0..N-1.

    ``masks`` is None unless some object has a mask; then an object without
    one gets its box's pixels. ``keypoints`` is None unless ``num_keypoints``
    (the dataset's K) is given or some object has keypoints; objects without
    keypoints get K rows of (0, 0, 0), not labelled.
    """
    key = annotation.file
    normalised = annotation.width == 0 and annotation.height == 0
    if not normalised and (annotation.width, annotation.height) != (width, height):
        return Problem(
            checks.BAD,
            f"{key}: the annotation is for a {annotation.width}x{annotation.height} image but the image decodes "
            f"to {width}x{height} (upright); annotate the image as it is, or fix the annotation's size",
        )
    sx, sy = (float(width), float(height)) if normalised else (1.0, 1.0)
    objects = annotation.objects
    counts = {len(o.keypoints) for o in objects if o.keypoints}
    if num_keypoints is None and len(counts) > 1:
        return Problem(checks.BAD, f"{key}: objects have different numbers of keypoints; give each the same")
    k = num_keypoints if num_keypoints is not None else (counts.pop() // 3 if counts else 0)
    boxes = np.zeros([len(objects), 4])
    problems = []
    for n, obj in enumerate(objects):
        box = checks.check_box((obj.box[0] * sx, obj.box[1] * sy, obj.box[2] * sx, obj.box[3] * sy), width, height)
        if isinstance(box, str):
            problems.append(checks.object_problem(key, n, box))
            continue
        boxes[n] = box
        if obj.keypoints and len(obj.keypoints) != 3 * k:
            wrong = f"{len(obj.keypoints) // 3} keypoints where the dataset has {k}; fix the annotation"
            problems.append(checks.object_problem(key, n, wrong))
        elif obj.keypoints and (bad := checks.check_keypoints(_scaled(obj.keypoints, sx, sy), width, height)):
            problems.append(checks.object_problem(key, n, bad))
    if problems:
        return checks.refusal(problems)
    with_masks = any(o.mask_rle is not None or o.polygon for o in objects)
    return Objects(
        boxes=boxes,
        classes=np.array([o.category for o in objects], np.int64).reshape([-1]),
        ids=np.arange(len(objects), dtype=np.int64),
        iscrowd=np.array([o.iscrowd for o in objects], bool).reshape([-1]),
        masks=_masks(objects, boxes, height, width, sx, sy) if with_masks else None,
        keypoints=_keypoints(objects, k, sx, sy) if k or num_keypoints is not None else None,
    )


def _masks(
    objects: tuple[SourceObject, ...], boxes: np.ndarray, height: int, width: int, sx: float, sy: float
) -> np.ndarray:
    out = np.zeros([len(objects), height, width], np.uint8)
    for n, obj in enumerate(objects):
        if obj.mask_rle is not None:
            out[n] = masks.decode(obj.mask_rle, height, width)
        elif obj.polygon:
            rle = masks.polygons_to_rle([_scaled_xy(obj.polygon, sx, sy)], height, width)
            out[n] = masks.decode(rle, height, width)
        else:
            out[n] = masks.box_mask(boxes[n], height, width)
    return out


def _keypoints(objects: tuple[SourceObject, ...], k: int, sx: float, sy: float) -> np.ndarray:
    out = np.zeros([len(objects), k, 3])
    for n, obj in enumerate(objects):
        if obj.keypoints:
            out[n] = np.array(_scaled(obj.keypoints, sx, sy)).reshape([k, 3])
    return out


def _scaled(keypoints: tuple[float, ...], sx: float, sy: float) -> tuple[float, ...]:
    """Flat (x, y, v) scaled to pixels; a keypoint not labelled stays (0, 0, 0)."""
    out: list[float] = []
    for x, y, v in zip(keypoints[0::3], keypoints[1::3], keypoints[2::3], strict=True):
        out += [x * sx, y * sy, v] if v else [0.0, 0.0, 0.0]
    return tuple(out)


def _scaled_xy(values: tuple[float, ...], sx: float, sy: float) -> list[float]:
    return [v * (sx if n % 2 == 0 else sy) for n, v in enumerate(values)]
