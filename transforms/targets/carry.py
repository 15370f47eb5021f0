"""Boxes, masks and keypoints carried through a record's ops, from the params sampled for its image.

The steps are those the renderer takes: every applied op in order (layered
ops expanded into the branch each layer ran), then the final resize to the
job's size. Per step (``geometry``):

- a box is kept as the polygon of its four corners, mapped by the step's
  matrix and clipped to the step's output frame (what left the image is gone,
  as its pixels are); the final box is the polygon's enclosing box;
- keypoints are mapped by the same matrix; one outside a step's frame becomes
  ``KP_ABSENT`` for good; a horizontal flip swaps the dataset's left/right pairs;
- masks are resampled by the same matrix, nearest neighbour, with pixels from
  outside the input filled with 0 (instance masks) or ``MASK_IGNORE``
  (semantic masks);
- ``random_erasing`` moves nothing; with ``rules.erasing_hides_keypoints`` a
  visible keypoint inside an erased rectangle becomes ``KP_OCCLUDED``.

Then ``rules``: an object with no area left, or under ``min_area``,
``min_visibility`` or ``min_side``, is removed with its label, mask and
keypoints, and counted in ``Removed`` under the first rule it fails.

Sampled params are in the coordinates of the full upright image even when the
renderer decodes only a JPEG window (``transforms.window``), so nothing here
depends on the decode plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from transforms.ops import Op, Shape
from transforms.targets.geometry import Affine, Size, final_resize, leaf_geometry, leaves
from transforms.targets.types import (
    KP_ABSENT,
    KP_OCCLUDED,
    KP_VISIBLE,
    MASK_IGNORE,
    REASONS,
    KeypointSpec,
    Objects,
    Removed,
    TargetRules,
)

ERASING = "random_erasing"


@dataclasses.dataclass(frozen=True)
class Erased:
    """The rectangles ``random_erasing`` filled, as (x0, y0, x1, y1) in the frame of the image it ran on."""

    rects: tuple[tuple[float, float, float, float], ...]


Step = Affine | Erased


def _erased(params: dict[str, Any]) -> Erased:
    rects = []
    for i in range(int(round(params["n"]))):
        y, x, h, w = (int(round(params[f"{k}{i}"])) for k in ("y", "x", "h", "w"))
        rects.append((float(x), float(y), float(x + w), float(y + h)))
    return Erased(tuple(rects))


def target_steps(
    ops: Sequence[Op], sampled: Sequence[dict[str, Any]], shape: Shape, out_size: Size, resize_mode: str
) -> list[Step]:
    """The steps a record's targets take: each applied op's geometry or erasing, in order, then the final resize."""
    if len(ops) != len(sampled):
        raise ValueError(f"expected params for {len(ops)} ops, got {len(sampled)}")
    steps: list[Step] = []
    size: Size = (int(shape[0]), int(shape[1]))
    for i, (op, entry) in enumerate(zip(ops, sampled, strict=True)):
        if entry["op"] != op.name:
            raise ValueError(f"params[{i}] are for {entry['op']!r}, not {op.name!r}")
        if not entry["applied"]:
            continue
        for leaf, params in leaves(op, entry["params"]):
            if leaf.name == ERASING:
                steps.append(_erased(params))
                continue
            step = leaf_geometry(leaf, params, (*size, 3))
            if step is not None:
                steps.append(step)
                size = step.size
    steps.append(final_resize(size, out_size, resize_mode))
    return steps


# --- polygons ----------------------------------------------------------------------------------------------------


def _clip(poly: np.ndarray, size: Size) -> np.ndarray:
    """Sutherland-Hodgman: ``poly`` [k, 2] clipped to the frame [0, w] x [0, h] (an empty [0, 2] when outside)."""
    h, w = size
    for axis, bound, keep_below in ((0, 0.0, False), (0, float(w), True), (1, 0.0, False), (1, float(h), True)):
        if len(poly) == 0:
            break
        inside = poly[:, axis] <= bound if keep_below else poly[:, axis] >= bound
        out: list[np.ndarray] = []
        for k in range(len(poly)):
            cur, prev = poly[k], poly[k - 1]
            cur_in, prev_in = inside[k], inside[k - 1]
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = prev + t * (cur - prev)
                cross[axis] = bound
                out.append(cross)
            if cur_in:
                out.append(cur)
        poly = np.array(out).reshape(-1, 2)
    return poly


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _corners(box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


# --- masks -------------------------------------------------------------------------------------------------------


def warp_mask(masks: np.ndarray, step: Affine, fill: int) -> np.ndarray:
    """uint8 masks [..., H, W] ([H, W] or [N, H, W]) resampled by ``step``: nearest neighbour, ``fill`` outside."""
    import tensorflow as tf

    h, w = step.size
    lead = masks.shape[:-2]
    if int(np.prod(lead, dtype=np.int64)) == 0:
        return np.zeros([*lead, h, w], np.uint8)
    channels = np.moveaxis(masks.reshape(-1, *masks.shape[-2:]), 0, -1)[np.newaxis]  # [1, H, W, N]
    # Output pixel centres (j + 0.5, i + 0.5) to input pixel coordinates (x - 0.5, y - 0.5), as the kernel reads.
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    back = np.linalg.inv(half) @ np.linalg.inv(step.matrix) @ half
    back = back / back[2, 2]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(channels, tf.uint8),
        transforms=tf.constant([back.reshape(-1)[:8]], tf.float32),
        output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(float(fill), tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    ).numpy()[0]
    return np.moveaxis(out, -1, 0).reshape(*lead, h, w)


def carry_semantic_mask(
    mask: np.ndarray,
    ops: Sequence[Op],
    sampled: Sequence[dict[str, Any]],
    shape: Shape,
    out_size: Size,
    resize_mode: str,
) -> np.ndarray:
    """A semantic mask (uint8 [H, W] class per pixel) through the record's steps; ``MASK_IGNORE`` where unknown."""
    if tuple(mask.shape) != (shape[0], shape[1]):
        raise ValueError(f"semantic mask is {mask.shape}, the image {shape[:2]}: they must have one size")
    out = np.asarray(mask, np.uint8)
    for step in target_steps(ops, sampled, shape, out_size, resize_mode):
        if isinstance(step, Affine):
            out = warp_mask(out, step, MASK_IGNORE)
    return out


