"""random_erasing: its params layout, boxes inside the image with an exact fill, only the first n boxes, noise fill."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import apply_tensor as run
from tests.helpers import rocket_image
from transforms.ops import op_from_config
from transforms.rng import Rng


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The test photo as float32 [H, W, 3] in [0, 255]."""
    return np.asarray(rocket_image()).astype(np.float32)


def test_erasing_layout():
    op = op_from_config({"op": "random_erasing", "count": [0, 3]})
    layout = op.layout()
    assert layout[0] == "n" and layout[-2:] == ("seed0", "seed1")
    assert layout[1:5] == ("y0", "x0", "h0", "w0") and len(layout) == 1 + 4 * 3 + 2
    assert op_from_config({"op": "random_erasing", "count": [0, 0]}).layout() == ("n", "seed0", "seed1")


def boxes_of(params: dict) -> list[tuple[int, int, int, int]]:
    return [(params[f"y{i}"], params[f"x{i}"], params[f"h{i}"], params[f"w{i}"]) for i in range(params["n"])]


def test_erasing_boxes_inside_and_fill_exact(photo):
    op = op_from_config(
        {"op": "random_erasing", "count": [1, 4], "area": [0.02, 1.0], "ratio": [0.1, 10.0], "fill_value": 42.5}
    )
    height, width = photo.shape[:2]
    for c in range(25):
        params = op.sample(Rng(11, "x", c, 0), photo.shape)
        assert op.count[0] <= params["n"] <= op.count[1]
        mask = np.zeros((height, width), bool)
        for y, x, h, w in boxes_of(params):
            assert h >= 1 and w >= 1 and y >= 0 and x >= 0
            assert y + h <= height and x + w <= width
            mask[y : y + h, x : x + w] = True
        for i in range(params["n"], op.slots):
            assert params[f"h{i}"] == params[f"w{i}"] == 0
        out = run(op, photo, params)
        assert np.array_equal(out[~mask], photo[~mask])
        assert (out[mask] == np.float32(42.5)).all()


def test_erasing_only_first_n_boxes_and_noise_fill(photo):
    op = op_from_config({"op": "random_erasing", "count": [0, 2], "fill": "noise"})
    params = dict.fromkeys(op.layout(), 0)
    params.update({"n": 1, "y0": 5, "x0": 6, "h0": 10, "w0": 20, "y1": 30, "x1": 40, "h1": 8, "w1": 8})
    params.update({"seed0": 9, "seed1": 10})
    out = run(op, photo, params)
    mask = np.zeros(photo.shape[:2], bool)
    mask[5:15, 6:26] = True
    assert np.array_equal(out[~mask], photo[~mask])
    inside = out[mask]
    assert inside.min() >= 0.0 and inside.max() <= 255.0
    assert inside.std() > 50.0  # uniform on [0, 255] has std 73.6
    assert np.array_equal(out, run(op, photo, params))
    params.update({"seed1": 11})
    assert not np.array_equal(out[mask], run(op, photo, params)[mask])
