"""The RandAugment, TrivialAugment and AutoAugment policies: magnitudes, bins, sub-policies, pixels."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.helpers import layers_of
from transforms.augment import Augmenter
from transforms.ops import op_from_config
from transforms.ops.policies import AUGMENT_SPACE, IMAGENET_POLICY


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
    from tests.helpers import DATA
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
