"""Tonal ops on integer grey levels: posterize, solarize, equalize and auto-contrast.

They exist because the AutoAugment and RandAugment policies are defined in
terms of PIL's ``ImageOps``, which work on 8-bit levels; to match those
references (tests compare against PIL byte for byte), every op here first
rounds the image to integers in [0, 255], so a neutral setting returns the
rounded image (the image itself when it is already integer-valued, as decoded
photos are). Per-image statistics (histograms, minima, maxima) are integer
reductions, exact whatever the batch layout, so image b's result never
depends on the other images in the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.errors import ConfigError
from transforms.ops.base import Op, Params, Shape, check_interval, register
from transforms.rng import Rng


def levels(images: Any) -> Any:
    """Float32 images rounded to integer levels in [0, 255], still float32."""
    import tensorflow as tf

    return tf.clip_by_value(tf.round(images), 0.0, 255.0)


def check_whole(op: Op, field: str, value: tuple) -> None:
    """Raises ``ConfigError`` unless every number of ``value`` is a whole number."""
    if not all(float(v).is_integer() for v in value):
        raise ConfigError(f"{op.name}.{field} must be whole numbers, got {list(value)}")


@register
@dataclasses.dataclass(frozen=True)
class Posterize(Op):
    """Keeps the top ``bits`` bits of each 8-bit level (PIL's ImageOps.posterize): fewer tones, flat bands."""

    name = "posterize"
    param_names = ("bits",)
    bits: tuple[int, int] = (4, 8)

    def validate(self) -> None:
        check_whole(self, "bits", self.bits)
        check_interval(self, "bits", self.bits, 1, 8)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"bits": rng.integer(int(self.bits[0]), int(self.bits[1]))}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        return {"bits": self.bits}

    def neutral_params(self, shape: Shape) -> Params:
        return {"bits": 8}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = tf.cast(levels(images), tf.int32)
        shift = tf.reshape(8 - tf.cast(tf.round(params["bits"]), tf.int32), [-1, 1, 1, 1])
        return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(x, shift), shift), tf.float32)


@register
@dataclasses.dataclass(frozen=True)
class Solarize(Op):
    """Inverts levels at or above ``threshold`` (x -> 255 - x), as PIL/torchvision solarize; 256 inverts none."""

    name = "solarize"
    param_names = ("threshold",)
    threshold: tuple[float, float] = (128.0, 255.0)

    def validate(self) -> None:
        check_interval(self, "threshold", self.threshold, 0.0, 256.0)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"threshold": rng.uniform(*self.threshold)}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        return {"threshold": self.threshold}

    def neutral_params(self, shape: Shape) -> Params:
        return {"threshold": 256.0}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = levels(images)
        threshold = tf.reshape(tf.cast(params["threshold"], tf.float32), [-1, 1, 1, 1])
        return tf.where(x >= threshold, 255.0 - x, x)


@register
@dataclasses.dataclass(frozen=True)
class Equalize(Op):
    """Equalizes each channel's histogram exactly as PIL's ImageOps.equalize, spreading crowded levels apart."""

    name = "equalize"

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = tf.cast(levels(images), tf.int32)
        b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        rows = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [b * 3, h * w])  # one row per (image, channel)
        hist = tf.cast(tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1), tf.int64)  # [N, 256]
        bins = tf.range(256, dtype=tf.int64)
        last = tf.maximum(tf.reduce_max(tf.where(hist > 0, bins, -1), axis=1), 0)  # last level in use
        # PIL: step = (count - count of the last level) // 255; lut[i] = (step // 2 + cum[i]) // step,
        # cum[i] the count below level i; a channel with step 0 (one level, or too few pixels) is kept.
        step = (tf.reduce_sum(hist, axis=1) - tf.gather(hist, last, batch_dims=1)) // 255
        cum = tf.cumsum(hist, axis=1, exclusive=True)
        lut = tf.minimum((step[:, None] // 2 + cum) // tf.maximum(step, 1)[:, None], 255)
        lut = tf.where(step[:, None] > 0, lut, bins[None, :])
        out = tf.gather(lut, rows, batch_dims=1)
        return tf.transpose(tf.reshape(tf.cast(out, tf.float32), [b, 3, h, w]), [0, 2, 3, 1])


@register
@dataclasses.dataclass(frozen=True)
class AutoContrast(Op):
    """Stretches each channel so its darkest level becomes 0 and its brightest 255 (torchvision's autocontrast)."""

    name = "auto_contrast"

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = levels(images)
        lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
        hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
        # (x - lo) * 255 is an exact integer, so the brightest level maps to 255 exactly.
        stretched = (x - lo) * 255.0 / tf.maximum(hi - lo, 1.0)
        return tf.clip_by_value(tf.where(hi > lo, stretched, x), 0.0, 255.0)
