"""Properties every registered op keeps: ranges, repeatability, identity, shapes, batching, replay, pickling."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import (
    _crop_then_every_op,
    _mixed_ops,
    _resized_crop_then_every_op,
    decoded_rocket,
    example_op,
    traced_batch,
)
from transforms.augment import Augmenter, Renderer
from transforms.config import load_ops, ops_from_data
from transforms.ops import registered_ops
from transforms.preprocess import get_preprocessing

NAMES = sorted(registered_ops())
keys = st.text(min_size=1, max_size=30)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
shapes = st.tuples(st.integers(1, 1200), st.integers(1, 1200), st.just(3))


def test_registry_has_the_issue_op_set():
    wanted = {
        "horizontal_flip", "vertical_flip", "rotation", "zoom", "translate", "shear", "affine",
        "random_resized_crop", "random_crop", "center_crop", "resize",
        "brightness", "contrast", "saturation", "hue", "gamma", "gaussian_noise", "gaussian_blur", "sharpness",
        "jpeg_quality", "grayscale", "channel_shuffle", "posterize", "solarize", "equalize", "auto_contrast",
        "random_erasing", "one_of", "some_of", "randaugment", "trivial_augment", "autoaugment",
    }  # fmt: skip
    assert wanted <= set(NAMES), sorted(wanted - set(NAMES))


@settings(max_examples=25, deadline=None)
@given(seed=seeds, key=keys, copy=st.integers(0, 10_000), shape=shapes)
@pytest.mark.parametrize("name", NAMES)
def test_params_in_bounds_repeatable_and_json(name, seed, key, copy, shape):
    op = example_op(name)
    aug = Augmenter((op,), seed)
    first = aug.sample(key, copy, shape)
    assert first == aug.sample(key, copy, shape)
    assert json.loads(json.dumps(first)) == first
    params = first[0]["params"]
    for field, (low, high) in op.param_bounds(shape).items():
        assert low <= params[field] <= high, (field, params[field], low, high)
    assert set(op.param_bounds(shape)) <= set(params)
    out = op.output_shape(shape, params)
    assert len(out) == 3 and out[2] == 3 and out[0] >= 1 and out[1] >= 1


@pytest.fixture(scope="module")
def photo():
    """The test photo as the job decodes it, as a uint8 array."""
    return decoded_rocket().numpy()


@pytest.mark.parametrize("name", NAMES)
def test_apply_contract_shape_dtype_range(name, photo):
    op = example_op(name)
    shape = photo.shape
    for copy in range(3):
        params = Augmenter((op,), 3).sample("k", copy, shape)[0]["params"]
        out = op.apply(photo.astype(np.float32), params).numpy()
        assert out.dtype == np.float32
        assert out.shape == op.output_shape(shape, params)
        assert out.min() >= 0.0 and out.max() <= 255.0


@pytest.mark.parametrize("name", NAMES)
def test_neutral_params_are_the_identity(name, photo):
    op = example_op(name)
    neutral = op.neutral_params(photo.shape)
    if neutral is None:
        assert name in NO_NEUTRAL, f"{name} declares no neutral params"
        return
    out = op.apply(photo.astype(np.float32), neutral).numpy()
    np.testing.assert_allclose(out, photo.astype(np.float32), atol=NEUTRAL_TOLERANCE.get(name, 1e-3))


# Ops without a parameter value that changes nothing (a flip always flips).
NO_NEUTRAL = {
    "horizontal_flip", "vertical_flip", "grayscale", "equalize", "auto_contrast", "invert", "jpeg_quality",
    "one_of", "some_of", "randaugment", "trivial_augment", "autoaugment", "gaussian_blur", "resize",
    "random_resized_crop",  # resizes to its own size (24x32 here), not the photo's
}  # fmt: skip
# hue goes through HSV and back in float32.
NEUTRAL_TOLERANCE = {"hue": 2e-3 * 255}


@pytest.mark.parametrize("name", NAMES)
def test_pickle_keeps_op_and_draws(name):
    op = example_op(name)
    back = pickle.loads(pickle.dumps(op))
    assert back == op
    shape = (40, 60, 3)
    assert Augmenter((back,), 1).sample("x", 2, shape) == Augmenter((op,), 1).sample("x", 2, shape)


@pytest.mark.parametrize("name", sorted(registered_ops()))
def test_every_op_pickles_and_round_trips_config(name):
    op = example_op(name)
    assert pickle.loads(pickle.dumps(op)) == op
    assert ops_from_data([op.to_config()]) == (op,)


@pytest.mark.parametrize("encoding", ["float32", "uint8", "jpeg"])
@pytest.mark.parametrize(
    ("make_ops", "single_path"),
    [(_mixed_ops, False), (_crop_then_every_op, True), (_resized_crop_then_every_op, False)],
)
def test_batched_equals_one_by_one(photo, encoding, make_ops, single_path):
    """Same-size images in one call give exactly the bytes each gives alone (tolerance: none).

    Alone, an image whose only per-image run is the last skips the map_fn loop (``single_path``).
    """
    ops = make_ops()
    if make_ops is _mixed_ops:
        ops += tuple(example_op(n) for n in NAMES if not example_op(n).changes_shape)
    renderer = Renderer(ops, (20, 24), "crop", get_preprocessing("mobilenet_v2"), encoding)
    assert renderer.single_path == single_path
    aug = Augmenter(ops, 11)
    # Ten images: more than a SIMD packet of params, where vectorised and scalar math could part.
    images = np.stack([photo, photo[::-1], photo[:, ::-1], 255 - photo, photo // 2] * 2)
    sampled = [aug.sample(f"key{i}", i % 3, photo.shape) for i in range(len(images))]
    batched = renderer.render_batch(images, sampled)
    alone = [renderer.render(img, s) for img, s in zip(images, sampled, strict=True)]
    assert batched == alone
    assert renderer.trace_count == (2 if single_path else 1)  # one trace per path


def test_replay_from_recorded_json_is_byte_exact(photo):
    ops = _mixed_ops()
    renderer = Renderer(ops, (24, 24), "pad", get_preprocessing("none"), "png")
    sampled = Augmenter(ops, 9).sample("train/cat/1.jpg", 4, photo.shape)
    recorded = json.loads(json.dumps(sampled, sort_keys=True))
    assert renderer.render(photo, recorded) == renderer.render(photo, sampled)


# heavy: after its resizing crop the ops run in the renderer's batched segment (a batch of unknown length), where
# a float32 result may differ from Op.apply's one-image graph in the last bits (measured: 7.6e-5 of 255).
@pytest.mark.parametrize(("config", "atol"), [("heavy", 1e-4), ("randaugment", 0.0), ("mixed", 1e-4)])
def test_op_apply_chain_replays_a_record(photo, config, atol):
    """Op by op with the recorded params: the record's pixels (same machine).

    Bit for bit for the presets. Where a size is known statically inside the
    pipeline's graph (after a ``resize`` op) Grappler may fold the graph
    differently from ``Op.apply``'s, so "mixed" allows 1e-4 of 255; exact
    regeneration of a record goes through ``Renderer.render`` (tests above).
    """
    import tensorflow as tf

    from transforms.ops.crops import resize_images

    ops = _mixed_ops() + (example_op("sharpness"),) if config == "mixed" else load_ops(config)
    renderer = Renderer(ops, (24, 24), "stretch", get_preprocessing("none"), "float32")
    final = tf.function(lambda t: resize_images(t[tf.newaxis], (24, 24), "stretch")[0])
    for copy in range(6):
        sampled = json.loads(json.dumps(Augmenter(ops, 2).sample("k", copy, photo.shape)))
        x = tf.constant(photo, tf.float32)
        for op, entry in zip(ops, sampled, strict=True):
            if entry["applied"]:
                x = op.apply(x, entry["params"])
        traced = np.frombuffer(renderer.render(photo, sampled), np.float32).reshape(24, 24, 3)
        np.testing.assert_allclose(final(x).numpy(), traced, rtol=0, atol=atol, err_msg=f"copy {copy}")


@pytest.mark.parametrize("name", [n for n in NAMES if not example_op(n).changes_shape])
def test_op_batch_equals_each_image_alone_bit_for_bit(name):
    """Op level, float32, no later rounding to hide a last-bit difference; 12 images > one SIMD packet."""
    import tensorflow as tf

    op = example_op(name)
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 255, (12, 9, 11, 3)).astype(np.float32)
    params = [Augmenter((op,), 1).sample(f"k{i}", i, images.shape[1:])[0]["params"] for i in range(len(images))]
    rows = tf.constant([op.pack(p) or [0.0] for p in params], tf.float32)
    batched = traced_batch(op, images, rows)  # traced, as Op.apply and the pipeline are
    for i, (image, p) in enumerate(zip(images, params, strict=True)):
        np.testing.assert_array_equal(batched[i], op.apply(image, p).numpy(), err_msg=f"image {i}")


@pytest.mark.parametrize("name", NAMES)
def test_sampled_values_cover_each_declared_range(name):
    """Over many keys every param spreads over its range: no constant or stuck sampling."""
    op = example_op(name)
    shape = (300, 400, 3)
    aug = Augmenter((op,), 0)
    draws = [aug.sample(f"photo_{i}.jpg", 0, shape)[0]["params"] for i in range(300)]
    for field, (low, high) in op.param_bounds(shape).items():
        values = np.array([d[field] for d in draws], dtype=float)
        if high == low:
            assert np.all(values == low)
            continue
        if field in ("height", "width", "y", "x") or re.fullmatch(r"[yxhw]\d+", field):
            # boxes: shaped by area and ratio, so not uniform over the image
            assert len(set(values)) > 30, field
            continue
        span = high - low
        assert values.min() <= low + 0.1 * span and values.max() >= high - 0.1 * span, (
            field,
            values.min(),
            values.max(),
        )
        assert len(set(values)) > min(30, span), field


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic", "area", "lanczos3"])
@pytest.mark.parametrize("size", [(24, 20), (70, 90)])  # down and up
def test_resize_of_uint8_equals_resize_of_its_float32_bit_for_bit(mode, interpolation, size):
    """The resizing ops take uint8 as it is (no float32 copy of a large input): the values must not change."""
    import tensorflow as tf

    from transforms.ops.crops import INTERPOLATIONS, RESIZE_MODES, resize_images

    assert interpolation in INTERPOLATIONS and mode in RESIZE_MODES
    pixels = np.random.default_rng(3).integers(0, 256, (2, 45, 61, 3), dtype=np.uint8)
    from_uint8 = resize_images(tf.constant(pixels), size, mode, interpolation, 7.0)
    from_float = resize_images(tf.constant(pixels, tf.float32), size, mode, interpolation, 7.0)
    assert from_uint8.dtype == tf.float32
    np.testing.assert_array_equal(from_uint8.numpy(), from_float.numpy())


def test_final_resize_and_guards_of_uint8_equal_those_of_float32():
    """Without a float op the renderer resizes the decoded uint8 itself: same payload and guard stats."""
    import tensorflow as tf

    from transforms.augment import _stats
    from transforms.ops.crops import resize_images

    pixels = np.random.default_rng(4).integers(3, 250, (2, 33, 41, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_stats(tf.constant(pixels)).numpy(), _stats(tf.constant(pixels, tf.float32)).numpy())
    for config in ("none", [{"op": "horizontal_flip", "p": 0.5}], [{"op": "resize", "height": 20, "width": 16}]):
        ops = load_ops(config) if isinstance(config, str) else ops_from_data(config)
        renderer = Renderer(ops, (24, 24), "stretch", get_preprocessing("none"), "float32")
        sampled = [Augmenter(ops, 1).sample(f"k{i}", 0, pixels.shape[1:]) for i in range(len(pixels))]
        got = renderer.render_batch(pixels, sampled)
        want = [
            resize_images(tf.constant(replayed(ops, image, one))[tf.newaxis], (24, 24))[0].numpy().tobytes()
            for image, one in zip(pixels, sampled, strict=True)
        ]
        assert got == want, config


def replayed(ops, image, sampled):
    """The ops applied one by one in float32, as a record's params replay them."""
    import tensorflow as tf

    x = tf.constant(image, tf.float32)
    for op, entry in zip(ops, sampled, strict=True):
        if entry["applied"]:
            x = op.apply(x, entry["params"])
    return x