# --- objects -----------------------------------------------------------------------------------------------------


def _inside(points: np.ndarray, size: Size) -> np.ndarray:
    h, w = size
    x, y = points[..., 0], points[..., 1]
    return (x >= 0.0) & (x < w) & (y >= 0.0) & (y < h)


def carry_objects(
    objects: Objects,
    ops: Sequence[Op],
    sampled: Sequence[dict[str, Any]],
    shape: Shape,
    out_size: Size,
    resize_mode: str,
    rules: TargetRules,
    spec: KeypointSpec | None = None,
) -> tuple[Objects, Removed]:
    """The image's objects after its ops and final resize, and the ones removed by ``rules`` (counted by reason).

    ``shape`` is the upright image's (H, W, C) the params were sampled for;
    ``out_size`` and ``resize_mode`` the job's final resize.
    """
    n = len(objects)
    if objects.masks is not None and tuple(objects.masks.shape[1:]) != (shape[0], shape[1]):
        raise ValueError(
            f"instance masks are {objects.masks.shape[1:]}, the image {shape[:2]}: they must have one size"
        )
    polys = [_corners(np.asarray(b, np.float64)) for b in objects.boxes]
    source_area = np.array([_area(p) for p in polys])
    scale = 1.0  # |det| of the composed linear map: how the source areas scale
    masks = None if objects.masks is None else np.asarray(objects.masks, np.uint8)
    kps = None if objects.keypoints is None else np.array(objects.keypoints, np.float64)
    swap = spec.flip_permutation() if spec is not None and spec.flip_pairs else None
    for step in target_steps(ops, sampled, shape, out_size, resize_mode):
        if isinstance(step, Erased):
            if kps is not None and rules.erasing_hides_keypoints:
                for x0, y0, x1, y1 in step.rects:
                    xy = kps[..., :2]
                    hit = (xy[..., 0] >= x0) & (xy[..., 0] < x1) & (xy[..., 1] >= y0) & (xy[..., 1] < y1)
                    kps[..., 2] = np.where(hit & (kps[..., 2] == KP_VISIBLE), KP_OCCLUDED, kps[..., 2])
            continue
        scale *= abs(step.linear_det)
        polys = [_clip(step.apply(p), step.size) if len(p) else p for p in polys]
        if kps is not None:
            kps[..., :2] = step.apply(kps[..., :2])
            kps[..., 2] = np.where(_inside(kps[..., :2], step.size), kps[..., 2], KP_ABSENT)
            if step.mirror and swap is not None:
                kps = kps[:, swap]
        if masks is not None:
            masks = warp_mask(masks, step, 0)
    boxes = np.zeros([n, 4])
    keep = np.ones([n], bool)
    counts = dict.fromkeys(REASONS, 0)
    for k, poly in enumerate(polys):
        area = _area(poly)
        if area > 0.0:
            boxes[k] = [*poly.min(axis=0), *poly.max(axis=0)]
        width, height = boxes[k, 2] - boxes[k, 0], boxes[k, 3] - boxes[k, 1]
        visibility = area / (source_area[k] * scale) if source_area[k] > 0.0 else 0.0
        reason = (
            "outside"
            if area <= 0.0
            else "min_area"
            if width * height < rules.min_area
            else "min_visibility"
            if visibility < rules.min_visibility
            else "min_side"
            if min(width, height) < rules.min_side
            else None
        )
        if reason is not None:
            counts[reason] += 1
            keep[k] = False
    if kps is not None:
        kps[..., :2] = np.where(kps[..., 2:] == KP_ABSENT, 0.0, kps[..., :2])
    carried = Objects(
        boxes=boxes,
        classes=objects.classes,
        ids=objects.ids,
        iscrowd=objects.iscrowd,
        masks=masks,
        keypoints=kps,
    )
    removed = Removed(**counts, ids=tuple(int(i) for i in objects.ids[~keep]))
    return carried.select(keep), removed
