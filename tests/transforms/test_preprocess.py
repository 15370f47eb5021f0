"""Model preprocessing against Keras: every family and model registered with its size, generic entries, bad choices."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.preprocess import PREPROCESSING, get_preprocessing

KERAS_ENTRIES = sorted(name for name, entry in PREPROCESSING.items() if entry.keras_module)


@pytest.mark.parametrize("name", KERAS_ENTRIES)
def test_preprocessing_matches_keras(name):
    """Every entry against its family's own preprocess_input: random images and the edges 0 and 255."""
    import importlib

    pre = get_preprocessing(name)
    keras_fn = importlib.import_module(f"keras.applications.{pre.keras_module}").preprocess_input
    rng = np.random.default_rng(0)
    images = [
        rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32),
        np.zeros((1, 2, 2, 3), np.float32),
        np.full((1, 2, 2, 3), 255, np.float32),
        np.array([[[[0, 255, 0], [255, 0, 255]]]], np.float32),
    ]
    low, high = pre.output_range
    for x in images:
        ours = pre(x).numpy()
        np.testing.assert_allclose(ours, np.asarray(keras_fn(x.copy())), atol=1e-5, rtol=0)
        assert low - 1e-5 <= ours.min() and ours.max() <= high + 1e-5
    # the declared range is reached: the edges map to its ends
    edges = pre(np.array([[[[0, 0, 0], [255, 255, 255]]]], np.float32)).numpy()
    if pre.mode not in ("caffe", "torch"):  # per-channel offsets: the ends come from different channels
        assert edges.min() == pytest.approx(low, abs=1e-5) and edges.max() == pytest.approx(high, abs=1e-5)


def _keras_default_sizes() -> dict[str, tuple[int, str]]:
    """Each keras.applications model class: its default input size (Keras' own) and module."""
    import keras.applications as apps
    from keras.src.applications import imagenet_utils

    class Found(Exception):
        pass

    def report(input_shape, default_size, *args, **kwargs):
        raise Found(default_size)

    real = imagenet_utils.obtain_input_shape
    imagenet_utils.obtain_input_shape = report  # every model asks for its default size first
    out = {}
    try:
        for name in dir(apps):
            if not name[0].isupper():
                continue
            fn = getattr(apps, name)
            module = fn.__module__.rsplit(".", 1)[-1]
            try:
                model = fn(weights=None)
                # MobileNetV3 does not ask and takes any size; its weights are for 224 (Keras' docs).
                out[name] = (int(model.input_shape[1] or 224), module)
            except Found as found:
                out[name] = (int(found.args[0]), module)
    finally:
        imagenet_utils.obtain_input_shape = real
    return out


def test_every_keras_family_and_model_is_registered_with_its_size():
    import keras.applications as apps

    modules = {m for m in dir(apps) if m.islower() and not m.startswith("_") and m != "imagenet_utils"}
    assert modules <= set(PREPROCESSING), sorted(modules - set(PREPROCESSING))
    for name, (size, module) in _keras_default_sizes().items():
        entry = get_preprocessing(name)
        assert entry.input_size == (size, size), name
        assert get_preprocessing(module).mode == entry.mode, name
        assert name in get_preprocessing(entry.keras_module).models, name


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("efficientnet", True),
        ("efficientnet_v2", True),
        ("convnext", True),
        ("mobilenet_v3", True),
        ("resnet50", False),
    ],
)
def test_models_that_rescale_inside_pass_values_through(name, inside):
    pre = get_preprocessing(name)
    assert pre.rescales_inside is inside
    assert (pre.mode == "identity") is inside and pre.output_range == ((0.0, 255.0) if inside else pre.output_range)


def test_generic_entries():
    x = np.array([[[0.0, 127.5, 255.0]]], np.float32)
    np.testing.assert_allclose(get_preprocessing("none")(x).numpy(), x)
    np.testing.assert_allclose(get_preprocessing("scale_0_1")(x).numpy(), x / 255.0)
    np.testing.assert_allclose(get_preprocessing("scale_-1_1")(x).numpy(), [[[-1.0, 0.0, 1.0]]])
    ms = get_preprocessing("mean_std", (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    np.testing.assert_allclose(ms(x).numpy(), (x / 255.0 - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.5], rtol=1e-6)
    low, high = ms.output_range
    assert low == pytest.approx(-2.5) and high == pytest.approx(2.5)
    assert ms.describe()["mean"] == [0.5, 0.4, 0.3]
    from transforms.preprocess import Preprocessing

    assert Preprocessing.from_description(ms.describe()) == ms


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mean_std",), "needs --mean R G B and --std R G B"),
        (("mean_std", (0.5, 0.5, 0.5), (0.0, 1.0, 1.0)), "--std must be positive"),
        (("resnet50", (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)), "only apply to --model mean_std"),
        (("resnet51",), "--model 'resnet51' is not known; choose .*resnet50"),
    ],
)
def test_bad_model_choices_are_clear(args, message):
    from transforms.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        get_preprocessing(*args)


def test_model_names_in_any_case():
    assert get_preprocessing("efficientnetb3") is get_preprocessing("EfficientNetB3")
    assert get_preprocessing("EfficientNetB3").input_size == (300, 300)
