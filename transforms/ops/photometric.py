"""Photometric ops on [0, 255] float pixels: brightness, contrast, saturation, hue, gamma and colour swaps.

Results are clipped back to [0, 255], so ops can be chained in any order
without leaving the pixel range the model's preprocessing expects.

Every op works on a batch [B, H, W, 3] with one parameter value per image,
broadcast as [B, 1, 1, 1], and uses only element-wise arithmetic or integer
reductions: image b's result never depends on the other images, so the
batched bytes equal the per-image bytes (``pow``, whose CPU bits depend on
the vector lane path, goes through ``elementwise_pow``), traced or eager. Grey levels use the ITU-R 601 luma
weights 0.299 R + 0.587 G + 0.114 B, as PIL's ``convert("L")`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.ops.base import Op, Params, Shape, check_interval, register
from transforms.rng import Rng
from transforms.tfmath import channelwise, stable

# x / 255 is written x * (1 / 255): in a tf.function Grappler rewrites a division by a
# constant into that product, so spelling it out gives the same bytes eagerly and traced.
INV255 = 1.0 / 255.0

# The 6 orders of (R, G, B), lexicographic: index 0 is the identity.
CHANNEL_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def per_image(value: Any) -> Any:
    """A [B] param tensor as float32 [B, 1, 1, 1], to broadcast over each image's pixels."""
    import tensorflow as tf

    return tf.reshape(tf.cast(value, tf.float32), [-1, 1, 1, 1])


def gray(images: Any) -> Any:
    """Luma of float32 [B, H, W, 3] images as [B, H, W, 1] (element-wise, so exact per image)."""
    return images[..., 0:1] * 0.299 + images[..., 1:2] * 0.587 + images[..., 2:3] * 0.114


def clip255(images: Any) -> Any:
    """Clips to the pixel range [0, 255]."""
    import tensorflow as tf

    return tf.clip_by_value(images, 0.0, 255.0)


def elementwise_pow(images: Any, exponent: Any) -> Any:
    """``images ** exponent[b]`` for float32 [B, H, W, 3] images, the same bits whatever the batch (see ``tfmath``)."""
    import tensorflow as tf

    return stable(tf.pow, images, per_image(exponent))


@register
@dataclasses.dataclass(frozen=True)
class Brightness(Op):
    """Scales pixels by ``factor`` then adds ``delta * 255`` (both drawn per image); ``factor`` is PIL's Brightness."""

    name = "brightness"
    # delta first, and an empty factor range draws nothing: configs from before ``factor`` sample the same deltas.
    draws = (("delta", "delta", 0.0, "uniform"), ("factor", "factor", 1.0, "uniform"))
    delta: tuple[float, float] = (-0.2, 0.2)
    factor: tuple[float, float] = (1.0, 1.0)

    def validate(self) -> None:
        check_interval(self, "delta", self.delta, -1.0, 1.0)
        check_interval(self, "factor", self.factor, 0.0, 10.0)

    def pack(self, params: dict[str, Any]) -> list[float]:
        """As ``Op.pack``, but a record from before ``factor`` existed replays with factor 1."""
        return super().pack({"factor": 1.0, **params})

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return clip255(images * per_image(params["factor"]) + per_image(params["delta"]) * 255.0)


MAX_INT32_ROW_WIDTH = (2**31 - 1) // 255


