"""Boxes, masks and keypoints drawn on a tile, so a person sees the targets a record (or a preview copy) holds.

``draw_targets`` is a pure function of (pixels, targets, class names,
keypoint spec): NumPy blending for the translucent fills, Pillow (pinned)
for outlines, text and dots, fixed sizes and a fixed palette, so the same
record gives the same tile bytes (the report is checksummed in the
manifest). Coordinates are the targets' frame (``transforms.targets.types``:
continuous pixels, ``xyxy``): a box ``(x0, y0, x1, y1)`` covers pixel
columns ``floor(x0)`` .. ``ceil(x1) - 1``, a keypoint at ``(x, y)`` sits on
pixel ``(floor(y), floor(x))``.

Drawn in this order: the semantic mask (class colours, the ignore value left
undrawn), instance masks (the object's class colour), boxes, skeleton lines,
keypoints (visibility 2 filled, 1 hollow, 0 not drawn), then the class names
on top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from transforms.targets.types import KP_OCCLUDED, KP_VISIBLE, MASK_IGNORE, KeypointSpec, Objects

# A colour per class index (index mod its length): matplotlib's tab20, strong shades first, then the light ones.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip
MASK_ALPHA = 0.45  # instance masks: the object shows through its colour
SEMANTIC_ALPHA = 0.4
FONT_SIZE = 11


def colour(class_index: int) -> tuple[int, int, int]:
    """The class's colour in every drawing (boxes, masks, keypoints, the report's legend)."""
    return PALETTE[int(class_index) % len(PALETTE)]


@dataclasses.dataclass(frozen=True, eq=False)
class TileTargets:
    """What to draw on one tile, in the tile's own pixels (``xyxy`` boxes; masks at the tile's size).

    Built from carried ``Objects`` (``from_objects``) or a parsed record
    (``ParsedDetection`` has the same fields); ``resized`` follows a tile
    that was scaled for display.
    """

    boxes: np.ndarray  # float [N, 4] xyxy
    classes: np.ndarray  # int [N]
    iscrowd: np.ndarray | None = None  # bool [N]
    masks: np.ndarray | None = None  # uint8 [N, H, W], 0/1
    keypoints: np.ndarray | None = None  # float [N, K, 3]
    semantic_mask: np.ndarray | None = None  # uint8 [H, W], MASK_IGNORE where no class

    def __len__(self) -> int:
        return int(np.asarray(self.boxes).reshape(-1, 4).shape[0])

    @staticmethod
    def from_objects(objects: Objects | Any, semantic_mask: np.ndarray | None = None) -> TileTargets:
        """From ``Objects`` or anything with their fields (``ParsedDetection``, which also holds a semantic mask)."""
        return TileTargets(
            boxes=np.asarray(objects.boxes, np.float64).reshape(-1, 4),
            classes=np.asarray(objects.classes, np.int64).reshape(-1),
            iscrowd=None if objects.iscrowd is None else np.asarray(objects.iscrowd, bool),
            masks=objects.masks,
            keypoints=objects.keypoints,
            semantic_mask=semantic_mask if semantic_mask is not None else getattr(objects, "semantic_mask", None),
        )

    def resized(self, source: Sequence[int], target: Sequence[int]) -> TileTargets:
        """The targets of an image of shape ``source`` (H, W, ...) on the same image shown at ``target``'s size."""
        h, w, th, tw = source[0], source[1], target[0], target[1]
        sx, sy = tw / w, th / h
        rows = np.minimum(((np.arange(th) + 0.5) * h / th).astype(np.int64), h - 1)  # nearest, pixel centres
        cols = np.minimum(((np.arange(tw) + 0.5) * w / tw).astype(np.int64), w - 1)
        keypoints = None
        if self.keypoints is not None:
            keypoints = np.array(self.keypoints, np.float64)
            keypoints[..., 0] *= sx
            keypoints[..., 1] *= sy
        return TileTargets(
            boxes=np.asarray(self.boxes, np.float64) * np.array([sx, sy, sx, sy]),
            classes=self.classes,
            iscrowd=self.iscrowd,
            masks=None if self.masks is None else np.asarray(self.masks)[:, rows][:, :, cols],
            keypoints=keypoints,
            semantic_mask=None if self.semantic_mask is None else np.asarray(self.semantic_mask)[rows][:, cols],
        )


