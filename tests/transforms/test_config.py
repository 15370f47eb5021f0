"""Seeding contract and op declarations: determinism, ranges, identities, pickling, configs."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.op_examples import example_op
from transforms.augment import Augmenter, Renderer
from transforms.config import PRESETS, dump_ops, load_ops, ops_from_data
from transforms.errors import ConfigError
from transforms.ops import registered_ops
from transforms.ops.crops import RandomResizedCrop
from transforms.ops.geometric import HorizontalFlip, Rotation, VerticalFlip
from transforms.ops.photometric import Brightness, Contrast
from transforms.preprocess import get_preprocessing
from transforms.rng import Rng, stable_hash64

keys = st.text(min_size=1, max_size=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
shapes = st.tuples(st.integers(1, 2000), st.integers(1, 2000), st.just(3))


def test_stable_hash_is_fixed():
    # Pinned values: a change here changes every dataset's bytes.
    assert stable_hash64("train/cats/001.jpg") == 0x003087E370DFE999
    assert stable_hash64("a") == stable_hash64("a") != stable_hash64("b")


def test_rng_streams_are_pinned_and_independent():
    draws = [Rng(0, "k", 0, 0).raw() for _ in range(2)]
    assert draws[0] == draws[1]
    others = {Rng(0, "k", 1, 0).raw(), Rng(0, "k", 0, 1).raw(), Rng(1, "k", 0, 0).raw(), Rng(0, "j", 0, 0).raw()}
    assert draws[0] not in others and len(others) == 4


def test_rng_golden_values():
    """Golden draws: these must not change between releases (or datasets stop reproducing)."""
    rng = Rng(42, "train/cats/001.jpg", 3, 2)
    got = [rng.uniform(-1, 1), rng.integer(0, 9), rng.bernoulli(0.5)]
    assert got == GOLDEN_RNG


GOLDEN_RNG = [-0.9842577395517531, 4, False]


@settings(max_examples=60, deadline=None)
@given(seed=seeds, key=keys, copy=st.integers(0, 1000), shape=shapes)
def test_params_within_declared_ranges_and_repeatable(seed, key, copy, shape):
    ops = load_ops("standard") + (Rotation(degrees=(-90, 45)), RandomResizedCrop(scale=(0.5, 0.9)))
    aug = Augmenter(ops, seed)
    first = aug.sample(key, copy, shape)
    assert first == aug.sample(key, copy, shape)
    assert json.loads(json.dumps(first)) == first
    by_op = {}
    for op, entry in zip(ops, first, strict=True):
        by_op.setdefault(op.name, []).append((op, entry))
        if not entry["applied"]:
            continue
        p = entry["params"]
        if op.name == "rotation":
            assert op.degrees[0] <= p["angle"] <= op.degrees[1]
        elif op.name == "brightness":
            assert op.delta[0] <= p["delta"] <= op.delta[1]
        elif op.name == "contrast":
            assert op.factor[0] <= p["factor"] <= op.factor[1]
        elif op.name == "random_resized_crop":
            assert 0 <= p["y"] and p["y"] + p["height"] <= shape[0]
            assert 0 <= p["x"] and p["x"] + p["width"] <= shape[1]
            assert p["height"] >= 1 and p["width"] >= 1
            shape = (p["height"], p["width"], 3)


def test_sampled_values_cover_the_range():
    """No constant or stuck sampling across keys (the bug of Keras layers inside Dataset.map)."""
    aug = Augmenter((Rotation(degrees=(-30, 30)), HorizontalFlip(p=0.5)), seed=0)
    angles, flips = [], []
    for i in range(400):
        rot, flip = aug.sample(f"img{i}.jpg", 0, (100, 100, 3))
        angles.append(rot["params"]["angle"])
        flips.append(flip["applied"])
    hist, _ = np.histogram(angles, bins=6, range=(-30, 30))
    assert hist.min() > 40, hist
    assert 0.4 < np.mean(flips) < 0.6


def _render(ops, image, sampled):
    renderer = Renderer(tuple(ops), image.shape[:2], "stretch", get_preprocessing("none"), "float32")
    return np.frombuffer(renderer.render(image, sampled), np.float32).reshape(image.shape)


@pytest.fixture(scope="module")
def photo():
    from tests.conftest import DATA
    from transforms.decode import Decoder

    return Decoder()((DATA / "rocket_small.jpg").read_bytes())


def entry(op, applied=True, **params):
    return {"op": op.name, "version": op.version, "applied": applied, "params": params}


def test_neutral_params_give_identity(photo):
    x = photo.numpy().astype(np.float32)
    ops = [Rotation(), Brightness(), Contrast(), HorizontalFlip(), RandomResizedCrop()]
    h, w = x.shape[:2]
    sampled = [
        entry(ops[0], angle=0.0),
        entry(ops[1], delta=0.0),
        entry(ops[2], factor=1.0),
        entry(ops[3], applied=False),
        entry(ops[4], y=0, x=0, height=h, width=w),
    ]
    np.testing.assert_allclose(_render(ops, photo, sampled), x, atol=1e-3)


def test_flip_twice_is_identity_and_flip_flips(photo):
    x = photo.numpy().astype(np.float32)
    ops = [HorizontalFlip(), HorizontalFlip()]
    np.testing.assert_array_equal(_render(ops, photo, [entry(ops[0]), entry(ops[1])]), x)
    one = _render([HorizontalFlip()], photo, [entry(HorizontalFlip())])
    np.testing.assert_array_equal(one, x[:, ::-1])
    v = _render([VerticalFlip()], photo, [entry(VerticalFlip())])
    np.testing.assert_array_equal(v, x[::-1])


def test_rotation_turns_about_the_centre():
    import tensorflow as tf

    image = np.zeros((9, 9, 3), np.uint8)
    image[4, 8] = 255  # right of centre
    out = _render([Rotation()], tf.constant(image), [entry(Rotation(), angle=90.0)])
    # Counter-clockwise by 90 degrees: the point moves above the centre.
    assert np.unravel_index(out[..., 0].argmax(), (9, 9)) == (0, 4)


def test_replay_reproduces_pixels(photo):
    ops = load_ops("standard")
    aug = Augmenter(ops, seed=5)
    sampled = aug.sample("k", 1, tuple(photo.shape))
    replay = json.loads(json.dumps(sampled))
    assert _render(ops, photo, sampled).tobytes() == _render(ops, photo, replay).tobytes()


def test_one_trace_for_many_sizes():
    import tensorflow as tf

    ops = load_ops("standard")
    renderer = Renderer(ops, (16, 16), "crop", get_preprocessing("mobilenet_v2"), "jpeg")
    aug = Augmenter(ops, 0)
    for i, (h, w) in enumerate([(20, 30), (64, 17), (5, 5), (300, 200), (1, 1)]):
        image = tf.zeros((h, w, 3), tf.uint8)
        renderer.render(image, aug.sample(str(i), 0, (h, w, 3)))
    assert renderer.trace_count == 1


@pytest.mark.parametrize("name", sorted(registered_ops()))
def test_every_op_pickles_and_round_trips_config(name):
    op = example_op(name)
    assert pickle.loads(pickle.dumps(op)) == op
    assert ops_from_data([op.to_config()]) == (op,)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_dump_load_round_trip(preset, fmt, tmp_path):
    ops = load_ops(preset)
    text = dump_ops(ops, fmt)
    path = tmp_path / f"ops.{fmt}"
    path.write_text(text)
    assert load_ops(str(path)) == ops
    assert dump_ops(load_ops(str(path)), fmt) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"op": "sharpen_everything"}], "unknown op 'sharpen_everything'"),
        ([{"op": "rotation", "degree": [1, 2]}], r"unknown key\(s\) degree"),
        ([{"op": "rotation", "degrees": [20, -20]}], "rotation.degrees must be"),
        ([{"op": "brightness", "p": 1.5}], r"brightness.p must be in \[0.0, 1.0\]"),
        ([{"op": "rotation", "fill_mode": "mirror"}], "fill_mode must be one of"),
        ([{"op": "contrast", "factor": "big"}], "expected a list of 2 numbers"),
        ({"ops": [], "preprocess": "resnet50"}, "'preprocess' is not an op"),
        ({"ops": [], "shuffle": True}, r"unknown key\(s\) shuffle"),
        (["rotation"], "must be a mapping with an 'op' key"),
    ],
)
def test_bad_configs_name_the_op_and_field(data, message):
    with pytest.raises(ConfigError, match=message):
        ops_from_data(data)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("ops: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_ops(str(path))
