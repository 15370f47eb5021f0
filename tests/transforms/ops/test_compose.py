"""one_of / some_of and the RandAugment, TrivialAugment and AutoAugment policies."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from transforms.augment import Augmenter
from transforms.config import dump_ops, load_ops, ops_from_data
from transforms.errors import ConfigError
from transforms.ops import op_from_config
from transforms.ops.policies import AUGMENT_SPACE, IMAGENET_POLICY

SHAPE = (120, 160, 3)


def layers_of(op, n=600, shape=SHAPE):
    aug = Augmenter((op,), seed=7)
    return [aug.sample(f"img{i}", 0, shape)[0]["params"]["layers"] for i in range(n)]


def test_one_of_follows_weights_and_records_the_child():
    op = op_from_config(
        {"op": "one_of", "ops": [{"op": "rotation", "p": 1.0}, {"op": "brightness", "p": 1.0}], "weights": [1, 3]}
    )
    chosen = collections.Counter(layer[0]["op"] for layer in layers_of(op))
    assert 0.18 < chosen["rotation"] / 600 < 0.32, chosen
    first = layers_of(op, 1)[0][0]
    assert set(first) == {"index", "op", "applied", "params"}


def test_one_of_honours_the_child_probability():
    op = op_from_config({"op": "one_of", "ops": [{"op": "rotation", "p": 0.25}]})
    applied = [layer[0]["applied"] for layer in layers_of(op)]
    assert 0.18 < np.mean(applied) < 0.32


def test_some_of_draws_distinct_children_in_listed_order():
    op = op_from_config(
        {"op": "some_of", "n": [1, 3], "ops": [{"op": "contrast"}, {"op": "hue"}, {"op": "gamma"}, {"op": "invert"}]}
    )
    counts = collections.Counter()
    for layers in layers_of(op):
        indices = [layer["index"] for layer in layers]
        assert indices == sorted(set(indices)) and 1 <= len(indices) <= 3
        counts[len(indices)] += 1
        for index in indices:
            counts[f"op{index}"] += 1
    assert all(counts[k] > 100 for k in (1, 2, 3)), counts
    assert all(counts[f"op{i}"] > 200 for i in range(4)), counts


def test_some_of_random_order_shuffles():
    op = op_from_config({"op": "some_of", "n": 2, "random_order": True, "ops": [{"op": "contrast"}, {"op": "hue"}]})
    orders = collections.Counter(tuple(layer["index"] for layer in layers) for layers in layers_of(op, 200))
    assert set(orders) == {(0, 1), (1, 0)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"op": "one_of", "ops": []}, "non-empty list"),
        ({"op": "one_of", "ops": [{"op": "rotation"}], "weights": [1, 2]}, "one weight per op"),
        ({"op": "one_of", "ops": [{"op": "rotation", "degree": 3}]}, r"ops\[0\] \(rotation\): unknown key"),
        ({"op": "some_of", "n": [2, 5], "ops": [{"op": "hue"}]}, "some_of.n must be"),
        ({"op": "some_of", "ops": [{"op": "hue"}], "m": 1}, r"unknown key\(s\) m"),
        ({"op": "randaugment", "magnitude": 40}, r"randaugment.magnitude must be in \[0, 30\]"),
        ({"op": "autoaugment", "policy": "cifar10"}, "policy must be one of imagenet"),
        ({"op": "one_of", "ops": [{"op": "hue"}, {"op": "gamma"}], "weights": [float("nan"), 1]}, "finite number"),
        ({"op": "one_of", "ops": [{"op": "hue"}], "weights": [float("inf")]}, "finite number"),
    ],
)
def test_composite_config_errors_name_the_field(entry, message):
    with pytest.raises(ConfigError, match=message):
        ops_from_data([entry])


def test_nested_composites_round_trip(tmp_path):
    data = [
        {
            "op": "some_of",
            "n": [0, 2],
            "ops": [
                {"op": "one_of", "ops": [{"op": "hue"}, {"op": "saturation"}], "p": 0.5},
                {"op": "randaugment", "num_ops": 1},
                {"op": "rotation"},
            ],
        }
    ]
    ops = ops_from_data(data)
    path = tmp_path / "nested.yaml"
    path.write_text(dump_ops(ops))
    assert load_ops(str(path)) == ops
    sampled = Augmenter(ops, 1).sample("a", 0, SHAPE)
    assert sampled == Augmenter(load_ops(str(path)), 1).sample("a", 0, SHAPE)


def test_randaugment_uses_torchvision_magnitudes():
    op = op_from_config({"op": "randaugment", "num_ops": 2, "magnitude": 9})
    level = 9 / 30
    seen = collections.Counter()
    for layers in layers_of(op, 800):
        assert len(layers) == 2
        for layer in layers:
            kind, params = layer["kind"], layer["params"]
            seen[kind] += 1
            if kind == "rotate":
                assert abs(params["angle"]) == pytest.approx(30 * level)
            elif kind == "posterize":
                assert params["bits"] == 8 - round(9 / 7.5)
            elif kind == "solarize":
                assert params["threshold"] == pytest.approx(255 * (1 - level))
            elif kind in ("color", "contrast", "sharpness"):
                assert abs(params["factor"] - 1) == pytest.approx(0.9 * level)
            elif kind == "translate_x":
                assert abs(params["x"]) == pytest.approx(150 / 331 * level)
            elif kind == "shear_y":
                assert np.tan(np.radians(abs(params["y"]))) == pytest.approx(0.3 * level)
    assert set(seen) == set(AUGMENT_SPACE), seen  # every op of the space is drawn
    assert min(seen.values()) > 60


def test_trivial_augment_draws_every_magnitude_bin():
    op = op_from_config({"op": "trivial_augment"})
    magnitudes = collections.Counter(layers[0]["magnitude"] for layers in layers_of(op, 1500))
    assert set(magnitudes) == set(range(31))


def test_autoaugment_follows_the_imagenet_sub_policies():
    op = op_from_config({"op": "autoaugment"})
    applied = collections.Counter()
    picked = collections.Counter()
    for layers in layers_of(op, 1500):
        index = layers[0]["sub_policy"]
        picked[index] += 1
        for position, (layer, (kind, _, magnitude)) in enumerate(zip(layers, IMAGENET_POLICY[index], strict=True)):
            assert layer["kind"] == kind and layer["magnitude"] == (magnitude or 0)
            applied[(index, position)] += layer["applied"]
    assert set(picked) == set(range(25))
    for index, pair in enumerate(IMAGENET_POLICY):
        for position, (_, prob, _) in enumerate(pair):
            assert abs(applied[(index, position)] / picked[index] - prob) < 0.25, (index, position)
    assert applied[(12, 0)] == 0  # (equalize 0.0, equalize 0.8): the first never runs


def test_policy_pixels_equal_the_chosen_op_applied_alone():
    from tests.conftest import DATA
    from transforms.decode import Decoder

    photo = Decoder()((DATA / "rocket_small.jpg").read_bytes()).numpy().astype(np.float32)
    op = op_from_config({"op": "randaugment", "num_ops": 1, "magnitude": 20})
    for i in range(12):
        sampled = Augmenter((op,), 0).sample(f"k{i}", 0, photo.shape)[0]
        layer = sampled["params"]["layers"][0]
        out = op.apply(photo, sampled["params"]).numpy()
        if layer["index"] < 0:
            np.testing.assert_array_equal(out, photo)
            continue
        branch = op.branches()[layer["index"]]
        np.testing.assert_array_equal(out, branch.apply(photo, layer["params"]).numpy())


def test_preprocessing_cannot_be_placed_in_the_op_list():
    with pytest.raises(ConfigError, match="'normalize' is not an op.*--model"):
        ops_from_data([{"op": "rotation"}, {"op": "normalize"}])
    with pytest.raises(ConfigError, match="'preprocessing' is not an op"):
        ops_from_data({"ops": [], "preprocessing": "resnet50"})
