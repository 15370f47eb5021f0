"""A tiny detection output folder written with the record builder and a manifest, without a job (for readers' tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.format.detection_records import DETECTION_FEATURES, build_detection_example
from pipeline.format.manifest import (
    Counts,
    ErrorRow,
    ImageInfo,
    IndexRow,
    InputInfo,
    Manifest,
    ShardInfo,
    SplitInfo,
    TargetsInfo,
    errors_name,
    index_name,
    shard_name,
)
from pipeline.format.records import FORMAT_VERSION, TFRecordWriter, record_sha256
from pipeline.format.tables import write_table
from transforms.targets.types import KeypointSpec, Objects, TargetRules

SIZE = 32
CLASSES = ("cat", "dog", "person")
KEYPOINTS = KeypointSpec(names=("left_eye", "right_eye"), flip_pairs=((0, 1),))
TASKS = ("detection", "instance_segmentation", "keypoints", "semantic_segmentation")


def sample_objects(key: str, copy: int) -> Objects:
    """0 to 3 objects, drawn from (key, copy): boxes, masks filling them, two keypoints each."""
    rng = np.random.default_rng(int(hashlib.sha256(f"{key}\x00{copy}".encode()).hexdigest()[:8], 16))
    n = int(rng.integers(0, 4))
    corner = rng.integers(0, SIZE // 2, (n, 2)).astype(np.float64)
    boxes = np.concatenate([corner, corner + rng.integers(4, SIZE // 2, (n, 2))], axis=1)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[i, y0:y1, x0:x1] = 1
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    keypoints = np.stack([np.concatenate([centre, np.full((n, 1), 2.0)], 1)] * 2, axis=1)
    keypoints[:, 1, 2] = 1.0  # the second keypoint occluded
    return Objects(
        boxes=boxes,
        classes=rng.integers(0, len(CLASSES), n),
        ids=np.arange(n) + 10,
        iscrowd=np.zeros(n, bool),
        masks=masks,
        keypoints=keypoints,
    )


def sample_image(key: str, copy: int) -> np.ndarray:
    seed = int(hashlib.sha256(f"img{key}\x00{copy}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def write_detection_output(out: Path, keys: list[str], copies: int = 2, encoding: str = "png") -> Manifest:
    """One ``train`` split of one shard (every key's copies in order), mobilenet_v2 preprocessing by the reader."""
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    name = shard_name("train", 0, 1)
    rows = []
    with open(out / name, "wb") as handle:
        writer = TFRecordWriter(handle)
        for key in keys:
            for copy in range(copies):
                pixels = sample_image(key, copy)
                payload = tf.io.encode_png(pixels).numpy() if encoding == "png" else pixels.tobytes()
                source = hashlib.sha256(key.encode()).hexdigest()
                removed = {"outside": 0, "min_area": 0, "min_visibility": 0, "min_side": 0, "ids": []}
                params = json.dumps([{"op": "none", "copy": copy}, {"removed": removed}])
                record = build_detection_example(
                    image=payload,
                    shape=(SIZE, SIZE, 3),
                    dtype="uint8",
                    encoding=encoding,
                    key=key,
                    copy=copy,
                    params=params,
                    source_sha256=source,
                    objects=sample_objects(key, copy),
                    class_names=CLASSES,
                    semantic_mask=np.full((SIZE, SIZE), copy, np.uint8),
                )
                rows.append(IndexRow(key, copy, "train", name, len(rows), -1, params, record_sha256(record), source))
                writer.write(record)
    index = write_table(str(out), index_name("train", 0, 1), rows, IndexRow)
    errors = write_table(str(out), errors_name("train", 0, 1), [], ErrorRow)
    shard = ShardInfo(name, writer.records, writer.bytes, writer.sha256.hexdigest(), index, errors)
    n = len(keys)
    counts = Counts(n, 0, {"listing": 0, "read": 0, "decode": 0}, n, copies, n * copies, n * copies, 0)
    from transforms.preprocess import get_preprocessing

    manifest = Manifest(
        format_version=FORMAT_VERSION,
        producer={"augbeam": "0.1.0", "python": "3"},
        config={"seed": 1, "ops": [], "config_source": "none", "copies": copies, "eval_copies": 1, "eval_ops": "none"},
        input=InputInfo(str(out.parent / "in"), "folder"),
        classes=(),
        image=ImageInfo((SIZE, SIZE, 3), encoding, "uint8"),
        preprocessing=dict(get_preprocessing("mobilenet_v2").describe(), applied="by_reader", output_dtype="float32"),
        features=DETECTION_FEATURES,
        seeding={},
        sharding="by hash",
        splits={"train": SplitInfo(True, (shard,), counts, {})},
        side_files={},
        targets=TargetsInfo(
            tasks=TASKS, classes=CLASSES, rules=TargetRules(), keypoints=KEYPOINTS, source_format="coco"
        ),
    )
    (out / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return manifest
