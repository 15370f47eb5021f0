"""pipeline/format/reader.py on real runs: the model's value range, refusals (checksum, model, split, unfinished
run, incomplete manifest), and a Keras model training on what it reads.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.format import reader
from pipeline.format.reader import ReaderError, read_manifest
from tests.helpers import run
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
        reader.load(str(broken), split="train")
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
