"""Filter ops: gaussian_noise, gaussian_blur, sharpness, jpeg_quality (and random_erasing in the contract tests).

Checked against PIL / TF references where one exists, plus the op contract:
batched results equal per-image results bit for bit, neutral params are the
identity, outputs are float32 in [0, 255] of the input's shape, and bad
configs raise a ConfigError that names the op and the field. random_erasing's
own checks are in test_occlusion.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageFilter

from tests.helpers import apply_tensor as run
from tests.helpers import rocket_image, traced_batch
from transforms.errors import ConfigError
from transforms.ops import op_from_config
from transforms.rng import Rng

CONFIGS = [
    {"op": "gaussian_noise", "std": [5.0, 60.0]},
    {"op": "gaussian_blur", "sigma": [0.3, 3.0]},
    {"op": "sharpness", "factor": [0.0, 4.0]},
    {"op": "jpeg_quality", "quality": [5, 95]},
    {"op": "random_erasing", "count": [1, 3], "area": [0.05, 0.3], "fill_value": 77.0},
    {"op": "random_erasing", "count": [0, 2], "fill": "noise"},
]
IDS = [f"{c['op']}-{i}" for i, c in enumerate(CONFIGS)]


@pytest.fixture(scope="module")
def photo_pil() -> Image.Image:
    return rocket_image()


@pytest.fixture(scope="module")
def photo(photo_pil) -> np.ndarray:
    """The test photo as float32 [H, W, 3] in [0, 255]."""
    return np.asarray(photo_pil).astype(np.float32)


@pytest.fixture(scope="module")
def batch(photo) -> np.ndarray:
    """Three different same-size images: the photo, its mirror, and noise."""
    noise = np.random.default_rng(0).uniform(0, 255, photo.shape).astype(np.float32)
    return np.stack([photo, photo[:, ::-1], noise])


def params_for(op, shape, copies: int) -> list[dict]:
    """Sampled params for ``copies`` copies of an image of ``shape`` (different per copy)."""
    return [op.sample(Rng(7, "img", c, 0), shape) for c in range(copies)]


# --- the op contract, for every op --------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_batched_equals_per_image(config, batch):
    op = op_from_config(config)
    params = params_for(op, batch.shape[1:], len(batch))
    assert len({json.dumps(p, sort_keys=True) for p in params}) == len(params), "params should differ per image"
    rows = tf.constant(np.array([op.pack(p) for p in params], np.float32))
    batched = traced_batch(op, batch, rows)  # traced, as Op.apply is
    for b, p in enumerate(params):
        alone = run(op, batch[b], p)
        assert np.array_equal(batched[b], alone), f"{op.name}: image {b} differs when batched"


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_traced_with_unknown_shape_matches_eager(config, batch):
    op = op_from_config(config)
    params = params_for(op, batch.shape[1:], len(batch))
    rows = tf.constant(np.array([op.pack(p) for p in params], np.float32))
    fn = tf.function(
        lambda x, r: op.apply_batch(x, op.unpack(r)),
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([None, len(op.layout())], tf.float32),
        ],
    )
    traced = fn(tf.constant(batch), rows).numpy()
    eager = op.apply_batch(tf.constant(batch), op.unpack(rows)).numpy()
    np.testing.assert_allclose(traced, eager, atol=1e-3)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_output_float32_in_range_and_shape(config, photo):
    op = op_from_config(config)
    for params in params_for(op, photo.shape, 3):
        out = op.apply(tf.constant(photo), params)
        assert out.dtype == tf.float32
        assert tuple(out.shape) == photo.shape
        values = out.numpy()
        assert values.min() >= 0.0 and values.max() <= 255.0


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_params_json_deterministic_and_in_bounds(config, photo):
    op = op_from_config(config)
    bounds = op.param_bounds(photo.shape)
    for c in range(20):
        params = op.sample(Rng(3, "k", c, 1), photo.shape)
        assert params == op.sample(Rng(3, "k", c, 1), photo.shape)
        assert json.loads(json.dumps(params)) == params
        assert set(params) == set(op.layout()) == set(bounds)
        for name, value in params.items():
            low, high = bounds[name]
            assert low <= value <= high, (name, value, bounds[name])
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(value, int):  # integers travel as float32: must be exact
                assert float(np.float32(value)) == value


@pytest.mark.parametrize(
    "config", [{"op": "gaussian_noise"}, {"op": "sharpness"}, {"op": "random_erasing", "count": [0, 4]}]
)
def test_neutral_params_are_identity(config, photo):
    op = op_from_config(config)
    neutral = op.neutral_params(photo.shape)
    assert neutral is not None
    assert np.array_equal(run(op, photo, neutral), photo)


def test_blur_tiny_sigma_is_identity(photo):
    op = op_from_config({"op": "gaussian_blur", "sigma": [0.01, 2.0]})
    assert op.neutral_params(photo.shape) is None
    np.testing.assert_allclose(run(op, photo, {"sigma": 0.01}), photo, atol=1e-3)


def test_default_probabilities():
    for name, p in [
        ("gaussian_noise", 0.5),
        ("gaussian_blur", 0.5),
        ("jpeg_quality", 0.5),
        ("random_erasing", 0.5),
        ("sharpness", 1.0),
    ]:
        assert op_from_config({"op": name}).p == p


BAD = [
    ({"op": "gaussian_noise", "std": [-1.0, 5.0]}, "std"),
    ({"op": "gaussian_noise", "std": [0.0, 300.0]}, "std"),
    ({"op": "gaussian_noise", "std": [5.0, 1.0]}, "std"),
    ({"op": "gaussian_blur", "sigma": [0.0, 1.0]}, "sigma"),
    ({"op": "gaussian_blur", "sigma": [1.0, 30.0]}, "sigma"),
    ({"op": "sharpness", "factor": [-0.5, 2.0]}, "factor"),
    ({"op": "sharpness", "factor": [0.5, 11.0]}, "factor"),
    ({"op": "jpeg_quality", "quality": [0, 50]}, "quality"),
    ({"op": "jpeg_quality", "quality": [50, 101]}, "quality"),
    ({"op": "jpeg_quality", "quality": [50.5, 60]}, "quality"),
    ({"op": "random_erasing", "count": [0, 17]}, "count"),
    ({"op": "random_erasing", "count": [2, 1]}, "count"),
    ({"op": "random_erasing", "area": [0.0, 0.5]}, "area"),
    ({"op": "random_erasing", "area": [0.1, 1.5]}, "area"),
    ({"op": "random_erasing", "ratio": [0.001, 1.0]}, "ratio"),
    ({"op": "random_erasing", "fill": "blur"}, "fill"),
    ({"op": "random_erasing", "fill_value": 300.0}, "fill_value"),
    ({"op": "random_erasing", "p": 1.5}, "p"),
]


@pytest.mark.parametrize("config,field", BAD, ids=[f"{c['op']}-{f}-{i}" for i, (c, f) in enumerate(BAD)])
def test_bad_ranges_raise_config_error(config, field):
    with pytest.raises(ConfigError) as info:
        op_from_config(config)
    message = str(info.value)
    assert config["op"] in message and field in message, message


# --- sharpness ----------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.0, 0.5, 2.0])
def test_sharpness_matches_pil(factor, photo, photo_pil):
    # PIL rounds the smoothed image to uint8 and truncates the blend; we stay in float.
    op = op_from_config({"op": "sharpness"})
    ours = run(op, photo, {"factor": factor})
    pil = np.asarray(ImageEnhance.Sharpness(photo_pil).enhance(factor)).astype(np.float32)
    assert np.abs(ours - pil).max() <= 1.0


def test_sharpness_keeps_border_and_tiny_images(photo):
    op = op_from_config({"op": "sharpness"})
    out = run(op, photo, {"factor": 0.0})
    for edge in (out[0], out[-1], out[:, 0], out[:, -1]):
        assert edge.shape[-1] == 3
    assert np.array_equal(out[0], photo[0]) and np.array_equal(out[-1], photo[-1])
    assert np.array_equal(out[:, 0], photo[:, 0]) and np.array_equal(out[:, -1], photo[:, -1])
    for shape in [(1, 1, 3), (2, 5, 3), (3, 3, 3)]:
        tiny = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
        assert run(op, tiny, {"factor": 2.0}).shape == shape


# --- gaussian blur ------------------------------------------------------------------------


def test_blur_constant_image_stays_constant():
    op = op_from_config({"op": "gaussian_blur", "sigma": [0.1, 5.0]})
    image = np.full((20, 30, 3), 123.0, np.float32)
    for sigma in (0.3, 1.0, 5.0):
        np.testing.assert_allclose(run(op, image, {"sigma": sigma}), image, atol=1e-3)


def test_blur_preserves_mean_and_smooths_more_with_larger_sigma(photo):
    op = op_from_config({"op": "gaussian_blur", "sigma": [0.1, 4.0]})

    def roughness(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())

    previous = roughness(photo)
    for sigma in (0.5, 1.0, 2.0, 4.0):
        out = run(op, photo, {"sigma": sigma})
        assert abs(out.mean() - photo.mean()) <= 0.5
        assert roughness(out) < previous
        previous = roughness(out)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_blur_close_to_pil(sigma, photo, photo_pil):
    # PIL approximates the Gaussian with three extended box blurs and clamps at the border
    # (we reflect), so compare away from the border: mean |diff| <= 1 level, max <= 4 levels.
    op = op_from_config({"op": "gaussian_blur", "sigma": [0.1, 3.0]})
    ours = run(op, photo, {"sigma": sigma})
    pil = np.asarray(photo_pil.filter(ImageFilter.GaussianBlur(sigma))).astype(np.float32)
    r = op.radius
    diff = np.abs(ours - pil)[r:-r, r:-r]
    assert diff.mean() <= 1.0 and diff.max() <= 4.0, (diff.mean(), diff.max())


def blur_reference(image: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """Separable Gaussian with reflect padding (d c b | a b c d | c b a), in float64 NumPy."""
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-(t**2) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")  # NumPy reflects again when the pad exceeds the size
        size = out.shape[axis]
        out = sum(k * np.take(padded, np.arange(j, j + size), axis=axis) for j, k in enumerate(kernel))
    return out


@pytest.mark.parametrize("shape,sigma", [((64, 96, 3), 1.3), ((4, 3, 3), 5.0), ((1, 7, 3), 2.0)])
def test_blur_matches_reference_even_when_smaller_than_the_kernel(shape, sigma, photo):
    op = op_from_config({"op": "gaussian_blur", "sigma": [0.1, 5.0]})  # radius 15
    image = photo if shape == photo.shape else np.random.default_rng(2).uniform(0, 255, shape).astype(np.float32)
    out = run(op, image, {"sigma": sigma})
    np.testing.assert_allclose(out, blur_reference(image, sigma, op.radius), atol=1e-3)


# --- JPEG -----------------------------------------------------------------------------------


def test_jpeg_equals_tf_adjust_jpeg_quality(photo):
    op = op_from_config({"op": "jpeg_quality"})
    pixels = photo.astype(np.uint8)
    for quality in (10, 50, 95):
        ours = run(op, photo, {"quality": quality})
        expected = tf.image.adjust_jpeg_quality(tf.constant(pixels), quality).numpy().astype(np.float32)
        assert np.array_equal(ours, expected)


def test_jpeg_lower_quality_differs_more(photo):
    op = op_from_config({"op": "jpeg_quality", "quality": [1, 100]})
    errors = [np.abs(run(op, photo, {"quality": q}) - photo).mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0.0


# --- Gaussian noise ---------------------------------------------------------------------------


def test_noise_seeds():
    op = op_from_config({"op": "gaussian_noise"})
    grey = np.full((16, 16, 3), 128.0, np.float32)
    a = run(op, grey, {"std": 10.0, "seed0": 1, "seed1": 2})
    assert np.array_equal(a, run(op, grey, {"std": 10.0, "seed0": 1, "seed1": 2}))
    assert not np.array_equal(a, run(op, grey, {"std": 10.0, "seed0": 1, "seed1": 3}))
    assert not np.array_equal(a, run(op, grey, {"std": 10.0, "seed0": 2, "seed1": 2}))
    # Seeds near 2**24 survive the float32 packing.
    top = (1 << 24) - 1
    b = run(op, grey, {"std": 10.0, "seed0": top, "seed1": top - 1})
    assert not np.array_equal(b, run(op, grey, {"std": 10.0, "seed0": top - 1, "seed1": top - 1}))


def test_noise_std_on_mid_grey():
    # 12288 samples: the sample std's standard error is about std / sqrt(2 n) = 0.064 levels.
    op = op_from_config({"op": "gaussian_noise"})
    grey = np.full((64, 64, 3), 128.0, np.float32)
    delta = run(op, grey, {"std": 10.0, "seed0": 5, "seed1": 6}) - grey
    assert abs(delta.std() - 10.0) <= 0.3
    assert abs(delta.mean()) <= 0.3
