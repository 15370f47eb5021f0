"""The semantic mask's plumbing: which PNGs are masks, the size check, and the carry to the output size (the
geometry itself: ``tests/transforms/targets``)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.format.detection_records import encode_png
from pipeline.job.mask_carry import check_mask_size, read_mask
from transforms.targets.carry import carry_semantic_mask


def _png(array: np.ndarray, dtype=None) -> bytes:
    import tensorflow as tf

    tensor = tf.constant(array) if dtype is None else tf.constant(array, dtype=dtype)
    return tf.io.encode_png(tensor).numpy()


def test_only_8_bit_single_channel_pngs_are_masks():
    ids = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    assert (read_mask(_png(ids)) == ids[:, :, 0]).all()
    assert read_mask(_png(np.repeat(ids, 3, axis=2)))[0] == "MaskNotSingleChannel"
    sixteen = read_mask(_png(ids.astype(np.uint16), dtype=np.uint16))
    assert sixteen[0] == "MaskNotSingleChannel" and "16-bit grayscale" in sixteen[1]
    assert read_mask(b"\xff\xd8\xff not a png")[0] == "MaskNotPNG"
    assert read_mask(_png(ids)[:40])[0] == "MaskNotPNG"  # cut short
    assert check_mask_size(ids[:, :, 0], (3, 4, 3)) is None
    assert check_mask_size(ids[:, :, 0], (4, 3, 3))[0] == "MaskSizeMismatch"


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_the_carry_resizes_as_the_image_with_nearest_neighbour(mode):
    mask = np.zeros((4, 8), np.uint8)
    mask[:, 4:] = 2
    out = carry_semantic_mask(mask, [], [], (4, 8, 3), (8, 8), mode)
    assert out.shape == (8, 8) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 2, 255}  # class ids stay class ids
    if mode == "pad":  # a 4x8 mask fitted into 8x8: two rows of padding above and below, ignored
        assert (out[:2] == 255).all() and (out[-2:] == 255).all() and (out[2:6, 4:] == 2).all()
    else:
        assert (out[:, 4:] == 2).all() and (out[:, :4] == 0).all()
    assert encode_png(out) == encode_png(out.copy())  # the same pixels, the same bytes
