"""A listing's semantic mask (a PNG of class ids): read, checked against its image, carried to the output size.

The mask must follow the image through the same geometry. That carry (flips,
crops, warps, resizes applied to the mask as to the image) is not built here:
``carry_semantic_mask`` refuses an op list with an op that moves pixels, and
otherwise resizes the mask to the output size as the image is (``--resize``),
with nearest-neighbour so class ids stay class ids. A job whose listing has a
``mask`` column and whose ops move pixels is refused by ``refuse_unbuilt_carry``
when the listing is read, before the output folder is touched.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.errors import UserError
from pipeline.job.options import JobConfig
from transforms.ops import Op
from transforms.ops.compose import Layered
from transforms.ops.geometric import _Warp
from transforms.targets.types import MASK_IGNORE

MASK_FORMAT = "png"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale with alpha", 6: "RGBA"}

Problem = tuple[str, str]  # (error type, message) of the input's error row


def moves_pixels(op: Op) -> bool:
    """Whether ``op`` (or any op a composite or policy may pick) moves pixels: flips, crops, warps, resize."""
    if isinstance(op, Layered):
        return any(moves_pixels(branch) for branch in op.branches())
    return bool(op.moves_pixels_only or op.changes_shape or isinstance(op, _Warp))


def _moving(ops: Sequence[Op]) -> list[str]:
    return sorted({op.name for op in ops if moves_pixels(op)})


def _refusal(moving: list[str]) -> UserError:
    return UserError(
        f"--config: masks through geometric ops: not built yet (the op list has {', '.join(moving)}); "
        "use an op list without ops that move pixels, or leave the mask column out of the listing"
    )


def refuse_unbuilt_carry(config: JobConfig) -> None:
    """Raises the one-line refusal when the job's ops would move pixels a mask cannot yet follow."""
    moving = _moving(config.train_ops())
    if moving:
        raise _refusal(moving)


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


def carry_semantic_mask(
    mask: np.ndarray,
    ops: Sequence[Op],
    sampled: list[dict[str, Any]],
    shape: Sequence[int],
    out_size: tuple[int, int],
    resize_mode: str,
) -> np.ndarray:
    """The mask as the record's image is: through ``ops`` with the ``sampled`` params, then to ``out_size``.

    Only ops that leave pixels in place are carried (the mask is then unchanged by them); an op that moves
    pixels is refused (``refuse_unbuilt_carry`` refuses such a job at its start). The resize is the
    image's (``--resize`` ``stretch``, ``crop`` or ``pad``) with nearest-neighbour; ``pad`` fills with
    ``MASK_IGNORE`` (255). ``shape``: the decoded image's, which the mask must have. uint8 ``[H, W]`` out.
    """
    moving = _moving(ops)
    if moving:
        raise _refusal(moving)
    del sampled  # no op that leaves pixels in place changes a mask
    problem = check_mask_size(mask, shape)
    if problem is not None:
        raise ValueError(problem[1])
    import tensorflow as tf

    from transforms.ops.crops import resize_images

    # The image's own resize, on the mask's ids as three equal channels (resize_images works on RGB).
    image = tf.cast(tf.repeat(tf.constant(mask)[tf.newaxis, :, :, tf.newaxis], 3, axis=3), tf.float32)
    out = resize_images(image, out_size, resize_mode, interpolation="nearest", fill=float(MASK_IGNORE))
    return tf.cast(tf.round(out[0, :, :, 0]), tf.uint8).numpy()


def encode_mask(mask: np.ndarray) -> bytes:
    """The carried mask as the record stores it: a grayscale PNG (the same pixels give the same bytes)."""
    import tensorflow as tf

    return bytes(tf.io.encode_png(tf.constant(mask)[:, :, tf.newaxis]).numpy())
