"""An annotated run (``--annotations``): its source opened in the driver, read on a worker, turned into records.

The driver does O(1) per annotation source (``open_annotated``: the path
exists, its format, the options that go with it); a worker reads the whole
source (``read_unit``) into inputs that carry their annotation's JSON, and
error rows. The shard's worker, once it has decoded an image, makes its
targets (``image_objects``: the annotation at the decoded size) and carries
them through the record's sampled params (``record_targets``).

Which images are inputs: COCO and VOC list their images (an image under
``--input`` that no annotation names is not an input); YOLO lists every image
under ``--input`` (no label file: no objects).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline import fsutil
from pipeline.annotations.checks import Problem
from pipeline.annotations.masks import box_mask
from pipeline.annotations.objects import to_objects
from pipeline.annotations.read import annotation_format, read_annotations
from pipeline.annotations.source import DatasetTargets, ImageAnnotation
from pipeline.errors import UserError
from pipeline.format.detection_records import REMOVED, build_detection_example
from pipeline.format.manifest import ErrorRow, TargetsInfo
from pipeline.job.folder_walk import DUPLICATE
from pipeline.job.listing import UNLABELED, InputItem, Listing, Source, Unit, listing_error
from pipeline.job.options import JobConfig
from pipeline.job.plan import Plan
from transforms.encoding import stored_dtype
from transforms.ops import Op
from transforms.targets.carry import carry_objects
from transforms.targets.types import KeypointSpec, Objects, Removed, TargetRules

KIND = "annotations"  # Source.kind and Unit.kind of an annotated run
STAGE = "annotation"  # the error rows of annotations refused once the image is decoded (all its copies)


def open_annotated(config: JobConfig) -> Source:
    """The image folder with one unit per split's annotation source, checked in O(1); one line for what makes
    no sense.

    ``--input`` must be the folder the annotations' paths are relative to (a listing file has labels of its
    own); ``--classes`` only orders VOC's names (COCO and YOLO declare theirs); ``--yolo-names`` only goes
    with YOLO.
    """
    root = fsutil.normalize(config.input)
    if not fsutil.is_dir(root):
        raise UserError(
            f"--input {config.input!r} with --annotations must be the folder of images the annotations name "
            "(a listing file has labels of its own; use one or the other)"
        )
    sources = []
    for split, path in config.annotations:
        where = fsutil.normalize(path)
        kind = annotation_format(where, config.annotation_format)
        if config.classes is not None and kind != "voc":
            raise UserError(
                f"--classes with {kind.upper()} --annotations {path!r}: the annotations declare the class names; "
                "leave --classes out (it only orders VOC's names)"
            )
        if config.yolo_names is not None and kind != "yolo":
            raise UserError(f"--yolo-names with {kind.upper()} --annotations {path!r}: it is for YOLO labels only")
        sources.append(Unit(KIND, where, split=split))
    return Source(root, KIND, tuple(sources), fixed_classes=config.classes)


def settle_duplicates(found: Iterable[ImageAnnotation], split: str) -> tuple[list[ImageAnnotation], list[ErrorRow]]:
    """One annotation per image: a file named twice with the same annotation is kept once (a ``DuplicateInput``
    row, not a failure); named twice with different annotations, it is refused (``DuplicateAnnotation``: which
    one is right cannot be told), rather than written twice or one of them dropped unseen."""
    by_key: dict[str, list[ImageAnnotation]] = {}
    for annotation in found:
        by_key.setdefault(annotation.file, []).append(annotation)
    kept: list[ImageAnnotation] = []
    errors: list[ErrorRow] = []
    for key, same in by_key.items():
        if len(same) == 1:
            kept.append(same[0])
        elif len({a.to_json() for a in same}) == 1:
            kept.append(same[0])
            errors += [listing_error(key, split, DUPLICATE, f"annotated {len(same)} times alike; kept once")] * (
                len(same) - 1
            )
        else:
            errors.append(
                listing_error(
                    key,
                    split,
                    "DuplicateAnnotation",
                    f"the annotation source names this image {len(same)} times with different objects; "
                    "merge them into one entry (the image is left out until then)",
                )
            )
    return kept, errors


def read_unit(config: JobConfig, root: str, split: str, path: str) -> tuple[DatasetTargets, Iterator[Any]]:
    """One split's annotation source, on a worker: what it declares, then each image's annotation or error row."""
    return read_annotations(
        path,
        root,
        fmt=config.annotation_format,
        split=split,
        classes=config.classes,
        names=config.yolo_names,
    )


def unit_inputs(
    config: JobConfig, root: str, split: str, path: str
) -> tuple[DatasetTargets, list[InputItem], list[ErrorRow], int]:
    """One split's annotation source as inputs (each carrying its annotation's JSON), error rows (refused
    annotations, duplicates) and the count of rows listed; the job's worker and ``list_annotated`` alike."""
    declared, rows = read_unit(config, root, split, path)
    found: list[ImageAnnotation] = []
    errors: list[ErrorRow] = []
    listed = 0
    for row in rows:
        listed += 1
        if isinstance(row, ErrorRow):
            errors.append(row)
        else:
            found.append(row)
    settled, duplicates = settle_duplicates(found, split)
    items = [InputItem(a.file, fsutil.join(root, a.file), UNLABELED, split, annotation=a.to_json()) for a in settled]
    return declared, items, errors + duplicates, listed


