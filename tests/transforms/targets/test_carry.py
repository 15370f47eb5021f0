"""Carrying targets: the registry's every op classified, clipping, each removal rule, erasing, masks, replay."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.transforms.targets.cases import SHAPE, box_mask, entry, objects
from transforms.augment import Augmenter, params_json
from transforms.ops import Op, op_from_config, registered_ops
from transforms.ops.compose import Layered
from transforms.targets.carry import carry_objects, carry_semantic_mask
from transforms.targets.geometry import GEOMETRY, STILL, NoGeometryError, op_geometry
from transforms.targets.types import KP_ABSENT, KP_OCCLUDED, KP_VISIBLE, MASK_IGNORE, TargetRules
from transforms.window import add_plan

H, W = SHAPE[:2]
KEEP_ANY = TargetRules(min_area=0.0)


def test_every_registered_op_declares_how_it_moves_pixels():
    ops = registered_ops()
    layered = {name for name, cls in ops.items() if issubclass(cls, Layered)}
    for name in ops:
        assert [name in GEOMETRY, name in STILL, name in layered].count(True) == 1, name
    assert set(GEOMETRY) | STILL <= set(ops), "GEOMETRY/STILL name ops that are not registered"
    # Ops that move or cut pixels by their own declaration are never "still".
    assert not {n for n, cls in ops.items() if cls.moves_pixels_only or cls.changes_shape is True} & STILL


def test_an_op_without_geometry_is_an_error_never_the_identity():
    @dataclasses.dataclass(frozen=True)
    class Swirl(Op):
        name = "swirl"

    with pytest.raises(NoGeometryError, match="'swirl'.*GEOMETRY"):
        op_geometry(Swirl(), {}, SHAPE)
    one_of = op_from_config({"op": "one_of", "ops": [{"op": "rotation"}]})
    layered = dataclasses.replace(one_of, ops=(Swirl(),))
    with pytest.raises(NoGeometryError):
        op_geometry(layered, {"layers": [{"index": 0, "op": "swirl", "applied": True, "params": {}}]}, SHAPE)


def test_still_ops_and_layers_that_ran_nothing_have_no_geometry():
    assert op_geometry(op_from_config({"op": "brightness"}), {"delta": 0.1, "factor": 1.0}, SHAPE) is None
    policy = op_from_config({"op": "randaugment"})
    assert op_geometry(policy, {"layers": [{"index": -1, "applied": False, "params": {}}]}, SHAPE) is None


def test_a_box_half_out_is_clipped_and_its_visibility_is_the_part_left():
    translate = op_from_config({"op": "translate"})
    sampled = [entry(translate, {"x": 0.25, "y": 0.0})]  # 14 pixels right
    objs = objects([[40, 10, 56, 30]])
    carried, removed = carry_objects(objs, [translate], sampled, SHAPE, (H, W), "stretch", KEEP_ANY)
    np.testing.assert_allclose(carried.boxes, [[54, 10, 56, 30]], atol=1e-9)
    assert removed.total == 0
    _, removed = carry_objects(objs, [translate], sampled, SHAPE, (H, W), "stretch", TargetRules(min_visibility=0.2))
    assert (removed.min_visibility, removed.ids) == (1, (10,))  # 2 / 16 of it is left


def test_each_removal_rule_counts_its_objects_and_takes_their_masks_and_keypoints():
    flip = op_from_config({"op": "horizontal_flip"})
    boxes = [[0, 0, 20, 20], [1, 1, 3, 3], [5, 5, 6, 30], [10, 10, 10, 20]]  # kept, small, thin, no area
    masks = [box_mask((0, 0, 20, 20)), box_mask((1, 1, 3, 3)), box_mask((5, 5, 6, 30)), np.zeros((H, W))]
    kps = np.tile([[[2.5, 2.5, KP_VISIBLE]]], (4, 1, 1))
    rules = TargetRules(min_area=5.0, min_side=2.0)
    carried, removed = carry_objects(
        objects(boxes, masks, kps), [flip], [entry(flip, {})], SHAPE, (H, W), "stretch", rules
    )
    assert (removed.outside, removed.min_area, removed.min_visibility, removed.min_side) == (1, 1, 0, 1)
    assert removed.ids == (11, 12, 13) and removed.total == 3
    assert carried.ids.tolist() == [10] and carried.classes.tolist() == [0]
    np.testing.assert_array_equal(carried.boxes, [[36, 0, 56, 20]])
    assert carried.masks.shape == (1, H, W) and carried.masks[0].sum() == 400
    np.testing.assert_array_equal(carried.keypoints, [[[53.5, 2.5, KP_VISIBLE]]])


def test_keypoints_that_leave_the_frame_stay_absent_even_if_a_later_op_brings_the_spot_back():
    translate = op_from_config({"op": "translate"})
    ops = [translate, translate]
    sampled = [entry(translate, {"x": 0.5, "y": 0.0}), entry(translate, {"x": -0.5, "y": 0.0})]
    kps = [[[50.5, 5.5, KP_VISIBLE], [10.5, 5.5, KP_VISIBLE]]]
    carried, _ = carry_objects(
        objects([[0, 0, 56, 40]], keypoints=kps), ops, sampled, SHAPE, (H, W), "stretch", KEEP_ANY
    )
    np.testing.assert_allclose(carried.keypoints[0], [[0.0, 0.0, KP_ABSENT], [10.5, 5.5, KP_VISIBLE]], atol=1e-9)


@pytest.mark.parametrize("hides", [False, True])
def test_erasing_marks_keypoints_under_it_occluded_only_when_asked(hides):
    erase = op_from_config({"op": "random_erasing", "p": 1.0})
    params = {**erase.neutral_params(SHAPE), "n": 1, "y0": 0, "x0": 0, "h0": 10, "w0": 10}
    kps = [[[5.5, 5.5, KP_VISIBLE], [15.5, 5.5, KP_VISIBLE]]]
    rules = TargetRules(erasing_hides_keypoints=hides)
    carried, _ = carry_objects(
        objects([[0, 0, 20, 20]], keypoints=kps), [erase], [entry(erase, params)], SHAPE, (H, W), "stretch", rules
    )
    assert carried.keypoints[0, :, 2].tolist() == [KP_OCCLUDED if hides else KP_VISIBLE, KP_VISIBLE]
    np.testing.assert_array_equal(carried.boxes, [[0, 0, 20, 20]])


def test_semantic_mask_gets_the_ignore_value_where_the_image_is_made_up():
    rotation = op_from_config({"op": "rotation", "fill_mode": "reflect"})
    mask = np.full((H, W), 3, np.uint8)
    out = carry_semantic_mask(mask, [rotation], [entry(rotation, {"angle": 45.0})], SHAPE, (32, 32), "pad")
    assert out.shape == (32, 32)
    assert out[16, 16] == 3 and out[0, 0] == MASK_IGNORE  # corners came from outside; reflect is not the class
    assert set(np.unique(out)) == {3, MASK_IGNORE}
    flat = carry_semantic_mask(mask, [], [], SHAPE, (30, 30), "pad")  # pad mode: the bands are ignore
    assert (flat[:4] == MASK_IGNORE).all() and (flat[12] == 3).all()


def test_final_resize_maps_the_frame_by_mode():
    objs = objects([[0, 0, W, H]])
    for mode, expected in (("stretch", [0, 0, 28, 28]), ("pad", [0, 4, 28, 24]), ("crop", [0, 0, 28, 28])):
        carried, _ = carry_objects(objs, [], [], SHAPE, (28, 28), mode, KEEP_ANY)
        np.testing.assert_allclose(carried.boxes[0], expected, atol=1e-9, err_msg=mode)
    carried, _ = carry_objects(objects([[0, 0, 8, 40]]), [], [], SHAPE, (28, 28), "crop", KEEP_ANY)
    assert carried.boxes.shape == (0, 4)  # the crop mode cuts the left 8 columns away (56 -> 40 wide)


def _mixed_ops() -> tuple[Op, ...]:
    names = [n for n in sorted(registered_ops()) if n in GEOMETRY or n == "random_erasing"]
    ops = [op_from_config({"op": n, "p": 0.7}).with_output_size((30, 24)) for n in names if n != "resize"]
    ops.append(op_from_config({"op": "one_of", "ops": [{"op": "rotation"}, {"op": "horizontal_flip"}]}))
    ops.append(op_from_config({"op": "randaugment", "num_ops": 3}))
    return tuple(ops)


def test_replay_from_recorded_params_gives_the_same_targets_exactly():
    ops = _mixed_ops()
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, [3, H, W]).astype(np.uint8)
    kps = np.stack([rng.uniform(0, W, [3, 5]), rng.uniform(0, H, [3, 5]), np.full([3, 5], 2.0)], -1)
    objs = objects([[1.5, 2.25, 30, 33], [20, 5, 55.5, 20], [0, 0, W, H]], masks, kps)
    rules = TargetRules(min_area=4.0, min_visibility=0.1, erasing_hides_keypoints=True)
    aug = Augmenter(ops, seed=5)
    for copy in range(4):
        sampled = aug.sample("img.jpg", copy, SHAPE)
        replayed = json.loads(params_json(sampled))
        a, ra = carry_objects(objs, ops, sampled, SHAPE, (32, 32), "crop", rules)
        b, rb = carry_objects(objs, ops, replayed, SHAPE, (32, 32), "crop", rules)
        assert ra == rb
        for name in ("boxes", "classes", "ids", "iscrowd", "masks", "keypoints"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_targets_ignore_the_decode_plan_sampled_params_are_full_image_coordinates():
    crop = op_from_config({"op": "random_resized_crop", "height": 20, "width": 20})
    sampled = [entry(crop, {"y": 40, "x": 100, "height": 160, "width": 200})]
    planned = add_plan((crop,), sampled, (240, 320), 1)
    assert planned[0]["params"]["decode_ratio"] == 8
    objs = objects([[120, 50, 200, 150]])
    plain, _ = carry_objects(objs, [crop], sampled, (240, 320, 3), (20, 20), "stretch", KEEP_ANY)
    windowed, _ = carry_objects(objs, [crop], planned, (240, 320, 3), (20, 20), "stretch", KEEP_ANY)
    np.testing.assert_array_equal(plain.boxes, windowed.boxes)
    np.testing.assert_allclose(plain.boxes[0], [2, 1.25, 10, 13.75], atol=1e-9)
