"""Targets drawn on a tile: box outlines on their edge pixels, mask fills inside only, keypoints by visibility,
the skeleton, the ignore value left alone, the same pixels every time.
"""

from __future__ import annotations

import numpy as np

from pipeline.report.draw_targets import MASK_ALPHA, TileTargets, colour, draw_targets
from transforms.targets.types import KeypointSpec, Objects

BLACK = np.zeros((64, 64, 3), np.uint8)


def _lit(pixels: np.ndarray) -> np.ndarray:
    return pixels.sum(axis=2) > 0


def _targets(boxes, classes=(0,), **kw) -> TileTargets:
    return TileTargets(boxes=np.array(boxes, np.float64).reshape(-1, 4), classes=np.array(classes), **kw)


def test_a_box_lights_its_edge_pixels_and_its_name_above_it():
    """Box (10, 20, 40, 50) covers columns 10..39 and rows 20..49: those edges in the class colour, inside dark."""
    out = draw_targets(BLACK, _targets([[10, 20, 40, 50]], classes=(3,)), ("a", "b", "c", "dog"))
    lit = _lit(out)
    for edge in (out[20, 10:40], out[49, 10:40], out[20:50, 10], out[20:50, 39]):
        assert (edge == colour(3)).all()
    assert not lit[21:49, 11:39].any()  # the inside is untouched
    assert not lit[50:].any() and not lit[:, 40:].any()
    label = np.argwhere(lit[:20])  # the class name, on a patch of its colour, just above the box
    assert label.size and label[:, 0].max() == 19 and label[:, 1].min() == 10
    assert (out[:20][lit[:20]] == colour(3)).all(axis=1).mean() > 0.4


def test_a_box_at_the_top_gets_its_name_inside_and_a_fractional_box_its_covered_pixels():
    """(0.5, 0, 20.2, 30.7) covers columns 0..20 and rows 0..30; no room above, so the name goes inside."""
    out = draw_targets(BLACK, _targets([[0.5, 0.0, 20.2, 30.7]]), ("cat",))
    assert (out[30, 0:21] == colour(0)).all() and (out[15:31, 20] == colour(0)).all()
    assert (out[15:31, 0] == colour(0)).all()
    assert not _lit(out)[31:].any() and not _lit(out)[:, 21:].any()
    assert _lit(out)[2:12, 2:15].any()  # the name, inside the box's top edge


def test_instance_mask_fills_inside_only_in_the_objects_colour():
    grey = np.full((64, 64, 3), 100, np.uint8)
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 30:40, 25:35] = 1
    out = draw_targets(grey, _targets([[0, 0, 0, 0]], classes=(1,), masks=mask), ("a", "b"))
    expected = np.round(100 * (1 - MASK_ALPHA) + np.array(colour(1)) * MASK_ALPHA)
    assert (out[30:40, 25:35] == expected).all()
    outside = np.ones((64, 64), bool)
    outside[30:40, 25:35] = False
    assert (out[outside] == 100).all()  # an empty box draws nothing; only the mask's pixels change


def test_semantic_mask_colours_classes_and_leaves_the_ignore_value():
    grey = np.full((8, 8, 3), 100, np.uint8)
    semantic = np.full((8, 8), 255, np.uint8)
    semantic[:4] = 2
    semantic[4:, :2] = 0
    out = draw_targets(grey, _targets(np.zeros((0, 4)), classes=(), semantic_mask=semantic), ("a", "b", "c"))
    assert (out[4:, 2:] == 100).all()  # 255: no class, not drawn
    assert (out[:4] != 100).any(axis=2).all() and (out[4:, :2] != 100).any(axis=2).all()
    assert not np.array_equal(out[0, 0], out[7, 0])  # two classes, two colours


def test_keypoints_filled_when_visible_hollow_when_occluded_absent_not_drawn():
    points = np.array([[[10.5, 10.5, 2], [30.5, 10.5, 1], [50.5, 10.5, 0]]])
    out = draw_targets(BLACK, _targets([[0, 0, 0, 0]], keypoints=points), ("cat",), KeypointSpec(("a", "b", "c")))
    assert (out[10, 10] == colour(0)).all()  # visible: a filled dot
    assert not _lit(out)[10, 30] and _lit(out)[8:13, 28:33].sum() >= 8  # occluded: a ring around a dark centre
    assert not _lit(out)[:, 45:].any()  # absent: nothing


def test_skeleton_joins_labelled_keypoints_only():
    points = np.array([[[10.5, 40.5, 2], [50.5, 40.5, 2], [30.5, 10.5, 0]]])
    spec = KeypointSpec(("a", "b", "c"), skeleton=((0, 1), (1, 2)))
    out = draw_targets(BLACK, _targets([[0, 0, 0, 0]], keypoints=points), ("cat",), spec)
    assert (out[40, 14:47] == colour(0)).all()  # the line from a to b
    assert not _lit(out)[:35].any()  # none to the absent c
    plain = draw_targets(BLACK, _targets([[0, 0, 0, 0]], keypoints=points), ("cat",), KeypointSpec(("a", "b", "c")))
    assert not _lit(plain)[40, 14:47].any()  # without a skeleton, dots only


def test_same_inputs_same_pixels_and_the_input_is_not_changed():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    before = pixels.copy()
    masks = (rng.random((3, 48, 40)) > 0.5).astype(np.uint8)
    targets = _targets([[1, 2, 20, 30], [5.5, 6.5, 39, 47], [0, 0, 40, 48]], classes=(0, 1, 25), masks=masks)
    one = draw_targets(pixels, targets, ("a", "b"))  # a class past the names is named by its index
    assert np.array_equal(one, draw_targets(pixels, targets, ("a", "b")))
    assert np.array_equal(pixels, before)


def test_resized_targets_follow_a_scaled_tile():
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, 1, 2] = 1
    objects = Objects(
        boxes=np.array([[1.0, 1.0, 3.0, 2.0]]),
        classes=np.array([0]),
        ids=np.array([0]),
        iscrowd=np.array([False]),
        masks=mask,
        keypoints=np.array([[[2.5, 1.5, 2]]]),
    )
    big = TileTargets.from_objects(objects).resized((4, 4, 3), (16, 8))
    np.testing.assert_allclose(big.boxes, [[2, 4, 6, 8]])
    np.testing.assert_allclose(big.keypoints, [[[5, 6, 2]]])
    assert big.masks is not None and big.masks.shape == (1, 16, 8)
    assert np.argwhere(big.masks[0]).tolist() == [[r, c] for r in range(4, 8) for c in range(4, 6)]
