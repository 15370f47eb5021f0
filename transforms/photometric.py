"""Photometric ops on [0, 255] float pixels: brightness and contrast.

Results are clipped back to [0, 255], so ops can be chained in any order
without leaving the pixel range the model's preprocessing expects.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.op_base import Op, Params, Shape, check_interval, register
from transforms.rng import Rng


@register
@dataclasses.dataclass(frozen=True)
class Brightness(Op):
    """Adds ``delta * 255`` to every pixel, ``delta`` drawn from the range."""

    name = "brightness"
    param_names = ("delta",)
    delta: tuple[float, float] = (-0.2, 0.2)

    def validate(self) -> None:
        check_interval(self, "delta", self.delta, -1.0, 1.0)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"delta": rng.uniform(*self.delta)}

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return tf.clip_by_value(image + tf.cast(params["delta"], tf.float32) * 255.0, 0.0, 255.0)


@register
@dataclasses.dataclass(frozen=True)
class Contrast(Op):
    """Scales each channel's distance from its mean by ``factor``.

    The channel mean is summed in int64 on rounded pixels: integer sums do not
    depend on how a reduction is split across threads, so the result is the
    same bytes on any machine.
    """

    name = "contrast"
    param_names = ("factor",)
    factor: tuple[float, float] = (0.8, 1.2)

    def validate(self) -> None:
        check_interval(self, "factor", self.factor, 0.0, 10.0)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"factor": rng.uniform(*self.factor)}

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        total = tf.reduce_sum(tf.cast(tf.round(image), tf.int64), axis=[0, 1])
        count = tf.cast(tf.shape(image)[0], tf.int64) * tf.cast(tf.shape(image)[1], tf.int64)
        mean = tf.cast(tf.cast(total, tf.float64) / tf.cast(count, tf.float64), tf.float32)
        factor = tf.cast(params["factor"], tf.float32)
        return tf.clip_by_value((image - mean) * factor + mean, 0.0, 255.0)
