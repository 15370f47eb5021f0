"""pipeline/format/detection_records.py: the OD API keys field by field against TensorFlow's own Example class,
the same bytes in another process, the NumPy parse, and the manifest's ``targets`` section."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.format.detection_records import build_detection_example, decode_png, parse_detection_example
from pipeline.format.manifest import Manifest, TargetsInfo
from tests.helpers import ROOT, sample_manifest
from tests.pipeline.format.detection_data import CLASSES, KEYPOINTS, SIZE, sample_objects
from transforms.targets.types import Objects, TargetRules

H, W = 24, 40  # not square: x is divided by the width, y by the height


def objects() -> Objects:
    boxes = np.array([[0.0, 0.0, 40.0, 24.0], [10.5, 2.25, 20.0, 12.0]])
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, 3:9, 4:30] = 1
    masks[1, 2:12, 10:20] = 1
    keypoints = np.array([[[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], [[15.0, 7.0, 1.0], [18.0, 9.0, 2.0]]])
    return Objects(boxes, np.array([2, 0]), np.array([7, 9]), np.array([False, True]), masks, keypoints)


def build(**changes) -> bytes:
    fields = dict(
        image=b"\x89PNG fake",
        shape=(H, W, 3),
        dtype="uint8",
        encoding="png",
        key="train/ü 1.jpg",
        copy=3,
        params='[{"op": "x"}]',
        source_sha256="ab" * 32,
        objects=objects(),
        class_names=CLASSES,
        semantic_mask=np.arange(H * W, dtype=np.uint8).reshape(H, W) % 4,
    )
    return build_detection_example(**{**fields, **changes})


def test_od_api_keys_field_by_field_and_protobufs_deterministic_bytes():
    from tensorflow.core.example import example_pb2

    record = build()
    example = example_pb2.Example.FromString(record)
    got = {name: getattr(f, f.WhichOneof("kind")).value for name, f in example.features.feature.items()}
    f32 = np.float32
    assert got["image/encoded"] == [b"\x89PNG fake"] and got["image/format"] == [b"png"] and "image" not in got
    assert (got["image/height"], got["image/width"], got["image/shape"]) == ([H], [W], [H, W, 3])
    assert got["image/source_id"] == got["image/filename"] == got["key"] == ["train/ü 1.jpg".encode()]
    assert list(got["image/object/bbox/xmin"]) == [0.0, f32(10.5 / W)]
    assert list(got["image/object/bbox/ymin"]) == [0.0, f32(2.25 / H)]
    assert list(got["image/object/bbox/xmax"]) == [1.0, f32(20 / W)]
    assert list(got["image/object/bbox/ymax"]) == [1.0, f32(12 / H)]
    assert list(got["image/object/class/label"]) == [3, 1]  # 1-based
    assert list(got["image/object/class/text"]) == [b"person", b"cat"]
    assert list(got["image/object/is_crowd"]) == [0, 1] and list(got["image/object/id"]) == [7, 9]
    np.testing.assert_array_equal(np.stack([decode_png(m) for m in got["image/object/mask"]]), objects().masks)
    assert list(got["image/object/keypoint/x"]) == [f32(v / W) for v in (1, 0, 15, 18)]
    assert list(got["image/object/keypoint/y"]) == [f32(v / H) for v in (2, 0, 7, 9)]
    assert list(got["image/object/keypoint/visibility"]) == [2, 0, 1, 2]
    assert got["image/segmentation/class/format"] == [b"png"]
    np.testing.assert_array_equal(
        decode_png(got["image/segmentation/class/encoded"][0]), np.arange(H * W).reshape(H, W) % 4
    )
    assert list(got["objects/bbox"]) == [0, 0, 1, 1, f32(2.25 / H), f32(10.5 / W), f32(12 / H), f32(20 / W)]
    assert list(got["objects/label"]) == [2, 0]
    assert (got["copy"], got["params"], got["source_sha256"]) == ([3], [b'[{"op": "x"}]'], [b"ab" * 32])
    # TensorFlow's own message class, filled from what it parsed, serialises deterministically to the same bytes.
    assert example.SerializeToString(deterministic=True) == record


def test_raw_encodings_keep_the_image_key_and_zero_objects_keep_every_key():
    record = build(encoding="float32", dtype="float32", image=b"\0" * 16, objects=Objects.empty(2, True, (H, W)))
    parsed = parse_detection_example(record)
    assert parsed.image == b"\0" * 16 and parsed.encoding == "float32"
    assert parsed.boxes.shape == (0, 4) and parsed.classes.shape == (0,) and parsed.masks.shape == (0, H, W)
    from tensorflow.core.example import example_pb2

    names = set(example_pb2.Example.FromString(record).features.feature)
    assert "image" in names and "image/encoded" not in names
    assert {"image/object/bbox/xmin", "image/object/mask", "image/object/keypoint/x", "objects/bbox"} <= names


def test_numpy_parse_gives_back_the_objects():
    parsed = parse_detection_example(build())
    want = objects()
    np.testing.assert_allclose(parsed.boxes, want.boxes, atol=1e-5)
    assert parsed.classes.tolist() == [2, 0] and parsed.ids.tolist() == [7, 9] and parsed.iscrowd.tolist() == [0, 1]
    np.testing.assert_array_equal(parsed.masks, want.masks)
    np.testing.assert_allclose(parsed.keypoints, want.keypoints, atol=1e-5)
    assert parsed.key == "train/ü 1.jpg" and parsed.copy == 3 and parsed.shape == (H, W, 3)


def test_same_bytes_in_another_process():
    """Deterministic serialisation: a fresh interpreter (another hash seed) writes the same record."""
    code = (
        "import sys, hashlib; from tests.pipeline.format.detection_data import *; "
        "sys.stdout.write(hashlib.sha256(build_detection_example(image=b'x', shape=(32, 32, 3), dtype='uint8', "
        "encoding='png', key='k', copy=1, params='[]', source_sha256='s', objects=sample_objects('k', 1), "
        "class_names=CLASSES)).hexdigest())"
    )
    env = {"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    import hashlib

    here = build_detection_example(
        image=b"x", shape=(SIZE, SIZE, 3), dtype="uint8", encoding="png", key="k", copy=1, params="[]",
        source_sha256="s", objects=sample_objects("k", 1), class_names=CLASSES,
    )  # fmt: skip
    assert other == hashlib.sha256(here).hexdigest()


def test_arrays_that_do_not_match_the_image_are_refused():
    bad = objects()
    with pytest.raises(ValueError, match=r"masks have shape \(2, 24, 40\), expected \(2, 10, 40\)"):
        build(shape=(10, W, 3), semantic_mask=None, objects=bad)
    with pytest.raises(ValueError, match="outside the 3 class names"):
        build(objects=Objects(bad.boxes, np.array([0, 3]), bad.ids, bad.iscrowd))


def test_manifest_targets_section_round_trips_and_classification_manifests_keep_their_bytes():
    plain = sample_manifest()
    assert "targets" not in plain.to_json()
    assert Manifest.from_json(plain.to_json()).to_json() == plain.to_json()
    targets = TargetsInfo(
        tasks=("detection", "keypoints"), classes=CLASSES, rules=TargetRules(min_area=4.0), keypoints=KEYPOINTS
    )
    import dataclasses

    data = json.loads(json.dumps(dataclasses.replace(plain, targets=targets).to_json()))
    assert data["targets"]["label_offset"] == 1 and data["targets"]["rules"]["min_area"] == 4.0
    back = Manifest.from_json(data)
    assert back.targets == targets and back.targets.keypoints.flip_permutation().tolist() == [1, 0]
    with pytest.raises(ValueError, match="known: detection"):
        TargetsInfo(tasks=("boxes",), classes=(), rules=TargetRules())
