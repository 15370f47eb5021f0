"""Colour ops against PIL / TF references; with the tonal ops: batching, neutral params, output range, sampling
and config errors (the tonal ops' references are in test_tonal.py).

Tolerances, and why:
- invert, channel_shuffle: exact. They are integer maps on integer levels, as PIL's ``ImageOps``.
- grayscale: within 1 level of PIL ``convert("L")``. PIL rounds its 16-bit
  fixed-point luma; we keep the float.
- brightness factor: within 1 level of PIL ``ImageEnhance.Brightness``, which
  truncates ``x * factor``.
- saturation: ``floor`` of ours within 1 level of PIL ``ImageEnhance.Color``.
  PIL blends with the *rounded* grey level and truncates; the rounding moves the
  blend by at most 0.5 |1 - factor| < 1 for factor <= 2.5, so the floors differ
  by at most 1 (the raw floats can differ by up to 1 + 0.5 |1 - factor|).
- hue: within 1 level of ``tf.image.adjust_hue``, a fused kernel with its own
  float rounding.
- neutral params: exact, except contrast (1e-4: ``(x - mean) + mean`` rounds in
  float32, by at most an ulp of 256 = 3e-5), gamma (1e-4: ``255 * (x / 255)`` is
  exact for whole levels but off by an ulp, up to 1.5e-5, for some fractional x)
  and hue (1e-3: float32 RGB -> HSV -> RGB round trip, measured about 2e-4).
  The tonal ops round the image first, so their neutral params give
  ``round(x)``, which is x itself for integer-valued images.
- batched vs per-image: exact (np.array_equal) for every op.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import ImageEnhance, ImageOps

from tests.helpers import apply_checked as run
from tests.helpers import as_uint8, color_test_images, float_test_image, traced_batch
from tests.helpers import to_pil as pil
from transforms.errors import ConfigError
from transforms.ops import op_from_config
from transforms.ops.photometric import (
    CHANNEL_PERMUTATIONS,
    Brightness,
    ChannelShuffle,
    Contrast,
    Gamma,
    Grayscale,
    Hue,
    Invert,
    Saturation,
)
from transforms.ops.tonal import AutoContrast, Equalize, Posterize, Solarize
from transforms.rng import Rng

IMAGES = color_test_images()
NAMES = sorted(IMAGES)
FLOAT_IMAGE = float_test_image(IMAGES["photo"])


# --- references --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_invert_equals_pil(name):
    image = IMAGES[name]
    assert np.array_equal(as_uint8(run(Invert(), image)), np.asarray(ImageOps.invert(pil(image))))


@pytest.mark.parametrize("name", NAMES)
def test_saturation_within_one_level_of_pil_color(name):
    image = IMAGES[name]
    for factor in (0.0, 0.3, 0.8, 1.0, 1.5, 2.5):
        out = run(Saturation(), image, factor=factor)
        expected = np.asarray(ImageEnhance.Color(pil(image)).enhance(factor)).astype(np.float32)
        assert np.abs(np.floor(out) - expected).max() <= 1.0, factor


@pytest.mark.parametrize("name", NAMES)
def test_grayscale_within_one_level_of_pil(name):
    image = IMAGES[name]
    out = run(Grayscale(), image)
    expected = np.asarray(pil(image).convert("L")).astype(np.float32)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert np.abs(out[..., 0] - expected).max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_hue_within_one_level_of_tf_adjust_hue(name):
    image = IMAGES[name]
    for delta in (-0.5, -0.2, -0.05, 0.0, 0.05, 0.3, 0.5):
        out = run(Hue(), image, delta=delta)
        expected = tf.image.adjust_hue(image.astype(np.float32) / 255.0, delta).numpy() * 255.0
        assert np.abs(out - expected).max() <= 1.0, delta


@pytest.mark.parametrize("name", NAMES)
def test_brightness_factor_within_one_level_of_pil(name):
    image = IMAGES[name]
    for factor in (0.0, 0.5, 0.9, 1.3, 2.0):
        out = run(Brightness(), image, delta=0.0, factor=factor)
        expected = np.asarray(ImageEnhance.Brightness(pil(image)).enhance(factor)).astype(np.float32)
        assert np.abs(out - expected).max() <= 1.0, factor


def test_formulas_of_the_float_ops():
    x = FLOAT_IMAGE
    out = run(Brightness(), x, delta=0.1, factor=1.2)
    np.testing.assert_allclose(out, np.clip(x * 1.2 + 0.1 * 255, 0, 255), atol=1e-3)
    out = run(Gamma(), x, gamma=2.2)
    np.testing.assert_allclose(out, 255 * (x.astype(np.float64) / 255) ** 2.2, atol=1e-3)
    mean = np.round(x).astype(np.int64).sum(axis=(0, 1)) / (x.shape[0] * x.shape[1])
    out = run(Contrast(), x, factor=1.5)
    np.testing.assert_allclose(out, np.clip((x - mean) * 1.5 + mean, 0, 255), atol=1e-3)
    for perm, order in enumerate(CHANNEL_PERMUTATIONS):
        assert np.array_equal(run(ChannelShuffle(), x, perm=perm), x[..., list(order)])
    assert CHANNEL_PERMUTATIONS == tuple(itertools.permutations(range(3)))


# --- batching ------------------------------------------------------------------------------------------------------

BATCH_CASES = [
    (Brightness(), [{"delta": -0.1, "factor": 0.7}, {"delta": 0.0, "factor": 1.0}, {"delta": 0.2, "factor": 1.6}]),
    (Contrast(), [{"factor": 0.5}, {"factor": 1.0}, {"factor": 1.7}]),
    (Saturation(), [{"factor": 0.0}, {"factor": 1.0}, {"factor": 2.3}]),
    (Hue(), [{"delta": -0.3}, {"delta": 0.0}, {"delta": 0.45}]),
    (Gamma(), [{"gamma": 0.5}, {"gamma": 1.0}, {"gamma": 2.2}]),
    (Grayscale(), [{}, {}, {}]),
    (ChannelShuffle(), [{"perm": 5}, {"perm": 0}, {"perm": 3}]),
    (Invert(), [{}, {}, {}]),
    (Posterize(), [{"bits": 1}, {"bits": 8}, {"bits": 3}]),
    (Solarize(), [{"threshold": 0.0}, {"threshold": 256.0}, {"threshold": 128.5}]),
    (Equalize(), [{}, {}, {}]),
    (AutoContrast(), [{}, {}, {}]),
]


def _odd_batch() -> np.ndarray:
    """3 images of an odd size (33 x 17), so no image fills whole SIMD packets: fractional, whole, low-contrast."""
    rng = np.random.default_rng(11)
    fractional = rng.uniform(0.0, 255.0, (33, 17, 3))
    whole = rng.integers(0, 256, (33, 17, 3))
    low = rng.integers(60, 81, (33, 17, 3))
    return np.stack([fractional, whole, low]).astype(np.float32)


BATCHES = {
    "photo_size": np.stack([FLOAT_IMAGE, IMAGES["noise"], IMAGES["low_contrast"]]).astype(np.float32),
    "odd_size": _odd_batch(),
}


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize(("op", "params"), BATCH_CASES, ids=[op.name for op, _ in BATCH_CASES])
def test_batched_equals_per_image(op, params, batch):
    images = BATCHES[batch]
    rows = tf.constant([op.pack(p) for p in params], tf.float32, shape=[len(params), len(op.param_names)])
    batched = traced_batch(op, images, rows)  # traced, as Op.apply is
    assert batched.dtype == np.float32 and batched.shape == images.shape
    for i, p in enumerate(params):
        assert np.array_equal(batched[i], op.apply(images[i], p).numpy()), i


@pytest.mark.parametrize(("op", "params"), BATCH_CASES, ids=[op.name for op, _ in BATCH_CASES])
def test_traced_equals_eager(op, params):
    """The Renderer runs ops inside a tf.function, where Grappler rewrites some arithmetic; the bytes must not move."""
    images = tf.constant(np.stack([FLOAT_IMAGE, IMAGES["noise"], IMAGES["low_contrast"]]).astype(np.float32))
    rows = tf.constant([op.pack(p) or [0.0] for p in params], tf.float32)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None], tf.float32)]
    )
    def traced_fn(x, r):
        return op.apply_batch(x, op.unpack(r))

    eager = op.apply_batch(images, op.unpack(rows)).numpy()
    assert np.array_equal(traced_fn(images, rows).numpy(), eager)


# --- neutral params, output range, sampling ------------------------------------------------------------------------

NEUTRAL_TOLERANCE = {"contrast": 1e-4, "gamma": 1e-4, "hue": 1e-3}
TONAL = {"posterize", "solarize"}
ALL_OPS = [op for op, _ in BATCH_CASES]


@pytest.mark.parametrize("op", ALL_OPS, ids=[op.name for op in ALL_OPS])
def test_neutral_params_give_identity(op):
    neutral = op.neutral_params(IMAGES["photo"].shape)
    if op.name in ("grayscale", "equalize", "auto_contrast", "invert"):
        assert neutral is None
        return
    atol = NEUTRAL_TOLERANCE.get(op.name, 0.0)
    for image in (IMAGES["photo"].astype(np.float32), IMAGES["noise"].astype(np.float32), FLOAT_IMAGE):
        expected = np.round(image) if op.name in TONAL else image
        np.testing.assert_allclose(run(op, image, **neutral), expected, rtol=0, atol=atol)


WIDE = [
    Brightness(delta=(-1.0, 1.0), factor=(0.0, 10.0)),
    Contrast(factor=(0.0, 10.0)),
    Saturation(factor=(0.0, 10.0)),
    Hue(delta=(-0.5, 0.5)),
    Gamma(gamma=(0.05, 20.0)),
    Grayscale(),
    ChannelShuffle(),
    Invert(),
    Posterize(bits=(1, 8)),
    Solarize(threshold=(0.0, 256.0)),
    Equalize(),
    AutoContrast(),
]


@pytest.mark.parametrize("op", WIDE, ids=[op.name for op in WIDE])
def test_extreme_params_stay_in_range(op):
    bounds = op.param_bounds(IMAGES["photo"].shape)
    assert set(bounds) == set(op.param_names)
    corners = [dict(zip(bounds, c, strict=True)) for c in itertools.product(*bounds.values())] or [{}]
    for params in corners:
        for image in (FLOAT_IMAGE, IMAGES["noise"].astype(np.float32)):
            out = run(op, image, **params)
            assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 255.0, params


@pytest.mark.parametrize("op", WIDE, ids=[op.name for op in WIDE])
def test_samples_are_json_and_within_bounds(op):
    shape = IMAGES["photo"].shape
    bounds = op.param_bounds(shape)
    seen = set()
    for i in range(60):
        params = op.sample(Rng(5, f"img{i}.jpg", 0, 0), shape)
        assert set(params) == set(op.param_names)
        assert json.loads(json.dumps(params)) == params
        for name, value in params.items():
            assert bounds[name][0] <= value <= bounds[name][1], (name, value)
        seen.add(tuple(params.values()))
    if op.name == "channel_shuffle":
        assert seen == {(k,) for k in range(6)}
        assert all(isinstance(v, int) for (v,) in seen)
    if op.name == "posterize":
        assert seen == {(k,) for k in range(1, 9)}


def test_brightness_replays_records_without_factor():
    assert Brightness().pack({"delta": 0.1}) == [pytest.approx(0.1), 1.0]
    x = IMAGES["photo"]
    assert np.array_equal(run(Brightness(), x, delta=0.1), run(Brightness(), x, delta=0.1, factor=1.0))


def test_default_probabilities():
    assert (Grayscale().p, ChannelShuffle().p, Invert().p) == (0.1, 0.1, 0.5)


# --- config errors -------------------------------------------------------------------------------------------------

BAD = [
    ({"op": "brightness", "delta": [-1.5, 0.0]}, "brightness", "delta"),
    ({"op": "brightness", "factor": [0.5, 11.0]}, "brightness", "factor"),
    ({"op": "contrast", "factor": [-0.1, 1.0]}, "contrast", "factor"),
    ({"op": "saturation", "factor": [1.2, 0.8]}, "saturation", "factor"),
    ({"op": "hue", "delta": [-0.6, 0.0]}, "hue", "delta"),
    ({"op": "gamma", "gamma": [0.0, 1.0]}, "gamma", "gamma"),
    ({"op": "gamma", "gamma": [1.0, 25.0]}, "gamma", "gamma"),
    ({"op": "grayscale", "p": 1.5}, "grayscale", "p"),
    ({"op": "channel_shuffle", "p": -0.1}, "channel_shuffle", "p"),
    ({"op": "invert", "p": 2}, "invert", "p"),
    ({"op": "posterize", "bits": [0, 8]}, "posterize", "bits"),
    ({"op": "posterize", "bits": [4, 9]}, "posterize", "bits"),
    ({"op": "posterize", "bits": [4.5, 8]}, "posterize", "bits"),
    ({"op": "solarize", "threshold": [0.0, 300.0]}, "solarize", "threshold"),
    ({"op": "equalize", "p": 1.1}, "equalize", "p"),
    ({"op": "auto_contrast", "p": -1}, "auto_contrast", "p"),
]


@pytest.mark.parametrize(("entry", "op", "field"), BAD, ids=[f"{op}.{field}" for _, op, field in BAD])
def test_bad_ranges_name_op_and_field(entry, op, field):
    with pytest.raises(ConfigError) as info:
        op_from_config(entry)
    message = str(info.value)
    assert op in message and f".{field}" in message, message


def test_contrast_mean_of_a_strip_wider_than_an_int32_row_sum():
    """A 1 x 8.5M strip of 255s: its row sum overflows int32, so it is summed in int64 (mean stays 255)."""
    import tensorflow as tf

    from transforms.ops.photometric import MAX_INT32_ROW_WIDTH, Contrast

    width = MAX_INT32_ROW_WIDTH + 1000
    images = tf.fill([1, 1, width, 3], 255.0)
    out = Contrast().apply_batch(images, {"factor": tf.constant([0.5])})
    assert float(tf.reduce_min(out)) == 255.0
    narrow = tf.fill([1, 2, 5, 3], 255.0)  # the int32 path on an ordinary image
    assert float(tf.reduce_min(Contrast().apply_batch(narrow, {"factor": tf.constant([0.5])}))) == 255.0
