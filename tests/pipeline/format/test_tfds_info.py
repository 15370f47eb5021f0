"""An output folder loads with TensorFlow Datasets: ``tfds.builder_from_directory(DST)``, every encoding.

TFDS must give the same records as the shards themselves (bit for bit for
raw pixels; the same decoder for JPEG and PNG) and as ``pipeline.format.reader``
once the manifest's preprocessing is applied.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow_datasets as tfds  # in the test extra: a missing one must fail, not skip

from pipeline.checks.verify import verify
from pipeline.format import reader, tfds_info
from pipeline.format.manifest import Manifest
from tests.helpers import DATA, PHOTOS, run

ENCODINGS = ("uint8", "jpeg", "float32", "png", "float16")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """One small job per encoding on the sample photos (train with 2 copies, validation)."""
    root = tmp_path_factory.mktemp("tfds")
    out = {}
    for encoding in ENCODINGS:
        out[encoding] = root / encoding
        run(PHOTOS, out[encoding], encoding=encoding, copies=2)
    return out


def manifest_of(dst: Path) -> dict[str, Any]:
    return json.loads((dst / "manifest.json").read_text())


def shard_records(dst: Path, manifest: dict[str, Any], split: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The split's records parsed straight from its shards, by (key, copy)."""
    import tensorflow as tf

    from pipeline.format.records import parse_spec

    files = [str(dst / s["file"]) for s in manifest["splits"][split]["shards"]]
    out = {}
    for record in tf.data.TFRecordDataset(files):
        ex = {k: v.numpy() for k, v in tf.io.parse_single_example(record, parse_spec()).items()}
        out[(ex["key"].decode(), int(ex["copy"]))] = ex
    return out


def tfds_records(dst: Path, split: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The split as TFDS reads it, by (key, copy); no pair twice."""
    builder = tfds.builder_from_directory(str(dst))
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
        pair = (ex["key"].decode(), int(ex["copy"]))
        assert pair not in out, f"{pair} read twice"
        out[pair] = ex
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_tfds_reads_every_split_as_the_shards_hold_it(outputs, encoding):
    import tensorflow as tf

    dst = outputs[encoding]
    manifest = manifest_of(dst)
    builder = tfds.builder_from_directory(str(dst))
    assert builder.info.full_name == "augbeam/1.0.0"
    assert set(builder.info.splits.keys()) == set(manifest["splits"]) == {"train", "validation"}
    stored = np.dtype(manifest["image"]["stored_dtype"])
    for split, info in manifest["splits"].items():
        assert builder.info.splits[split].num_examples == info["counts"]["written"] > 0
        assert builder.info.splits[split].num_shards == info["num_shards"]
        ours, theirs = shard_records(dst, manifest, split), tfds_records(dst, split)
        assert set(theirs) == set(ours)
        for pair, ex in theirs.items():
            mine = ours[pair]
            image = ex["image"]
            assert image.shape == (32, 32, 3) and image.dtype == stored
            if encoding in ("jpeg", "png"):
                expected = tf.io.decode_image(mine["image"], channels=3, expand_animations=False).numpy()
                np.testing.assert_array_equal(image, expected)
            else:
                assert image.astype(stored.newbyteorder("<")).tobytes() == mine["image"]  # bit for bit
            assert ex["label"] == mine["label"]
            assert ex["params"] == mine["params"]
            assert ex["source_sha256"] == mine["source_sha256"]


@pytest.mark.parametrize("encoding", ("uint8", "jpeg", "float32"))
def test_tfds_images_match_the_reader_after_preprocessing(outputs, encoding):
    """Stored preprocessed (float32) TFDS gives the reader's input; else the reader = preprocessing(TFDS)."""
    import tensorflow as tf

    from transforms.preprocess import Preprocessing

    dst = outputs[encoding]
    manifest = manifest_of(dst)
    preprocessing = Preprocessing.from_description(manifest["preprocessing"])
    theirs = tfds_records(dst, "validation")
    seen = 0
    for image, label, meta in reader.load(str(dst), split="validation", with_metadata=True):
        ex = theirs[(meta["key"].numpy().decode(), int(meta["copy"]))]
        assert int(label) == ex["label"]
        pixels = tf.cast(ex["image"], tf.float32)
        expected = pixels if manifest["preprocessing"]["applied"] == "in_records" else preprocessing(pixels)
        np.testing.assert_array_equal(image.numpy(), expected.numpy())
        seen += 1
    assert seen == len(theirs) == manifest["splits"]["validation"]["counts"]["written"]


def test_class_names_supervised_keys_and_description(outputs):
    manifest = manifest_of(outputs["uint8"])
    builder = tfds.builder_from_directory(str(outputs["uint8"]))
    label = builder.info.features["label"]
    assert isinstance(label, tfds.features.ClassLabel)
    assert label.names == manifest["classes"] and label.num_classes == manifest["num_classes"]
    assert builder.info.supervised_keys == ("image", "label")
    image, y = next(iter(tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True))))
    assert image.shape == (32, 32, 3) and 0 <= y < manifest["num_classes"]
    # The one thing a TFDS user must know: raw pixels, preprocessing not applied.
    assert "mobilenet_v2 preprocessing is NOT applied" in builder.info.description
    assert "already applied" in tfds.builder_from_directory(str(outputs["float32"])).info.description
    assert isinstance(tfds.builder_from_directory(str(outputs["jpeg"])).info.features["image"], tfds.features.Image)


