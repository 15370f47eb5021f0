"""Geometric ops: flips, rotation, random resized crop.

Convention: pixel (i, j) has its centre at integer coordinates (j, i); a
rotation turns the image about ((W - 1) / 2, (H - 1) / 2), as Keras'
``RandomRotation`` does. Pixels that come from outside the image are filled
by ``fill_mode`` (constant uses ``fill_value``, in [0, 255]).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.op_base import Op, Params, Shape, check_choice, check_interval, check_range, register
from transforms.rng import Rng

FILL_MODES = ("constant", "reflect", "wrap", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


@register
@dataclasses.dataclass(frozen=True)
class HorizontalFlip(Op):
    """Mirrors left and right with probability ``p``."""

    name = "horizontal_flip"
    p: float = 0.5

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return tf.reverse(image, axis=[1])


@register
@dataclasses.dataclass(frozen=True)
class VerticalFlip(Op):
    """Mirrors top and bottom with probability ``p``."""

    name = "vertical_flip"
    p: float = 0.5

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return tf.reverse(image, axis=[0])


@register
@dataclasses.dataclass(frozen=True)
class Rotation(Op):
    """Rotates by an angle in degrees drawn from ``degrees`` (counter-clockwise positive)."""

    name = "rotation"
    param_names = ("angle",)
    degrees: tuple[float, float] = (-15.0, 15.0)
    fill_mode: str = "constant"
    fill_value: float = 0.0
    interpolation: str = "bilinear"

    def validate(self) -> None:
        check_interval(self, "degrees", self.degrees, -360.0, 360.0)
        check_choice(self, "fill_mode", self.fill_mode, FILL_MODES)
        check_choice(self, "interpolation", self.interpolation, INTERPOLATIONS)
        check_range(self, "fill_value", self.fill_value, 0.0, 255.0)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"angle": rng.uniform(*self.degrees)}

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        theta = tf.cast(params["angle"], tf.float32) * (math.pi / 180.0)
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        cos, sin = tf.cos(theta), tf.sin(theta)
        # Maps each output pixel to its input location (Keras' rotation matrix).
        x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
        y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
        transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[tf.newaxis],
            transforms=transform[tf.newaxis],
            output_shape=tf.shape(image)[:2],
            fill_value=tf.constant(self.fill_value, tf.float32),
            interpolation=self.interpolation.upper(),
            fill_mode=self.fill_mode.upper(),
        )
        return out[0]


@register
@dataclasses.dataclass(frozen=True)
class RandomResizedCrop(Op):
    """Crops a region of random area and aspect ratio (Inception-style training crop).

    The crop keeps its pixels; the pipeline's final resize brings it to the
    model's size. Sampling follows torchvision: ten tries for a crop that fits,
    then a centre crop clamped to the ratio range.
    """

    name = "random_resized_crop"
    param_names = ("y", "x", "height", "width")
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)

    def validate(self) -> None:
        check_interval(self, "scale", self.scale, 1e-6, 1.0)
        check_interval(self, "ratio", self.ratio, 1e-3, 1e3)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        height, width = shape[0], shape[1]
        area = height * width
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = rng.log_uniform(*self.ratio)
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                y = rng.integer(0, height - h)
                x = rng.integer(0, width - w)
                return {"y": y, "x": x, "height": h, "width": w}
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, max(1, int(round(width / self.ratio[0])))
        elif in_ratio > self.ratio[1]:
            h, w = height, max(1, int(round(height * self.ratio[1])))
        else:
            w, h = width, height
        return {"y": (height - h) // 2, "x": (width - w) // 2, "height": h, "width": w}

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        return (int(params["height"]), int(params["width"]), shape[2])

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        y, x, h, w = (tf.cast(params[k], tf.int32) for k in self.param_names)
        return tf.slice(image, tf.stack([y, x, 0]), tf.stack([h, w, 3]))
