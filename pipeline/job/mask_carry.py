"""A listing's semantic mask (a PNG of class ids): read and checked against its image, then stored as PNG.

The mask follows the image through every op and the final resize with
``transforms.targets.carry.carry_semantic_mask`` (the same sampled params,
nearest-neighbour so class ids stay class ids, 255 where pixels came from
outside the image), and is stored as detection records store theirs
(``pipeline.format.detection_records.encode_png``: one PNG encoder for every mask).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale with alpha", 6: "RGBA"}

Problem = tuple[str, str]  # (error type, message) of the input's error row


def read_mask(data: bytes) -> np.ndarray | Problem:
    """A mask file's class ids as uint8 ``[H, W]``, or why it cannot be one (8-bit single-channel PNG only)."""
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        return ("MaskNotPNG", "the mask is not a PNG file; save it as an 8-bit grayscale PNG of class ids")
    bit_depth, colour = data[24], data[25]
    if colour != 0 or bit_depth != 8:
        kind = f"{bit_depth}-bit {_COLOUR_TYPES.get(colour, f'colour type {colour}')}"
        return (
            "MaskNotSingleChannel",
            f"the mask is a {kind} PNG; it must be 8-bit single-channel (grayscale) with a class id per pixel",
        )
    import tensorflow as tf

    try:
        pixels = tf.io.decode_png(data, channels=1, dtype=tf.uint8).numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as exc:
        return ("MaskNotPNG", f"the mask PNG cannot be decoded: {str(exc).splitlines()[0][:200]}")
    width, height = struct.unpack(">II", data[16:24])  # IHDR: width, then height
    if pixels.shape[:2] != (height, width):
        return ("MaskNotPNG", "the mask PNG's pixels do not match its header: it is damaged")
    return pixels[:, :, 0]


def check_mask_size(mask: np.ndarray, shape: Sequence[int]) -> Problem | None:
    """``MaskSizeMismatch`` unless the mask has the decoded (upright) image's height and width."""
    if tuple(mask.shape[:2]) != (int(shape[0]), int(shape[1])):
        return (
            "MaskSizeMismatch",
            f"the mask is {mask.shape[1]}x{mask.shape[0]} (WxH), the image {shape[1]}x{shape[0]}; "
            "a mask must have its image's size (EXIF orientation applied)",
        )
    return None