@pytest.mark.parametrize("encoding", ("uint8", "png"))
def test_side_files_are_listed_deterministic_and_verified(outputs, encoding):
    dst = outputs[encoding]
    manifest = manifest_of(dst)
    side = manifest["files"]["side"]
    assert {"dataset_info.json", "features.json", "label.labels.txt"} <= set(side)
    made = tfds_info.make_files(str(dst), Manifest.from_json(manifest))  # from the manifest alone: the same bytes
    for name, data in made.items():
        assert (dst / name).read_bytes() == data
        assert side[name]["bytes"] == len(data)
    assert verify(str(dst)).ok
    # A changed TFDS file is caught like any other.
    (dst / "features.json").write_bytes(made["features.json"].replace(b"augmented", b"Augmented"))
    try:
        assert not verify(str(dst)).ok
    finally:
        (dst / "features.json").write_bytes(made["features.json"])


def test_unlabeled_run_and_empty_shards(tmp_path):
    """No classes: label is a plain int64 (-1); a shard no record went to reads as empty."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("rocket_small.jpg", "gray.png"):
        shutil.copy(DATA / name, src / name)
    (src / "list.csv").write_text("path\nrocket_small.jpg\ngray.png\n")
    dst = tmp_path / "out"
    manifest = run(src / "list.csv", dst, copies=1, num_shards=3)
    assert manifest.classes == ()
    assert any(s.records == 0 for s in manifest.splits["train"].shards)
    assert "label.labels.txt" not in (manifest.side_files or {})
    builder = tfds.builder_from_directory(str(dst))
    assert not isinstance(builder.info.features["label"], tfds.features.ClassLabel)
    assert builder.info.supervised_keys is None
    examples = tfds_records(dst, "train")
    assert sorted(examples) == [("gray.png", 0), ("rocket_small.jpg", 0)]
    assert {int(ex["label"]) for ex in examples.values()} == {-1}
    assert verify(str(dst)).ok


def test_class_names_the_labels_file_cannot_hold(tmp_path):
    """Non-ASCII names or spaces at either end go in features.json and come back exactly."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("rocket_small.jpg", "gray.png", "rgba.png"):
        shutil.copy(DATA / name, src / name)
    (src / "list.csv").write_text(
        'path,label\nrocket_small.jpg,café\ngray.png," lead space"\nrgba.png,café\n', encoding="utf-8"
    )
    dst = tmp_path / "out"
    manifest = run(src / "list.csv", dst, copies=1, num_shards=1)
    assert manifest.classes == (" lead space", "café")
    assert "label.labels.txt" not in (manifest.side_files or {})
    builder = tfds.builder_from_directory(str(dst))
    assert builder.info.features["label"].names == list(manifest.classes)
    labels = {key: int(ex["label"]) for (key, _), ex in tfds_records(dst, "train").items()}
    assert labels == {"rocket_small.jpg": 1, "gray.png": 0, "rgba.png": 1}
    assert verify(str(dst)).ok


def test_shard_names_follow_the_tfds_template(outputs):
    """Our shard names are what TFDS formats from {SPLIT}-{SHARD_X_OF_Y}.tfrecord."""
    from pipeline.format.manifest import Counts, ShardInfo, SplitInfo, TableInfo, shard_name

    for num_shards in (1, 3, 12, 99999):
        for shard in {0, num_shards // 2, num_shards - 1}:
            assert tfds_info.tfds_shard_name("train", shard, num_shards) == shard_name("train", shard, num_shards)
    # From 100000 shards TFDS pads the index to 6 digits and ours stays at 5: no TFDS files then, no failed run.
    assert tfds_info.tfds_shard_name("train", 7, 100000) != shard_name("train", 7, 100000)
    part = TableInfo("", 1, 1, "")
    shards = tuple(ShardInfo(shard_name("train", i, 100000), 1, 1, "", part, part) for i in range(100000))
    counts = Counts(100000, 0, {}, 100000, 1, 100000, 100000, 0)
    manifest = dataclasses.replace(
        Manifest.from_json(manifest_of(outputs["uint8"])), splits={"train": SplitInfo(False, shards, counts, {})}
    )
    assert tfds_info.make_files("out", manifest) == {}
