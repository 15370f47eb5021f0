"""Properties of carried targets over every geometric op of the registry and the policies' geometric members.

Each compares the targets with the image op itself (``op.apply``) on small
images drawn for the property: a box-shaped image for boxes and masks, a
marked 3x3 block for keypoints.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.transforms.targets.cases import SHAPE, box_mask, entry, geometric_cases, mask_box, objects
from transforms.targets.carry import carry_objects
from transforms.targets.geometry import op_geometry
from transforms.targets.types import KP_ABSENT, KP_VISIBLE, KeypointSpec, TargetRules

CASES = geometric_cases()
H, W = SHAPE[:2]
EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEEP_ANY = TargetRules(min_area=0.0)


@st.composite
def boxes(draw):
    """An integer box of at least 4 x 4 pixels inside the image."""
    x0 = draw(st.integers(0, W - 4))
    y0 = draw(st.integers(0, H - 4))
    return (x0, y0, draw(st.integers(x0 + 4, W)), draw(st.integers(y0 + 4, H)))


def carry_one(case, params, objs, spec=None):
    g = op_geometry(case.op, params, SHAPE)
    out_size = g.size if g is not None else SHAPE[:2]
    return carry_objects(objs, [case.op], [entry(case.op, params)], SHAPE, out_size, "stretch", KEEP_ANY, spec)


def is_axis_aligned(matrix) -> bool:
    return abs(matrix[0, 1]) < 1e-9 and abs(matrix[1, 0]) < 1e-9


def is_pixel_exact(matrix) -> bool:
    """Flips and crops: integer shifts and mirrors, each output pixel one input pixel."""
    unit = abs(matrix[0, 0]) == 1 == abs(matrix[1, 1])
    return is_axis_aligned(matrix) and np.array_equal(matrix, np.round(matrix)) and unit


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@EXAMPLES
@given(seed=st.integers(0, 2**32), box=boxes())
def test_box_is_the_box_of_the_transformed_mask(case, seed, box):
    """The carried box equals (axis-aligned ops) or contains (turns, shears) the box of the op's own render of it."""
    params = case.params(seed)
    image = np.repeat(box_mask(box)[..., None] * 255.0, 3, axis=2).astype(np.float32)
    rendered = mask_box(case.op.apply(image, params).numpy()[..., 0] >= 127.5)
    carried, removed = carry_one(case, params, objects([box], masks=[box_mask(box)]))
    matrix = op_geometry(case.op, params, SHAPE).matrix
    if rendered is None:  # the op moved the box out: what is left of it is at most a sliver
        assert removed.total == 1 or min(carried.boxes[0, 2:] - carried.boxes[0, :2]) <= 1.5
        return
    assert removed.total == 0, f"box {box} removed but its render covers {rendered}"
    got = carried.boxes[0]
    if is_axis_aligned(matrix):
        np.testing.assert_allclose(got, rendered, atol=1.0)
    else:
        assert np.all(got[:2] <= rendered[:2] + 1.0) and np.all(got[2:] >= rendered[2:] - 1.0), (got, rendered)
    # The carried instance mask: inside the carried box, and the op's own pixels where each pixel is one pixel.
    own = mask_box(carried.masks[0])
    assert own is not None
    assert np.all(own[:2] >= got[:2] - 1.0) and np.all(own[2:] <= got[2:] + 1.0), (own, got)
    if is_pixel_exact(matrix):
        np.testing.assert_array_equal(carried.masks[0], case.op.apply(image, params).numpy()[..., 0] >= 127.5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@EXAMPLES
@given(seed=st.integers(0, 2**32), i=st.integers(2, H - 3), j=st.integers(2, W - 3))
def test_keypoint_lands_on_the_transformed_mark(case, seed, i, j):
    """A keypoint at a marked block's centre lands where the op's render puts the block."""
    params = case.params(seed)
    image = np.zeros(SHAPE, np.float32)
    image[i - 1 : i + 2, j - 1 : j + 2] = 255.0
    out = case.op.apply(image, params).numpy()[..., 0]
    kp = np.array([[[j + 0.5, i + 0.5, KP_VISIBLE]]])
    carried, _ = carry_one(case, params, objects([[0, 0, W, H]], keypoints=kp))
    (x, y, v), (h, w) = carried.keypoints[0, 0], out.shape
    margin = 4.0  # the block, scaled up to 2x, stays whole this far inside
    if v == KP_ABSENT:
        ys, xs = np.nonzero(out >= 127.5)
        inner = (xs + 0.5 > margin) & (xs + 0.5 < w - margin) & (ys + 0.5 > margin) & (ys + 0.5 < h - margin)
        assert not inner.any(), "the mark is well inside the image but its keypoint was marked outside"
        return
    if not (margin <= x <= w - margin and margin <= y <= h - margin):
        return  # the block is cut by the border: its centroid is not its centre
    ys, xs = np.nonzero(out > 0)
    weight = out[ys, xs]
    centre = np.array([(xs * weight).sum() / weight.sum() + 0.5, (ys * weight).sum() / weight.sum() + 0.5])
    np.testing.assert_allclose([x, y], centre, atol=1.0)


FLIPS = [c for c in CASES if c.policy is None and c.op.moves_pixels_only and not c.op.changes_shape]


def test_flips_come_from_the_registry():
    assert sorted(c.op.name for c in FLIPS) == ["horizontal_flip", "vertical_flip"]


@pytest.mark.parametrize("case", [c for c in CASES if c.policy is None], ids=lambda c: c.id)
@EXAMPLES
@given(seed=st.integers(0, 2**32))
def test_full_image_box_stays_the_full_image_where_the_op_fills_it(case, seed):
    """Wherever the op's render of an all-white image is all white (flips, crops, zoom in), the box is the frame."""
    params = case.params(seed)
    out = case.op.apply(np.full(SHAPE, 255.0, np.float32), params).numpy()
    carried, removed = carry_one(case, params, objects([[0, 0, W, H]]))
    h, w = out.shape[:2]
    if case in FLIPS:
        assert out.min() == 255.0
    if out.min() >= 254.5:
        assert removed.total == 0
        np.testing.assert_allclose(carried.boxes[0], [0, 0, w, h], atol=1e-9)


def coords(side: int) -> st.SearchStrategy[float]:
    """Dyadic coordinates in [0, side - 1]: exact in binary, so a flip's arithmetic keeps them exactly."""
    return st.integers(0, 8 * (side - 1)).map(lambda v: v / 8)


@pytest.mark.parametrize("case", FLIPS, ids=lambda c: c.id)
@EXAMPLES
@given(data=st.data())
def test_flip_twice_is_the_identity_for_every_target(case, data):
    n, k = 3, 4
    xs = np.sort(np.array(data.draw(st.lists(coords(W), min_size=2 * n, max_size=2 * n))).reshape(n, 2), axis=1)
    ys = np.sort(np.array(data.draw(st.lists(coords(H), min_size=2 * n, max_size=2 * n))).reshape(n, 2), axis=1)
    boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1] + 1, ys[:, 1] + 1], axis=1)
    seed = data.draw(st.integers(0, 2**32))
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 2, [n, H, W]).astype(np.uint8)
    kps = np.stack([rng.integers(0, W, [n, k]) + 0.5, rng.integers(0, H, [n, k]) + 0.5, np.full([n, k], 2.0)], -1)
    spec = KeypointSpec(names=("nose", "left_eye", "right_eye", "tail"), flip_pairs=((1, 2),))
    objs = objects(boxes, masks, kps)
    ops = [case.op, case.op]
    carried, removed = carry_objects(objs, ops, [entry(case.op, {})] * 2, SHAPE, (H, W), "stretch", KEEP_ANY, spec)
    assert removed.total == 0
    np.testing.assert_array_equal(carried.boxes, objs.boxes)
    np.testing.assert_array_equal(carried.masks, objs.masks)
    np.testing.assert_array_equal(carried.keypoints, objs.keypoints)
    np.testing.assert_array_equal(carried.ids, objs.ids)
    once, _ = carry_objects(objs, ops[:1], [entry(case.op, {})], SHAPE, (H, W), "stretch", KEEP_ANY, spec)
    perm = [0, 2, 1, 3] if case.op.name == "horizontal_flip" else [0, 1, 2, 3]
    np.testing.assert_array_equal(once.keypoints[..., 2], objs.keypoints[:, perm, 2])
