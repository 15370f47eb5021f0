"""Geometric ops that keep the image size: flips and affine warps (rotation, zoom, translation, shear).

Convention: pixel (i, j) has its centre at (x, y) = (j, i). Affine ops turn,
scale and shear about the image centre ((W - 1) / 2, (H - 1) / 2), as Keras'
``RandomRotation``/``RandomZoom`` do; rotation is counter-clockwise as seen
on screen for a positive angle; translation is a fraction of the width
(positive: right) and height (positive: down). Pixels that come from outside
the image are filled by ``fill_mode``: constant (``fill_value``, in
[0, 255]), reflect (d c b a | a b c d | d c b a), wrap, or nearest.
Interpolation is bilinear or nearest. All warps run as one batched
``ImageProjectiveTransformV3`` call, one matrix per image.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.ops.base import Op, check_choice, check_interval, check_range, register
from transforms.tfmath import stable

FILL_MODES = ("constant", "reflect", "wrap", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


@register
@dataclasses.dataclass(frozen=True)
class HorizontalFlip(Op):
    """Mirrors left and right with probability ``p``."""

    name = "horizontal_flip"
    moves_pixels_only = True
    p: float = 0.5

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return tf.reverse(images, axis=[2])


@register
@dataclasses.dataclass(frozen=True)
class VerticalFlip(Op):
    """Mirrors top and bottom with probability ``p``."""

    name = "vertical_flip"
    moves_pixels_only = True
    p: float = 0.5

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return tf.reverse(images, axis=[1])


def warp(
    images: Any,
    angle: Any = None,
    scale: Any = None,
    shear_x: Any = None,
    shear_y: Any = None,
    tx: Any = None,
    ty: Any = None,
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    interpolation: str = "bilinear",
) -> Any:
    """Warps float32 [B, H, W, 3] images by per-image affine params ([B] tensors, None = neutral).

    The forward map is p' = A (p - c) + c + t with A = R(angle) Shx Shy (scale),
    angles in degrees and t = (tx * W, ty * H); each output pixel is read from
    A^-1 (p' - c - t) + c in the input.
    """
    import tensorflow as tf

    batch = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)

    def value(v: Any, neutral: float) -> Any:
        return tf.fill([batch], neutral) if v is None else tf.cast(v, tf.float32)

    rad = math.pi / 180.0
    theta = value(angle, 0.0) * rad
    s = value(scale, 1.0)
    kx = stable(tf.tan, value(shear_x, 0.0) * rad)
    ky = stable(tf.tan, value(shear_y, 0.0) * rad)
    cos, sin = stable(tf.cos, theta), stable(tf.sin, theta)
    # A = [[cos, sin], [-sin, cos]] @ [[1, kx], [0, 1]] @ [[1, 0], [ky, 1]] * s
    # (y points down, so this turns counter-clockwise on screen).
    b00, b01, b10, b11 = 1.0 + kx * ky, kx, ky, tf.ones_like(kx)
    a00 = s * (cos * b00 + sin * b10)
    a01 = s * (cos * b01 + sin * b11)
    a10 = s * (-sin * b00 + cos * b10)
    a11 = s * (-sin * b01 + cos * b11)
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    ox = cx + value(tx, 0.0) * w
    oy = cy + value(ty, 0.0) * h
    # input = Ainv (p' - o) + c
    off_x = cx - (i00 * ox + i01 * oy)
    off_y = cy - (i10 * ox + i11 * oy)
    zeros = tf.zeros_like(i00)
    transforms = tf.stack([i00, i01, off_x, i10, i11, off_y, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(fill_value, tf.float32),
        interpolation=interpolation.upper(),
        fill_mode=fill_mode.upper(),
    )


@dataclasses.dataclass(frozen=True)
class _Warp(Op):
    """Shared fields and checks of the affine ops."""

    fill_mode: str = "constant"
    fill_value: float = 0.0
    interpolation: str = "bilinear"

    def validate(self) -> None:
        check_choice(self, "fill_mode", self.fill_mode, FILL_MODES)
        check_choice(self, "interpolation", self.interpolation, INTERPOLATIONS)
        check_range(self, "fill_value", self.fill_value, 0.0, 255.0)
        self.validate_ranges()

    def validate_ranges(self) -> None:
        """The op's own ranges."""

    def _warp(self, images: Any, **params: Any) -> Any:
        return warp(
            images,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            interpolation=self.interpolation,
            **params,
        )


@register
@dataclasses.dataclass(frozen=True)
class Rotation(_Warp):
    """Rotates about the centre by an angle in degrees drawn from ``degrees`` (counter-clockwise positive)."""

    name = "rotation"
    draws = (("angle", "degrees", 0.0, "uniform"),)
    degrees: tuple[float, float] = (-15.0, 15.0)

    def validate_ranges(self) -> None:
        check_interval(self, "degrees", self.degrees, -360.0, 360.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return self._warp(images, angle=params["angle"])


@register
@dataclasses.dataclass(frozen=True)
class Zoom(_Warp):
    """Scales about the centre by a factor from ``scale`` (> 1 zooms in), keeping the image size."""

    name = "zoom"
    draws = (("scale", "scale", 1.0, "log"),)
    scale: tuple[float, float] = (0.8, 1.2)

    def validate_ranges(self) -> None:
        check_interval(self, "scale", self.scale, 0.05, 20.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return self._warp(images, scale=params["scale"])


@register
@dataclasses.dataclass(frozen=True)
class Translate(_Warp):
    """Shifts by fractions of the width (``x``, positive right) and height (``y``, positive down)."""

    name = "translate"
    draws = (("x", "x", 0.0, "uniform"), ("y", "y", 0.0, "uniform"))
    x: tuple[float, float] = (-0.1, 0.1)
    y: tuple[float, float] = (-0.1, 0.1)

    def validate_ranges(self) -> None:
        check_interval(self, "x", self.x, -1.0, 1.0)
        check_interval(self, "y", self.y, -1.0, 1.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return self._warp(images, tx=params["x"], ty=params["y"])


@register
@dataclasses.dataclass(frozen=True)
class Shear(_Warp):
    """Shears about the centre by angles in degrees along x (``x``) and y (``y``)."""

    name = "shear"
    draws = (("x", "x", 0.0, "uniform"), ("y", "y", 0.0, "uniform"))
    x: tuple[float, float] = (-10.0, 10.0)
    y: tuple[float, float] = (0.0, 0.0)

    def validate_ranges(self) -> None:
        check_interval(self, "x", self.x, -80.0, 80.0)
        check_interval(self, "y", self.y, -80.0, 80.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return self._warp(images, shear_x=params["x"], shear_y=params["y"])


@register
@dataclasses.dataclass(frozen=True)
class Affine(_Warp):
    """Rotation, scale, shear and translation in one resampling (as torchvision's ``RandomAffine``)."""

    name = "affine"
    draws = (
        ("angle", "degrees", 0.0, "uniform"),
        ("scale", "scale", 1.0, "log"),
        ("shear_x", "shear_x", 0.0, "uniform"),
        ("shear_y", "shear_y", 0.0, "uniform"),
        ("x", "translate_x", 0.0, "uniform"),
        ("y", "translate_y", 0.0, "uniform"),
    )
    degrees: tuple[float, float] = (-10.0, 10.0)
    scale: tuple[float, float] = (0.9, 1.1)
    shear_x: tuple[float, float] = (-5.0, 5.0)
    shear_y: tuple[float, float] = (0.0, 0.0)
    translate_x: tuple[float, float] = (-0.05, 0.05)
    translate_y: tuple[float, float] = (-0.05, 0.05)

    def validate_ranges(self) -> None:
        check_interval(self, "degrees", self.degrees, -360.0, 360.0)
        check_interval(self, "scale", self.scale, 0.05, 20.0)
        check_interval(self, "shear_x", self.shear_x, -80.0, 80.0)
        check_interval(self, "shear_y", self.shear_y, -80.0, 80.0)
        check_interval(self, "translate_x", self.translate_x, -1.0, 1.0)
        check_interval(self, "translate_y", self.translate_y, -1.0, 1.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return self._warp(
            images,
            angle=params["angle"],
            scale=params["scale"],
            shear_x=params["shear_x"],
            shear_y=params["shear_y"],
            tx=params["x"],
            ty=params["y"],
        )
