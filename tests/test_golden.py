"""Golden files: fixed (seed, key, copy) give recorded params, and a few ops recorded pixels.

A failure here means datasets made before the change no longer reproduce.
If the change is intended, bump the op's ``version`` and regenerate with
``python tests/golden/make_golden.py``, so it is a visible, versioned decision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.golden.make_golden import PIXEL_OPS, golden_params, photo, pixel_case
from transforms.ops import registered_ops

GOLDEN = Path(__file__).resolve().parent / "golden"
# Pixels may move by one 8-bit level between CPUs (rounding of float math at .5).
PIXEL_TOLERANCE = 1


@pytest.fixture(scope="module")
def recorded():
    return json.loads((GOLDEN / "params.json").read_text())


def test_every_op_has_golden_params(recorded):
    assert sorted(recorded) == sorted(registered_ops())


@pytest.mark.parametrize("name", sorted(registered_ops()))
def test_params_match_golden(name, recorded):
    now = golden_params()[name]
    assert now["version"] == recorded[name]["version"], f"{name}: version changed; regenerate the golden files"
    assert same(now["draws"], recorded[name]["draws"]), f"{name}: params changed for fixed (seed, key, copy)"


def same(a, b) -> bool:
    """Equal structure and values; floats to 1e-12 relative (libm may differ in the last bit)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", PIXEL_OPS)
def test_pixels_match_golden(name):
    from PIL import Image

    _, out = pixel_case(name, photo())
    want = np.asarray(Image.open(GOLDEN / "pixels" / f"{name}.png"))
    assert out.shape == want.shape
    diff = np.abs(out.astype(int) - want.astype(int))
    assert diff.max() <= PIXEL_TOLERANCE, f"{name}: {int((diff > PIXEL_TOLERANCE).sum())} pixels differ"
