"""pipeline/format/reader.py: the model's value range, refusals (size, checksum, model, split, unfinished run,
incomplete manifest), a start that reads no shard, the index and error parts streamed, and a Keras model training
on what it reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.format import reader
from pipeline.format.reader import ReaderError, read_manifest
from tests.helpers import SYNTHETIC_SHAPE, run, write_output
from tests.helpers import sample_manifest as _manifest


def test_reader_mobilenet_v2_range(run_a):
    manifest = reader.read_manifest(str(run_a))
    assert manifest.preprocessing["name"] == "mobilenet_v2"
    assert manifest.preprocessing["applied"] == "by_reader"
    ds = reader.load(str(run_a), split="train", batch_size=8, expect_model="mobilenet_v2")
    assert ds.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    values = np.concatenate([x.numpy() for x, _ in ds])
    assert values.dtype == np.float32
    assert values.min() >= -1.0 and values.max() <= 1.0
    assert values.min() < -0.9 and values.max() > 0.9  # really scaled to [-1, 1], not [0, 1]


@pytest.fixture(scope="module")
def run_resnet(photos_with_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet") / "out"
    run(photos_with_bad, out, model="resnet50", encoding="float32", copies=1, num_shards=2)
    return out


def test_reader_resnet50_caffe_values(run_resnet, run_a):
    manifest = reader.read_manifest(str(run_resnet))
    assert manifest.preprocessing["applied"] == "in_records"
    assert manifest.preprocessing["channel_order"] == "BGR"
    ds = reader.load(str(run_resnet), split="validation", with_metadata=True, expect_model="resnet50")
    assert ds.element_spec[0].shape.as_list() == [32, 32, 3]
    # The unaugmented validation images equal caffe preprocessing of run_a's uint8 pixels.
    raw = {}
    for image, _label, meta in reader.load(str(run_a), split="validation", with_metadata=True):
        raw[meta["key"].numpy()] = image.numpy()  # mobilenet_v2: x / 127.5 - 1
    low, high = manifest.preprocessing["output_range"]
    for image, _label, meta in ds:
        x = image.numpy()
        assert low <= x.min() and x.max() <= high
        pixels = (raw[meta["key"].numpy()] + 1.0) * 127.5
        expected = pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
        np.testing.assert_allclose(x, expected, atol=0.51)  # uint8 rounding in run_a only


def test_reader_refuses_unfinished_and_corrupt(run_b, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_b, broken)
    shard = broken / "train-00000-of-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(reader.ReaderError, match="checksum"):
        reader.load(str(broken), split="train", verify="full")
    with pytest.raises(reader.ReaderError, match="mobilenet_v2.*resnet50"):
        reader.load(str(run_b), split="train", expect_model="resnet50")
    with pytest.raises(reader.ReaderError, match="no split"):
        reader.load(str(run_b), split="test")
    (broken / "manifest.json").unlink()
    with pytest.raises(reader.ReaderError, match="did not finish"):
        reader.load(str(broken), split="train")


def test_keras_model_trains_on_reader_output(run_a):
    import keras

    manifest = reader.read_manifest(str(run_a))
    ds = reader.load(str(run_a), split="train", batch_size=8, shuffle_files=True, seed=0)
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=manifest.num_classes
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_reader_refuses_an_incomplete_manifest_in_one_line(tmp_path):
    data = _manifest().to_json()
    del data["image"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ReaderError) as caught:
        read_manifest(str(tmp_path))
    assert "not a complete augbeam manifest (the manifest has no 'image')" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A folder written by the format's rules: 2 splits of 3 shards, a failed input and a failed copy."""
    out = tmp_path_factory.mktemp("made") / "out"
    keys = [f"cat/{i}.jpg" for i in range(7)] + [f"dog/{i}.jpg" for i in range(6)]
    write_output(
        out,
        {"train": keys, "validation": ["cat/v.jpg", "dog/v.jpg"]},
        copies=2,
        failed_inputs={"cat/2.jpg": "decode/CorruptImage"},
        failed_records={("dog/1.jpg", 1): "augment/RangeError"},
    )
    return out


def test_load_reads_no_shard_before_the_first_batch(made, tmp_path, monkeypatch):
    """The default check is a stat per file: a same-size change passes load(), then fails tf.data's CRC on read."""
    import shutil

    import tensorflow as tf

    from pipeline import fsutil

    changed = tmp_path / "changed"
    shutil.copytree(made, changed)
    shard = changed / "train-00001-of-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[-40] ^= 1  # inside the last record's image
    shard.write_bytes(bytes(data))

    read: list[str] = []
    for name in ("open_read", "read_bytes"):
        real = getattr(fsutil, name)
        monkeypatch.setattr(fsutil, name, lambda path, real=real: read.append(path) or real(path))
    ds = reader.load(str(changed), split="train")
    assert [Path(p).name for p in read] == ["manifest.json"]
    monkeypatch.undo()
    with pytest.raises(tf.errors.DataLossError):
        for _ in ds:
            pass
    with pytest.raises(ReaderError, match="does not match its checksum"):
        reader.load(str(changed), split="train", verify="full")
    good = [label for _, label in reader.load(str(made), split="train", verify="full")]
    assert len(good) == read_manifest(str(made)).splits["train"].counts.written


def test_load_refuses_a_changed_size_or_a_missing_part(made, tmp_path):
    import shutil

    resized = tmp_path / "resized"
    shutil.copytree(made, resized)
    with open(resized / "validation-00000-of-00003.tfrecord", "ab") as handle:
        handle.write(b"\0")
    reader.load(str(resized), split="train")  # the other split is not looked at
    with pytest.raises(ReaderError, match="shard .*validation-00000-of-00003.tfrecord has .* bytes, the manifest says"):
        reader.load(str(resized), split="validation")
    (resized / "index-train-00002-of-00003.parquet").unlink()
    with pytest.raises(ReaderError, match="index part index-train-00002-of-00003.parquet listed in the manifest is"):
        reader.load(str(resized), split="train")
    reader.load(str(resized), split="train", verify="none")
    with pytest.raises(ReaderError, match="verify='fast': choose one of size, full, none"):
        reader.load(str(made), split="train", verify="fast")


def test_load_gives_the_records_with_their_metadata(made):
    ds = reader.load(str(made), split="train", with_metadata=True)
    seen = {(meta["key"].numpy().decode(), int(meta["copy"])) for _, _, meta in ds}
    assert seen == {(row.key, row.copy) for row in reader.iter_index(str(made), "train")}
    image, label = next(iter(reader.load(str(made), split="validation")))
    assert image.shape == SYNTHETIC_SHAPE and -1.0 <= float(image.numpy().min()) and int(label) in (0, 1)


def test_iter_index_and_errors_stream_the_parts_in_shard_order(made):
    manifest = read_manifest(str(made))
    rows = list(reader.iter_index(str(made)))
    assert len(rows) == manifest.index_rows
    shards = [shard.file for _, shard in manifest.iter_shards()]
    order = [(shards.index(r.shard), r.position) for r in rows]
    assert order == sorted(order)
    assert {r.split for r in reader.iter_index(str(made), "validation")} == {"validation"}
    errors = list(reader.iter_errors(str(made), "train"))
    assert sorted((e.key, e.copy, e.reason) for e in errors) == [
        ("cat/2.jpg", None, "decode/CorruptImage"),
        ("dog/1.jpg", 1, "augment/RangeError"),
    ]
    with pytest.raises(ReaderError, match="no split 'test'"):
        list(reader.iter_errors(str(made), "test"))
