"""The annotations of a few images, by key: what ``augbeam preview --annotations`` draws.

The source is read through ``read.read_annotations`` (the job's one entry
point) and only the wanted keys are kept; an image becomes ``Objects`` at its
decoded size through ``objects.to_objects``, as in the job's worker. An image
the source does not list, or refuses, has no objects here but a reason (the
caption) and, for a refusal, the error row's message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from pipeline.annotations.checks import Problem
from pipeline.annotations.objects import to_objects
from pipeline.annotations.read import read_annotations
from pipeline.annotations.source import DatasetTargets, ImageAnnotation
from pipeline.format.manifest import ErrorRow
from transforms.targets.types import Objects


@dataclasses.dataclass(frozen=True)
class NoObjects:
    """Why an image has no targets to draw: ``caption`` for its tile, ``message`` (a refusal's) for the user."""

    caption: str
    message: str | None = None


@dataclasses.dataclass(frozen=True)
class AnnotationLookup:
    """The dataset's classes and keypoints, and the wanted images' annotations or error rows, by key."""

    targets: DatasetTargets
    rows: dict[str, ImageAnnotation | ErrorRow]

    @staticmethod
    def read(path: str, image_root: str, keys: Iterable[str], fmt: str = "auto") -> AnnotationLookup:
        """Reads the source once, keeping ``keys``; raises ``UserError`` (one line) for an unreadable source.

        Files are not checked against ``image_root`` (the previewed images are opened anyway), so a large
        COCO file costs one parse, not a look-up per image it lists.
        """
        wanted = set(keys)
        targets, rows = read_annotations(path, image_root, fmt=fmt, check_files=False)
        kept: dict[str, ImageAnnotation | ErrorRow] = {}
        for row in rows:
            key = row.file if isinstance(row, ImageAnnotation) else row.key
            if key in wanted and key not in kept:
                kept[key] = row
        return AnnotationLookup(targets, kept)

    def objects(self, key: str, height: int, width: int) -> Objects | NoObjects:
        """The image's objects at its decoded size, or why there are none."""
        row = self.rows.get(key)
        if row is None:
            return NoObjects("no annotation")
        if isinstance(row, ErrorRow):
            return NoObjects(f"annotation refused: {row.error_type}", row.message)
        spec = self.targets.keypoints
        objects = to_objects(row, height, width, len(spec.names) if spec is not None else None)
        if isinstance(objects, Problem):
            return NoObjects(f"annotation refused: {objects.error_type}", objects.message)
        return objects
