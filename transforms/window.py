"""Decode only what is used: a JPEG's crop window, downscaled in the DCT domain, when a resized crop comes first.

A 12 MP photo whose first applied op is ``random_resized_crop`` (resizing to
the output size) needs only the crop's pixels, and fewer of them than it has:
libjpeg can skip the rows and columns outside a window
(``tf.io.decode_and_crop_jpeg``) and scale by 1/2, 1/4 or 1/8 while it
decodes (``ratio``). The plan is a pure function of the sampled crop and the
header, and is recorded in the crop's params, so every path that renders a
record (``render_encoded``, host decoding then ``render_checked``, ``verify
--sample``, ``Renderer.render`` on ``Decoder.decode_for``) decodes the same
pixels:

- ``decode_ratio``: 1, 2, 4 or 8, the largest r with crop height / r >= output
  height and crop width / r >= output width (the resize after it then still
  only shrinks, antialiased, as it would from the full-size crop);
- ``decode_window``: [y, x, height, width] in the stored (not yet EXIF-rotated)
  image scaled by 1/r: ``decode_and_crop_jpeg``'s window is in scaled
  coordinates (tested), and must lie inside the scaled image
  (ceil(H / r) x ceil(W / r), libjpeg's rounding);
- ``decode_orientation``: the EXIF orientation, applied after decoding.

The crop's own ``y``/``x``/``height``/``width`` stay in upright full-size
coordinates (what was sampled); the renderer crops the whole decoded window and
resizes it. With r > 1 a window edge moves by less than r source pixels (the
box is rounded to the scaled grid).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from transforms.formats import jpeg_segments
from transforms.ops import Op
from transforms.ops.crops import RandomResizedCrop

RATIOS = (1, 2, 4, 8)  # libjpeg's DCT scalings that TensorFlow exposes
RATIO_KEY, WINDOW_KEY, ORIENTATION_KEY = "decode_ratio", "decode_window", "decode_orientation"

Box = tuple[int, int, int, int]  # y, x, height, width


class Plan(NamedTuple):
    """How one record's JPEG is decoded: op ``op_index``'s window at 1/``ratio``, then turned by ``orientation``."""

    op_index: int
    ratio: int
    window: Box
    orientation: int

    def upright_size(self) -> tuple[int, int]:
        """(height, width) of the decoded window once oriented: what the crop op receives."""
        _, _, h, w = self.window
        return (w, h) if self.orientation >= 5 else (h, w)

    def row(self) -> list[int]:
        """[ratio, y, x, height, width], as the traced decode takes it."""
        return [self.ratio, *self.window]


def dct_ratio(crop: tuple[int, int], out: tuple[int, int]) -> int:
    """The largest r in ``RATIOS`` with crop_h / r >= out_h and crop_w / r >= out_w (1 when none is larger)."""
    return max(r for r in RATIOS if r == 1 or (crop[0] >= r * out[0] and crop[1] >= r * out[1]))


# Each EXIF orientation as (reverse rows, reverse columns, transpose) of the stored image: formats.ORIENT_STEPS.
def stored_box(box: Box, orientation: int, stored: tuple[int, int]) -> Box:
    """An upright box as a box of the stored image of size ``stored`` (its header's height, width)."""
    from transforms.formats import ORIENT_STEPS

    flip_rows, flip_cols, transpose = ORIENT_STEPS[min(max(orientation, 1), 8) - 1]
    y, x, h, w = box
    if transpose:  # upright = transpose(flipped): the box in the flipped image has its axes swapped
        y, x, h, w = x, y, w, h
    if flip_rows:
        y = stored[0] - y - h
    if flip_cols:
        x = stored[1] - x - w
    return (y, x, h, w)


def _round_div(value: int, ratio: int) -> int:
    """round(value / ratio), halves up, in integers."""
    return (2 * value + ratio) // (2 * ratio)


def scaled_box(box: Box, ratio: int, stored: tuple[int, int]) -> Box:
    """A stored-image box on the grid of the image scaled by 1/``ratio``: ends rounded, at least 1 pixel, inside."""
    if ratio == 1:
        return box
    y, x, h, w = box
    limits = (-(-stored[0] // ratio), -(-stored[1] // ratio))  # libjpeg: ceil(size / ratio)
    out: list[int] = []
    for start, size, limit in ((y, h, limits[0]), (x, w, limits[1])):
        lo, hi = _round_div(start, ratio), _round_div(start + size, ratio)
        length = min(max(hi - lo, 1), limit)
        out += [min(lo, limit - length), length]
    return (out[0], out[2], out[1], out[3])


def ends_whole(data: bytes) -> bool:
    """True when a JPEG's main image has its end-of-image marker (FF D9) after its first scan.

    A truncated JPEG fails to decode whole, but a window in its intact part can decode: planning one would make
    whether a record exists depend on its crop (and its copies disagree). Such a file is decoded whole instead,
    and fails as a whole input. Markers are walked to the main image's first scan (an EXIF thumbnail inside
    APP1 has its own end marker); inside scan data an FF byte is always followed by 00 or a restart marker.
    """
    for marker, start, _end in jpeg_segments(data):
        if marker == 0xDA:  # start of scan: the image data follows
            return data.find(b"\xff\xd9", start) >= 0
    return False


def plans_windows(ops: tuple[Op, ...]) -> bool:
    """True when some record of this op list can have a decode plan (it has a resizing crop)."""
    return any(isinstance(op, RandomResizedCrop) and op.fixed_size() is not None for op in ops)


def planned_op(ops: tuple[Op, ...], sampled: list[dict[str, Any]]) -> int | None:
    """The index of the first applied op when it is a resizing crop (a window decode can serve it), else None."""
    for i, entry in enumerate(sampled):
        if entry["applied"]:
            op = ops[i]
            return i if isinstance(op, RandomResizedCrop) and op.fixed_size() is not None else None
    return None


def add_plan(
    ops: tuple[Op, ...], sampled: list[dict[str, Any]], stored: tuple[int, int], orientation: int
) -> list[dict[str, Any]]:
    """``sampled`` with the decode plan in the crop's params, for a JPEG of stored size ``stored``; unchanged if none.

    ``sampled`` was drawn for the upright size (``decode.header_shape``).
    """
    index = planned_op(ops, sampled)
    if index is None:
        return sampled
    params = sampled[index]["params"]
    box = (int(params["y"]), int(params["x"]), int(params["height"]), int(params["width"]))
    size = ops[index].fixed_size()
    assert size is not None  # planned_op checked it
    ratio = dct_ratio((box[2], box[3]), size)
    window = scaled_box(stored_box(box, orientation, stored), ratio, stored)
    out = list(sampled)
    out[index] = {
        **sampled[index],
        "params": {**params, RATIO_KEY: ratio, WINDOW_KEY: list(window), ORIENTATION_KEY: orientation},
    }
    return out


def plan_of(sampled: list[dict[str, Any]]) -> Plan | None:
    """The decode plan recorded in a record's params, or None (the image is decoded whole)."""
    for i, entry in enumerate(sampled):
        params = entry.get("params") or {}
        if entry.get("applied") and RATIO_KEY in params:
            y, x, h, w = (int(v) for v in params[WINDOW_KEY])
            return Plan(i, int(params[RATIO_KEY]), (y, x, h, w), int(params[ORIENTATION_KEY]))
    return None


def decode_window_graph(data: Any, row: Any) -> Any:
    """TF ops: the JPEG's window at 1/ratio for ``row`` = [ratio, y, x, h, w] (int32), as uint8 [h, w, C].

    ``ratio`` is an attribute of the kernel, not an input: one branch per ratio.
    """
    import tensorflow as tf

    window = row[1:]
    branches = [
        (lambda r=r: tf.ensure_shape(tf.io.decode_and_crop_jpeg(data, window, channels=0, ratio=r), [None, None, None]))
        for r in RATIOS
    ]
    index = tf.argmax(tf.cast(tf.equal(tf.constant(RATIOS), row[0]), tf.int32), output_type=tf.int32)
    return tf.switch_case(index, branches)
