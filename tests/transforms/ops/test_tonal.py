"""Tonal ops against PIL's ``ImageOps``: posterize, solarize, equalize, auto_contrast.

Tolerances, and why:
- posterize, solarize, equalize: exact. They are integer maps on integer levels, as PIL's ``ImageOps``.
- auto_contrast: within 1 level of PIL. PIL truncates ``(x - lo) * 255 / (hi - lo)``
  to an integer; we keep the float.

Their batching, neutral params, output range, sampling and config errors are checked with the colour ops'
in test_photometric.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageOps

from tests.helpers import apply_checked as run
from tests.helpers import as_uint8, color_test_images
from tests.helpers import to_pil as pil
from transforms.errors import ConfigError
from transforms.ops.tonal import AutoContrast, Equalize, Posterize, Solarize

IMAGES = color_test_images()
NAMES = sorted(IMAGES)


# --- references --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_posterize_equals_pil(name):
    image = IMAGES[name]
    for bits in range(1, 9):
        expected = np.asarray(ImageOps.posterize(pil(image), bits))
        assert np.array_equal(as_uint8(run(Posterize(), image, bits=bits)), expected), bits


@pytest.mark.parametrize("name", NAMES)
def test_solarize_equals_pil(name):
    image = IMAGES[name]
    for threshold in (0, 1, 100, 128, 128.5, 200, 255, 256):
        expected = np.asarray(ImageOps.solarize(pil(image), threshold))
        assert np.array_equal(as_uint8(run(Solarize(), image, threshold=threshold)), expected), threshold


@pytest.mark.parametrize("name", NAMES)
def test_equalize_equals_pil(name):
    image = IMAGES[name]
    expected = np.asarray(ImageOps.equalize(pil(image)))
    assert np.array_equal(as_uint8(run(Equalize(), image)), expected)


def test_equalize_edge_cases_follow_pil():
    # The last-level count is left out of step, and lut values above 255 are clipped: both reached here.
    for seed in range(6):
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 256, (16 + seed, 40, 3), dtype=np.uint8)
        image[: 2 + seed, :, 0] = 255
        expected = np.asarray(ImageOps.equalize(pil(image)))
        assert np.array_equal(as_uint8(run(Equalize(), image)), expected), seed
    assert np.array_equal(run(Equalize(), IMAGES["tiny"]), IMAGES["tiny"].astype(np.float32))
    assert np.array_equal(run(Equalize(), IMAGES["flat_green"])[..., 1], IMAGES["flat_green"][..., 1])


@pytest.mark.parametrize("name", NAMES)
def test_auto_contrast_within_one_level_of_pil(name):
    image = IMAGES[name]
    out = run(AutoContrast(), image)
    expected = np.asarray(ImageOps.autocontrast(pil(image))).astype(np.float32)
    assert np.abs(out - expected).max() <= 1.0
    for c in range(3):
        if image[..., c].max() > image[..., c].min():  # stretched channels reach both ends exactly
            assert out[..., c].min() == 0.0 and out[..., c].max() == 255.0
        else:
            assert np.array_equal(out[..., c], image[..., c])


def test_posterize_bits_must_be_whole_numbers():
    with pytest.raises(ConfigError, match=r"posterize\.bits must be whole numbers"):
        Posterize(bits=(4.5, 8))
