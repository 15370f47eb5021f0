"""Instance masks as COCO compressed RLE strings: made from polygons or RLE, decoded at the image's size.

pycocotools does the rasterising and the run-length coding, so a mask here
is pixel for pixel the mask COCO's own tools (and their evaluation) see. A
string is a few hundred bytes where the raster is ``H x W``: the listing
carries strings, the worker decodes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> str:
    """The union of polygons (flat x, y pixel lists, the frame's continuous coordinates) as compressed RLE."""
    rles = coco_mask.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return _counts(coco_mask.merge(rles))


def polygon_problem(polygons: Any) -> str | None:
    """Why a COCO polygon list cannot be rasterised, or None."""
    if not isinstance(polygons, list) or not polygons:
        return "segmentation is an empty polygon list"
    for n, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            return f"polygon {n} needs an even number (at least 6) of x, y values"
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in polygon):
            return f"polygon {n} has a value that is not a finite number"
    return None


def rle_to_rle(segmentation: dict[str, Any], height: int, width: int) -> str | tuple[str]:
    """A COCO RLE (compressed string or uncompressed counts list) as a compressed string.

    A one-element tuple holds the reason it cannot be used instead: a size
    other than the image's declared ``(height, width)``, counts that do not
    add up to it.
    """
    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return ("RLE mask has no [height, width] size",)
    if tuple(size) != (height, width):
        return (f"mask of another size: RLE is {size[1]}x{size[0]}, the image is {width}x{height}",)
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
            return (f"uncompressed RLE counts must be non-negative and add up to {height}*{width}",)
        return _counts(coco_mask.frPyObjects({"size": size, "counts": counts}, height, width))
    if isinstance(counts, str):
        runs = runs_of(counts)
        if runs is None or min(runs, default=0) < 0 or sum(runs) != height * width:
            return (f"compressed RLE counts are not runs adding up to {height}*{width}",)
        return counts
    return ("RLE mask has no counts (a string or a list of integers)",)


def runs_of(counts: str) -> list[int] | None:
    """The run lengths of COCO's compressed RLE text (as pycocotools' ``rleFrString`` reads it), or None.

    Checked here because pycocotools trusts the text: runs past the image's
    end or negative runs would decode into garbage rather than fail.
    """
    runs: list[int] = []
    at = 0
    while at < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if at >= len(counts) or not 48 <= ord(counts[at]) < 48 + 64:
                return None
            c = ord(counts[at]) - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            at += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """The 0/1 mask ``uint8 [height, width]`` of a compressed RLE string."""
    decoded = coco_mask.decode({"size": [height, width], "counts": rle.encode("ascii")})
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The pixels whose centres lie inside an xyxy box: the mask of an object that has none of its own."""
    x0, y0, x1, y1 = box
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    inside_x = (cols >= x0) & (cols < x1)
    inside_y = (rows >= y0) & (rows < y1)
    return (inside_y[:, None] & inside_x[None, :]).astype(np.uint8)


def _counts(rle: dict[str, Any]) -> str:
    counts = rle["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