def list_annotated(config: JobConfig) -> Listing:
    """Every split's annotation source read in this process (the job reads them on its workers the same way)."""
    source = open_annotated(config)
    items: list[InputItem] = []
    errors: list[ErrorRow] = []
    listed: Counter[str] = Counter()
    classes: tuple[str, ...] = ()
    for unit in source.units:
        declared, unit_items, unit_errors, count = unit_inputs(config, source.root, unit.split, unit.path)
        classes = declared.classes
        items += unit_items
        errors += unit_errors
        listed[unit.split] += count
    items.sort(key=lambda i: i.key)
    return Listing(source.root, KIND, items, errors, list(classes), listed)


def dataset_json(targets: DatasetTargets) -> str:
    """What a source declares, as canonical JSON (the plan carries it; O(classes))."""
    return json.dumps(targets.to_json(), sort_keys=True, separators=(",", ":"))


def agreed(declared: Mapping[str, str]) -> str:
    """The one declaration every split's source makes (by split); a ``UserError`` naming the splits otherwise."""
    texts = sorted(set(declared.values()))
    if len(texts) > 1:
        first, other = (sorted(s for s, t in declared.items() if t == text) for text in texts[:2])
        raise UserError(
            f"--annotations: splits {', '.join(first)} and {', '.join(other)} declare different classes or "
            "keypoints; give every split the same class list"
        )
    return texts[0]


def has_masks(annotation: str) -> bool:
    """Whether an annotation (JSON) has an instance mask: then every record of the run carries masks."""
    return any(o["mask_rle"] is not None or o.get("polygon") for o in json.loads(annotation)["objects"])


@dataclasses.dataclass(frozen=True)
class RunTargets:
    """What the plan knows of an annotated run: the declared classes, keypoints and format, and whether masks."""

    format: str
    classes: tuple[str, ...]
    keypoints: KeypointSpec | None
    masks: bool

    @staticmethod
    def from_json(declared: str, masks: bool) -> RunTargets:
        data = json.loads(declared)
        spec = data.get("keypoints")
        keypoints = (
            None
            if spec is None
            else KeypointSpec(
                tuple(spec["names"]),
                tuple((int(a), int(b)) for a, b in spec["flip_pairs"]),
                tuple((int(a), int(b)) for a, b in spec["skeleton"]),
            )
        )
        return RunTargets(data["format"], tuple(data["classes"]), keypoints, masks)

    def info(self, rules: TargetRules) -> TargetsInfo:
        """The manifest's ``targets`` section."""
        tasks = ("detection",) + (("instance_segmentation",) if self.masks else ())
        tasks += ("keypoints",) if self.keypoints is not None else ()
        return TargetsInfo(tasks, self.classes, rules, self.keypoints, source_format=self.format)


def plan_targets(plan: Plan) -> RunTargets | None:
    """An annotated run's targets from its plan; None for any other run."""
    return None if plan.targets is None else RunTargets.from_json(plan.targets, plan.target_masks)


def detection_example(
    payload: bytes,
    config: JobConfig,
    key: str,
    copy: int,
    params: str,
    source_sha256: str,
    objects: Objects,
    classes: tuple[str, ...],
) -> bytes:
    """The detection record (``build_detection_example``) around the rendered image as the job's encoding gives it."""
    h, w = config.image_size
    return build_detection_example(
        image=payload,
        shape=(int(h), int(w), 3),
        dtype=stored_dtype(config.encoding),
        encoding=config.encoding,
        key=key,
        copy=copy,
        params=params,
        source_sha256=source_sha256,
        objects=objects,
        class_names=classes,
    )


def image_objects(annotation: str, shape: Sequence[int], targets: RunTargets) -> Objects | Problem:
    """The annotation at the decoded (upright) ``shape``, with masks when the run has them; or why not."""
    height, width = int(shape[0]), int(shape[1])
    k = len(targets.keypoints.names) if targets.keypoints is not None else None
    objects = to_objects(ImageAnnotation.from_json(annotation), height, width, k)
    if isinstance(objects, Problem) or not targets.masks or objects.masks is not None:
        return objects
    # The run has masks but no object here has one: each object's box stands for its mask, so that every
    # record of the run has the same keys.
    masks = np.zeros([len(objects), height, width], np.uint8)
    for n, box in enumerate(objects.boxes):
        masks[n] = box_mask(box, height, width)
    return dataclasses.replace(objects, masks=masks)


def record_targets(
    objects: Objects,
    ops: Sequence[Op],
    sampled: list[dict[str, Any]],
    shape: Sequence[int],
    config: JobConfig,
    keypoints: KeypointSpec | None,
) -> tuple[Objects, Removed]:
    """The objects carried through the record's ops to the output size, and what the rules removed."""
    size = (int(config.image_size[0]), int(config.image_size[1]))
    shape3 = (int(shape[0]), int(shape[1]), 3)
    return carry_objects(objects, ops, sampled, shape3, size, config.resize_mode, config.rules, keypoints)


def removed_entry(removed: Removed) -> dict[str, Any]:
    """The params entry after the ops: removal counts by reason and the removed objects' source ids."""
    return {REMOVED: dataclasses.asdict(removed) | {"ids": list(removed.ids)}}


def refused(problem: Problem) -> tuple[str, str]:
    """A Problem as a shard's (error type, message)."""
    return problem.error_type, problem.message[:500]


def is_error(found: Any) -> bool:
    return isinstance(found, ErrorRow)
