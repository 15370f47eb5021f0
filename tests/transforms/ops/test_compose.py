"""one_of and some_of: weights, child probabilities, distinct children in order, config errors, nested round trips."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.helpers import COMPOSITE_SHAPE as SHAPE
from tests.helpers import layers_of
from transforms.augment import Augmenter
from transforms.config import dump_ops, load_ops, ops_from_data
from transforms.errors import ConfigError
from transforms.ops import op_from_config


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
