"""augbeam.load on a folder of detection records: dicts of documented shapes equal to what the builder wrote,
padding and batching, epochs, too many objects, TFDS reading it, and a Keras box-regression model training on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds  # in the test extra: a missing one must fail, not skip

import augbeam
from pipeline.format import tfds_info
from pipeline.format.detection_records import parse_detection_example
from pipeline.format.records import iter_records
from tests.helpers import write_output
from tests.pipeline.format.detection_data import SIZE, write_detection_output

KEYS = [f"img/{i}.jpg" for i in range(6)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for encoding in ("png", "uint8"):
        out[encoding] = tmp_path_factory.mktemp("det") / encoding
        manifest = write_detection_output(out[encoding], KEYS, copies=2, encoding=encoding)
        for name, data in tfds_info.make_files(str(out[encoding]), manifest).items():
            (out[encoding] / name).write_bytes(data)
    return out


def written(folder: Path) -> dict[tuple[str, int], object]:
    return {
        (p.key, p.copy): p
        for p in map(parse_detection_example, iter_records(str(folder / "train-00000-of-00001.tfrecord")))
    }


@pytest.mark.parametrize("encoding", ["png", "uint8"])
def test_load_gives_dicts_equal_to_the_records(folders, encoding):
    want = written(folders[encoding])
    seen = set()
    for ex in augbeam.load(str(folders[encoding]), split="train"):
        assert ex["image"].shape == (SIZE, SIZE, 3) and ex["image"].dtype.name == "float32"
        assert -1.0 <= float(ex["image"].numpy().min()) and float(ex["image"].numpy().max()) <= 1.0  # mobilenet_v2
        pair = (ex["key"].numpy().decode(), int(ex["copy"]))
        seen.add(pair)
        p = want[pair]
        n = int(ex["num_objects"])
        assert ex["boxes"].shape == (n, 4) and ex["classes"].dtype.name == "int32"
        np.testing.assert_allclose(ex["boxes"].numpy(), p.boxes, atol=1e-4)
        np.testing.assert_array_equal(ex["classes"].numpy(), p.classes)
        np.testing.assert_array_equal(ex["masks"].numpy(), p.masks)
        assert ex["keypoints"].shape == (n, 2, 3)
        np.testing.assert_allclose(ex["keypoints"].numpy(), p.keypoints.reshape(n, 2, 3), atol=1e-4)
        np.testing.assert_array_equal(ex["semantic_mask"].numpy(), p.semantic_mask)
    assert seen == set(want) and len(seen) == 12


def test_padded_batches_with_max_objects_and_epoch(folders):
    ds = augbeam.load(str(folders["png"]), split="train", batch_size=4, max_objects=5, epoch=1)
    spec = ds.element_spec
    assert spec["boxes"].shape.as_list() == [None, 5, 4] and spec["masks"].shape.as_list() == [None, 5, SIZE, SIZE]
    assert spec["keypoints"].shape.as_list() == [None, 5, 2, 3] and spec["classes"].shape.as_list() == [None, 5]
    batches = list(ds)
    assert sum(len(b["key"]) for b in batches) == len(KEYS)
    for batch in batches:
        assert set(batch["copy"].numpy().tolist()) == {1}
        for boxes, classes, n in zip(
            batch["boxes"].numpy(), batch["classes"].numpy(), batch["num_objects"].numpy(), strict=True
        ):
            assert (boxes[n:] == -1).all() and (classes[n:] == -1).all() and (classes[:n] >= 0).all()
    # Without max_objects: padded to the batch's largest, with the same values.
    batch = next(iter(augbeam.load(str(folders["png"]), split="train", batch_size=12)))
    most = int(batch["num_objects"].numpy().max())
    assert batch["boxes"].shape == (12, most, 4) and (batch["classes"].numpy() >= -1).all()


def test_too_many_objects_and_max_objects_on_classification_fail_in_one_message(folders, tmp_path):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"img/\d.jpg.*more than max_objects=1; raise it"):
        list(augbeam.load(str(folders["png"]), split="train", max_objects=1))
    with pytest.raises(augbeam.ReaderError, match="max_objects=0: give a whole number >= 1"):
        augbeam.load(str(folders["png"]), split="train", max_objects=0)
    write_output(tmp_path / "cls", {"train": ["cat/1.jpg"]}, copies=1, num_shards=1)
    with pytest.raises(augbeam.ReaderError, match="classification records, which have no objects"):
        augbeam.load(str(tmp_path / "cls"), split="train", max_objects=3)


@pytest.mark.parametrize("encoding", ["png", "uint8"])
def test_tfds_reads_image_and_objects(folders, encoding):
    want = written(folders[encoding])
    builder = tfds.builder_from_directory(str(folders[encoding]))
    objects = builder.info.features["objects"]
    assert isinstance(objects, tfds.features.Sequence)
    assert isinstance(objects.feature["bbox"], tfds.features.BBoxFeature)
    assert objects.feature["label"].names == ["cat", "dog", "person"]
    image_key = "image/encoded" if encoding == "png" else "image"
    count = 0
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        p = want[(ex["key"].decode(), int(ex["copy"]))]
        assert ex[image_key].shape == (SIZE, SIZE, 3) and ex[image_key].dtype == np.uint8
        yxyx = p.boxes[:, [1, 0, 3, 2]] / SIZE
        np.testing.assert_allclose(ex["objects"]["bbox"].reshape(-1, 4), yxyx, atol=1e-6)
        np.testing.assert_array_equal(ex["objects"]["label"], p.classes)
        count += 1
    assert count == 12


def test_keras_box_regression_trains_on_load_output(folders):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ds = augbeam.load(str(folders["png"]), split="train", batch_size=4, max_objects=4)
    # Regress the first box, normalised; a record without objects gets its padding's (-1) / SIZE target.
    ds = ds.map(lambda ex: (ex["image"], ex["boxes"][:, 0, :] / SIZE)).repeat()
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="box")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(ds, steps_per_epoch=1, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()
    # The conversion docs/reading.md gives to KerasCV's rel_yxyx.
    batch = next(iter(augbeam.load(str(folders["png"]), split="train", batch_size=2)))
    rel = keras.utils.bounding_boxes.convert_format(batch["boxes"], "xyxy", "rel_yxyx", height=SIZE, width=SIZE)
    np.testing.assert_allclose(np.asarray(rel), batch["boxes"].numpy()[..., [1, 0, 3, 2]] / SIZE, atol=1e-6)
    assert isinstance(ds.element_spec[1], tf.TensorSpec) and ds.element_spec[1].shape.as_list() == [None, 4]
