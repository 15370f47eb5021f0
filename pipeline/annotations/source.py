"""An image's annotation as read from its source file, before the image is decoded.

``ImageAnnotation`` is what crosses the job's stages with the image's key:
small (boxes, categories, masks as COCO compressed RLE strings, keypoints
as flat lists) and JSON-able (``to_json``/``from_json``), so a listing of a
million annotated images costs bytes per object, not rasters. The worker
that decodes the image turns it into ``transforms.targets.types.Objects`` at
the image's size (``objects.to_objects``). Coordinates are in the frame ``transforms/targets/types.py``
documents (continuous pixels, ``xyxy``, the upright image).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from transforms.targets.types import KeypointSpec


@dataclasses.dataclass(frozen=True)
class SourceObject:
    """One object instance: its box, category index, crowd flag, mask and keypoints as the source gives them."""

    box: tuple[float, float, float, float]  # xyxy, pixels
    category: int  # index into DatasetTargets.classes
    iscrowd: bool = False
    mask_rle: str | None = None  # COCO compressed RLE counts at (height, width) of the annotation's image
    keypoints: tuple[float, ...] = ()  # x1, y1, v1, x2, y2, v2, ... (COCO order and visibility)
    # x1, y1, x2, y2, ... of a polygon mask in the box's units, for sources without a size (YOLO-seg,
    # normalised): rasterised where the image's size is known (``objects.to_objects``). Else mask_rle.
    polygon: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class ImageAnnotation:
    """An image's objects and its size as the annotation declares it (0 where the source gives none: YOLO)."""

    file: str  # the image's path relative to the input root, ``/``-separated: the record's key
    width: int
    height: int
    objects: tuple[SourceObject, ...]

    def to_json(self) -> str:
        """Compact JSON, the same text for the same annotation."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> ImageAnnotation:
        data = json.loads(text)
        objects = tuple(
            SourceObject(
                box=tuple(float(v) for v in o["box"]),  # type: ignore[arg-type]
                category=int(o["category"]),
                iscrowd=bool(o["iscrowd"]),
                mask_rle=o["mask_rle"],
                keypoints=tuple(float(v) for v in o["keypoints"]),
                polygon=tuple(float(v) for v in o.get("polygon", ())),
            )
            for o in data["objects"]
        )
        return ImageAnnotation(file=data["file"], width=int(data["width"]), height=int(data["height"]), objects=objects)


@dataclasses.dataclass(frozen=True)
class DatasetTargets:
    """What the whole annotation source declares: class names (index = category), keypoints, its format."""

    format: str  # coco, voc, yolo
    classes: tuple[str, ...]
    keypoints: KeypointSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
