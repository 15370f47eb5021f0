"""Geometric ops rendered: a flip flips and twice is the identity, rotation turns about the centre."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import decoded_rocket
from tests.helpers import render_sampled as _render
from tests.helpers import sampled_entry as entry
from transforms.ops.geometric import HorizontalFlip, Rotation, VerticalFlip


@pytest.fixture(scope="module")
def photo():
    """The test photo as the job decodes it: a uint8 tensor."""
    return decoded_rocket()


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