def label_font() -> Any:
    """Pillow's default font at ``FONT_SIZE`` (FreeType); the bitmap font where Pillow has no FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def _blend(out: np.ndarray, where: np.ndarray, rgb: tuple[int, int, int], alpha: float) -> None:
    """``out`` (float RGB) mixed with ``rgb`` where ``where`` is true, in place."""
    out[where] = out[where] * (1.0 - alpha) + np.array(rgb, np.float64) * alpha


def _box_pixels(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The inclusive pixel rectangle a continuous box covers, clipped to the tile; None when it covers none."""
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[2]))) - 1, min(height, int(np.ceil(box[3]))) - 1
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1, y1


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads on ``rgb``."""
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else (255, 255, 255)


def draw_targets(
    pixels: np.ndarray,
    targets: TileTargets,
    class_names: tuple[str, ...],
    spec: KeypointSpec | None = None,
    *,
    mask_ignore: int = MASK_IGNORE,
) -> np.ndarray:
    """uint8 [H, W, 3] with ``targets`` drawn on a copy of ``pixels``; the same inputs give the same pixels."""
    from PIL import Image, ImageDraw

    height, width = pixels.shape[:2]
    base = np.asarray(pixels, np.float64).copy()
    classes = np.asarray(targets.classes, np.int64).reshape(-1)
    if targets.semantic_mask is not None:
        semantic = np.asarray(targets.semantic_mask)
        for value in np.unique(semantic).tolist():
            if value != mask_ignore:
                _blend(base, semantic == value, colour(value), SEMANTIC_ALPHA)
    if targets.masks is not None:
        for mask, cls in zip(np.asarray(targets.masks), classes, strict=True):
            _blend(base, mask > 0, colour(cls), MASK_ALPHA)
    image = Image.fromarray(np.clip(np.round(base), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = 1 if min(height, width) < 160 else 2
    boxes = np.asarray(targets.boxes, np.float64).reshape(-1, 4)
    rects = [_box_pixels(b, height, width) for b in boxes]
    for rect, cls in zip(rects, classes, strict=True):
        if rect is not None:
            draw.rectangle(rect, outline=colour(cls), width=line)
    if targets.keypoints is not None:
        _draw_keypoints(draw, np.asarray(targets.keypoints, np.float64), classes, spec, min(height, width))
    font = label_font()
    crowd = np.zeros(len(classes), bool) if targets.iscrowd is None else np.asarray(targets.iscrowd, bool)
    for rect, cls, is_crowd in zip(rects, classes, crowd, strict=True):
        if rect is None:
            continue
        name = class_names[cls] if 0 <= cls < len(class_names) else f"class {cls}"
        text = f"{name} (crowd)" if is_crowd else name
        left, top, right, bottom = font.getbbox(text)
        tw, th = right - left + 2, bottom - top + 2
        x = min(rect[0], max(0, width - tw))
        y = rect[1] - th if rect[1] - th >= 0 else rect[1] + line  # above the box, or inside its top edge
        draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=colour(cls))
        draw.text((x + 1 - left, y + 1 - top), text, fill=_ink(colour(cls)), font=font)
    return np.asarray(image)


def _draw_keypoints(
    draw: Any, keypoints: np.ndarray, classes: np.ndarray, spec: KeypointSpec | None, side: int
) -> None:
    """Skeleton lines between labelled keypoints (when the spec has one), then the dots on top."""
    radius = 2 if side < 160 else 3
    for points, cls in zip(keypoints, classes, strict=True):
        rgb = colour(cls)
        centres = points[:, :2] - 0.5  # continuous (x, y) to the pixel grid Pillow draws on
        labelled = points[:, 2] >= KP_OCCLUDED
        for a, b in spec.skeleton if spec is not None else ():
            if a < len(points) and b < len(points) and labelled[a] and labelled[b]:
                draw.line([tuple(centres[a]), tuple(centres[b])], fill=rgb, width=1)
        for (cx, cy), v in zip(centres, points[:, 2], strict=True):
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            if v >= KP_VISIBLE:
                draw.ellipse(box, fill=rgb, outline=(255, 255, 255))
            elif v >= KP_OCCLUDED:
                draw.ellipse(box, outline=rgb, width=1)
