"""check_model finds normalisation applied twice or never; keras.applications models train on each preprocessing style.

Small on purpose: 32x32 inputs, ``weights=None`` (nothing is downloaded), one
job run per --model shared across the module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline.checks.model_check import check_model, input_normalization_layers
from pipeline.format import reader
from tests.helpers import PHOTOS, run
from transforms.preprocess import CAFFE_MEAN_BGR, get_preprocessing

SIZE = (32, 32)
MODEL_KWARGS = {"MobileNetV2": {"alpha": 0.35}}


@pytest.fixture(scope="module")
def build():
    """Builds (once per module) a keras.applications model at 32x32 with random weights."""
    cache: dict = {}

    def make(name: str, classes: int = 3):
        if (name, classes) not in cache:
            import keras

            cache[name, classes] = getattr(keras.applications, name)(
                weights=None, input_shape=(*SIZE, 3), classes=classes, **MODEL_KWARGS.get(name, {})
            )
        return cache[name, classes]

    return make


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Runs the job on the sample photos (once per --model) at 32x32, one copy, one shard; returns the folder."""
    root = tmp_path_factory.mktemp("model_check")
    cache: dict = {}

    def make(model: str):
        if model not in cache:
            run(PHOTOS, root / model, model=model, image_size=SIZE, copies=1, num_shards=1)
            cache[model] = root / model
        return cache[model]

    return make


def manifest_for(name: str) -> dict:
    """A manifest dict as a finished run writes its preprocessing part."""
    return {"preprocessing": dict(get_preprocessing(name).describe(), applied="by_reader")}


def checked(model, data) -> list[str]:
    """check_model's list, asserting it emitted the same messages as UserWarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        messages = check_model(model, data)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == messages
    return messages


def test_mobilenet_v2_on_its_own_preprocessing_is_quiet(build):
    assert checked(build("MobileNetV2"), manifest_for("mobilenet_v2")) == []


def test_efficientnet_on_normalised_data_warns_twice(build):
    model = build("EfficientNetB0")
    layers = [layer.name for layer in input_normalization_layers(model)]
    assert len(layers) == 2  # Rescaling(1/255) then Normalization
    (message,) = checked(model, manifest_for("mobilenet_v2"))
    assert "twice" in message
    assert "mobilenet_v2" in message and "[-1, 1]" in message
    assert all(repr(name) in message for name in layers)
    assert "--model efficientnet" in message and "--model none" in message
    assert "include_preprocessing=False" in message


def test_efficientnet_on_pass_through_data_is_quiet(build):
    model = build("EfficientNetB0")
    assert checked(model, manifest_for("efficientnet")) == []
    assert checked(model, manifest_for("EfficientNetB0")) == []


def test_mobilenet_v2_on_raw_data_warns_raw(build, job):
    (message,) = checked(build("MobileNetV2"), job("none"))  # a real output folder
    assert "raw [0, 255]" in message
    assert "--model mobilenet_v2" in message and "Rescaling" in message


def test_training_scripts_check_through_augbeam_and_a_typed_manifest(build, job):
    """``augbeam.check_model`` is the same check, on a folder or on its typed ``Manifest``."""
    import augbeam

    out = job("none")
    model = build("MobileNetV2")
    (message,) = augbeam.check_model(model, out)
    assert "raw [0, 255]" in message
    (typed,) = augbeam.check_model(model, augbeam.read_manifest(str(out)))
    assert typed == message.replace(repr(str(out)), "the manifest")  # the same finding, named by its source


def test_nested_rescaling_is_found():
    """Sequential(Sequential(Rescaling), small CNN): the Rescaling inside the nested model counts."""
    import keras

    cnn = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Rescaling(2.0, name="after_conv"),  # after the first conv: not input normalisation
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="small_cnn",
    )
    prep = keras.Sequential([keras.layers.Rescaling(1 / 127.5, offset=-1, name="to_unit")], name="prep")
    model = keras.Sequential([keras.Input((*SIZE, 3)), prep, cnn], name="wrapped")
    assert [layer.name for layer in input_normalization_layers(model)] == ["to_unit"]
    (message,) = checked(model, manifest_for("densenet"))
    assert "twice" in message and "'to_unit'" in message and "densenet" in message
    assert "e.g. efficientnet" in message  # no keras.applications family to name: the generic hint
    assert checked(model, manifest_for("none")) == []

    bare = keras.Sequential([keras.Input((*SIZE, 3)), cnn], name="bare")
    assert input_normalization_layers(bare) == []
    assert checked(bare, manifest_for("mobilenet_v2")) == []
    (message,) = checked(bare, manifest_for("none"))
    assert "raw [0, 255]" in message and "e.g. mobilenet_v2" in message


@pytest.mark.parametrize(
    "model_name, keras_name",
    [
        ("mobilenet_v2", "MobileNetV2"),  # tf: [-1, 1]
        ("resnet50", "ResNet50"),  # caffe: BGR minus the ImageNet mean
        ("densenet", "DenseNet121"),  # torch: per-channel mean/std
        ("efficientnet", "EfficientNetB0"),  # identity: [0, 255], the model rescales inside
    ],
)
def test_model_trains_on_its_preprocessing(build, job, model_name, keras_name):
    out = job(model_name)
    manifest = reader.read_manifest(str(out))
    pre = manifest.preprocessing
    assert pre["name"] == model_name
    ds = reader.load(str(out), split="train", batch_size=8, expect_model=model_name)
    images, labels = next(iter(ds))
    images = images.numpy()
    low, high = pre["output_range"]
    assert images.dtype == np.float32 and images.shape == (8, *SIZE, 3)
    assert low - 1e-4 <= images.min() and images.max() <= high + 1e-4, (images.min(), images.max(), low, high)
    if pre["mode"] == "caffe":
        assert images.min() < 0
        raw, _ = next(iter(reader.load(str(job("none")), split="train", batch_size=8)))
        expected = raw.numpy()[..., ::-1] - np.array(CAFFE_MEAN_BGR, np.float32)
        np.testing.assert_allclose(images, expected, atol=1e-3)

    classes = manifest.classes
    assert len(classes) == manifest.num_classes and set(labels.numpy()) <= set(range(len(classes)))
    model = build(keras_name, classes=len(classes))
    # Eager: tracing these graphs for two steps costs ~30 s each on 2 CPU cores, eager steps about a second.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    history = model.fit(ds.repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert checked(model, out) == []