@register
@dataclasses.dataclass(frozen=True)
class Contrast(Op):
    """Scales each channel's distance from its mean by ``factor``.

    The channel mean is summed in int64 on rounded pixels: integer sums do not
    depend on how a reduction is split across threads or batched, so the
    result is the same bytes on any machine and for any batch.
    """

    name = "contrast"
    draws = (("factor", "factor", 1.0, "uniform"),)
    factor: tuple[float, float] = (0.8, 1.2)

    def validate(self) -> None:
        check_interval(self, "factor", self.factor, 0.0, 10.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        rounded = tf.round(images)

        def by_rows() -> Any:
            # Row sums in int32, then int64 over rows: the same integer total as one int64 sum, at half the cost.
            rows = tf.reduce_sum(tf.cast(rounded, tf.int32), axis=2)
            return tf.reduce_sum(tf.cast(rows, tf.int64), axis=1)

        def at_once() -> Any:
            return tf.reduce_sum(tf.cast(rounded, tf.int64), axis=[1, 2])

        # A row of 255s must fit in int32; wider images (a long strip) are summed in int64 directly.
        narrow = tf.shape(images)[2] <= MAX_INT32_ROW_WIDTH
        total = tf.cond(narrow, by_rows, at_once)[:, tf.newaxis, tf.newaxis, :]
        count = tf.cast(tf.shape(images)[1], tf.int64) * tf.cast(tf.shape(images)[2], tf.int64)
        mean = tf.cast(tf.cast(total, tf.float64) / tf.cast(count, tf.float64), tf.float32)
        factor = tf.reshape(per_image(params["factor"]), [-1, 1, 1])  # per image, over rows [B, H, W*3]
        return clip255(channelwise(lambda x, m: (x - m) * factor + m, images, mean))


@register
@dataclasses.dataclass(frozen=True)
class Saturation(Op):
    """Blends each pixel with its grey level by ``factor`` (0 grey, 1 unchanged, > 1 more vivid), as PIL's Color."""

    name = "saturation"
    draws = (("factor", "factor", 1.0, "uniform"),)
    factor: tuple[float, float] = (0.8, 1.2)

    def validate(self) -> None:
        check_interval(self, "factor", self.factor, 0.0, 10.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        # gray + f (x - gray), written as x f + gray (1 - f) so f = 1 returns x exactly.
        factor = per_image(params["factor"])
        return clip255(images * factor + gray(images) * (1.0 - factor))


@register
@dataclasses.dataclass(frozen=True)
class Hue(Op):
    """Turns the hue by ``delta`` (a fraction of the colour circle) in HSV space, keeping saturation and value."""

    name = "hue"
    draws = (("delta", "delta", 0.0, "uniform"),)
    delta: tuple[float, float] = (-0.05, 0.05)

    def validate(self) -> None:
        check_interval(self, "delta", self.delta, -0.5, 0.5)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        hsv = tf.image.rgb_to_hsv(images * INV255)
        # hsv_to_rgb treats h = 1 as h = 0, so floormod's 1.0 for tiny negatives is harmless.
        h = tf.math.floormod(hsv[..., 0:1] + per_image(params["delta"]), 1.0)
        rgb = tf.image.hsv_to_rgb(tf.concat([h, hsv[..., 1:]], axis=-1))
        return clip255(rgb * 255.0)


@register
@dataclasses.dataclass(frozen=True)
class Gamma(Op):
    """Maps x to 255 (x / 255) ** gamma, ``gamma`` drawn log-uniform: < 1 brightens shadows, > 1 darkens them."""

    name = "gamma"
    draws = (("gamma", "gamma", 1.0, "log"),)
    gamma: tuple[float, float] = (0.8, 1.25)

    def validate(self) -> None:
        check_interval(self, "gamma", self.gamma, 0.05, 20.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return clip255(255.0 * elementwise_pow(images * INV255, params["gamma"]))


@register
@dataclasses.dataclass(frozen=True)
class Grayscale(Op):
    """Replaces the colours by their grey level (0.299 R + 0.587 G + 0.114 B) in all 3 channels."""

    name = "grayscale"
    p: float = 0.1

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        return clip255(tf.repeat(gray(images), 3, axis=-1))


@register
@dataclasses.dataclass(frozen=True)
class ChannelShuffle(Op):
    """Reorders R, G, B by permutation ``perm`` (0..5, lexicographic, 0 the identity), so colour is not a cue."""

    name = "channel_shuffle"
    param_names = ("perm",)
    p: float = 0.1

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"perm": rng.integer(0, len(CHANNEL_PERMUTATIONS) - 1)}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        return {"perm": (0, len(CHANNEL_PERMUTATIONS) - 1)}

    def neutral_params(self, shape: Shape) -> Params:
        return {"perm": 0}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        index = tf.cast(tf.round(params["perm"]), tf.int32)
        orders = tf.gather(tf.constant(CHANNEL_PERMUTATIONS, tf.int32), index)  # [B, 3]
        return tf.gather(images, orders, axis=3, batch_dims=1)


@register
@dataclasses.dataclass(frozen=True)
class Invert(Op):
    """Maps x to 255 - x (the negative image), as PIL's ImageOps.invert; AutoAugment uses it."""

    name = "invert"
    p: float = 0.5

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return clip255(255.0 - images)
