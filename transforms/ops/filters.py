"""Filter ops that keep the image size: Gaussian noise, Gaussian blur, sharpness and JPEG re-encoding.

They imitate what a camera, a lens or a web upload does to a photo (sensor
noise, defocus, over-sharpening, compression artefacts), so a model trained
on the copies does not learn to rely on such details.

Every op works per image with the image's own params while still running as
one batched call. Sums over neighbouring pixels are written as a fixed
sequence of shifted, weighted whole-image adds (not a convolution kernel,
whose accumulation order may depend on the batch or channel count), so an
image's pixels are the same bit for bit whether it is alone or in a batch.
Random noise comes from ``tf.random.stateless_normal`` seeded per image with
two integers below 2**24 (exact as float32 params), so a record replays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.errors import ConfigError
from transforms.ops.base import Op, Params, Shape, check_interval, register
from transforms.rng import Rng
from transforms.tfmath import stable

# Largest seed + 1: params travel as float32, exact for integers below 2**24.
SEED_LIMIT = 1 << 24


def sample_seeds(rng: Rng) -> Params:
    """Two integer seeds in [0, 2**24) for a per-image stateless TF random op."""
    return {"seed0": rng.integer(0, SEED_LIMIT - 1), "seed1": rng.integer(0, SEED_LIMIT - 1)}


def per_image_random(images: Any, seed0: Any, seed1: Any, draw: Any) -> Any:
    """Stacks ``draw(shape, seed)`` for each image's own seed pair: [B, H, W, 3] float32.

    Runs image by image (``tf.map_fn``), so an image's noise does not depend on
    the rest of the batch.
    """
    import tensorflow as tf

    shape = tf.shape(images)[1:]
    seeds = tf.stack([tf.cast(seed0, tf.int64), tf.cast(seed1, tf.int64)], axis=1)
    noise = tf.map_fn(
        lambda seed: draw(shape, seed),
        seeds,
        fn_output_signature=tf.TensorSpec([None, None, None], tf.float32),
    )
    return tf.reshape(noise, tf.shape(images))


def check_integers(op: Op, field: str, value: tuple) -> None:
    """Raises ``ConfigError`` unless every number in ``value`` is an integer."""
    if any(isinstance(v, bool) or float(v) != int(v) for v in value):
        raise ConfigError(f"{op.name}.{field} must be integers, got {list(value)}")


def reflect_indices(n: Any, before: int, after: int) -> Any:
    """Indices into a length-``n`` axis padded by reflection (d c b | a b c d | c b a), any pad size."""
    import tensorflow as tf

    idx = tf.range(-before, n + after)
    period = tf.maximum(2 * (n - 1), 1)
    idx = tf.math.floormod(idx, period)
    return tf.where(idx >= n, period - idx, idx)


def _weighted_taps(padded: Any, weights: list[Any], axis: int, size: Any) -> Any:
    """sum_t weights[t] * padded shifted by t along ``axis``, accumulated in tap order."""
    out = None
    for t, weight in enumerate(weights):
        if axis == 1:
            term = padded[:, t : t + size]
        else:
            term = padded[:, :, t : t + size]
        term = term * weight
        out = term if out is None else out + term
    return out


@register
@dataclasses.dataclass(frozen=True)
class GaussianNoise(Op):
    """Adds zero-mean Gaussian noise with a per-image standard deviation in pixel levels (sensor noise)."""

    name = "gaussian_noise"
    param_names = ("std", "seed0", "seed1")
    p: float = 0.5
    std: tuple[float, float] = (0.0, 10.0)

    def validate(self) -> None:
        check_interval(self, "std", self.std, 0.0, 255.0)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"std": rng.uniform(*self.std), **sample_seeds(rng)}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        seeds = (0.0, float(SEED_LIMIT - 1))
        return {"std": self.std, "seed0": seeds, "seed1": seeds}

    def neutral_params(self, shape: Shape) -> Params:
        return {"std": 0.0, "seed0": 0, "seed1": 0}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        noise = per_image_random(
            images,
            params["seed0"],
            params["seed1"],
            lambda shape, seed: tf.random.stateless_normal(shape, seed, dtype=tf.float32),
        )
        std = tf.reshape(tf.cast(params["std"], tf.float32), [-1, 1, 1, 1])
        return tf.clip_by_value(images + std * noise, 0.0, 255.0)


@register
@dataclasses.dataclass(frozen=True)
class GaussianBlur(Op):
    """Blurs with a Gaussian of per-image ``sigma`` in pixels (defocus), reflecting at the borders.

    The kernel is separable with a radius of ceil(3 * max sigma), fixed by the
    config so the traced graph has a static size; each image's kernel is
    normalised to sum 1, so flat regions and the mean brightness are kept.
    """

    name = "gaussian_blur"
    draws = (("sigma", "sigma", None, "uniform"),)  # no neutral: the smallest sigma still blurs a little
    p: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)

    def validate(self) -> None:
        check_interval(self, "sigma", self.sigma, 0.01, 20.0)

    @property
    def radius(self) -> int:
        """Kernel radius in pixels, the same for every image."""
        return math.ceil(3.0 * self.sigma[1])

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        r = self.radius
        sigma = tf.reshape(tf.cast(params["sigma"], tf.float32), [-1, 1, 1, 1])
        # exp through ``stable``: the same bits whether this image is alone or in a batch.
        raw = [stable(tf.exp, -float(t * t) / (2.0 * sigma * sigma)) for t in range(-r, r + 1)]
        total = raw[0]
        for w in raw[1:]:
            total = total + w
        weights = [w / total for w in raw]
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        x = tf.gather(images, reflect_indices(h, r, r), axis=1)
        x = _weighted_taps(x, weights, axis=1, size=h)
        x = tf.gather(x, reflect_indices(w, r, r), axis=2)
        x = _weighted_taps(x, weights, axis=2, size=w)
        return tf.clip_by_value(x, 0.0, 255.0)


@register
@dataclasses.dataclass(frozen=True)
class Sharpness(Op):
    """Sharpens (factor > 1) or softens (< 1) as PIL's ``ImageEnhance.Sharpness``; factor 1 is the identity.

    The degenerate image is the 3x3 smoothing filter [[1, 1, 1], [1, 5, 1],
    [1, 1, 1]] / 13 with the outermost rows and columns kept from the original;
    the result is degenerate + factor * (image - degenerate).
    """

    name = "sharpness"
    draws = (("factor", "factor", 1.0, "uniform"),)
    factor: tuple[float, float] = (0.5, 2.0)

    def validate(self) -> None:
        check_interval(self, "factor", self.factor, 0.0, 10.0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        h, w = tf.shape(images)[1], tf.shape(images)[2]
        # Edge-clamped neighbours; the border pixels they affect are replaced below.
        rows = tf.clip_by_value(tf.range(-1, h + 1), 0, h - 1)
        cols = tf.clip_by_value(tf.range(-1, w + 1), 0, w - 1)
        padded = tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)
        total: Any = None
        for i in range(3):
            for j in range(3):
                term = padded[:, i : i + h, j : j + w]
                if i == 1 and j == 1:
                    term = term * 5.0
                total = term if total is None else total + term
        smooth = total / 13.0
        iy = tf.range(h)[:, tf.newaxis]
        ix = tf.range(w)[tf.newaxis, :]
        inner = (iy > 0) & (iy < h - 1) & (ix > 0) & (ix < w - 1)
        degenerate = tf.where(inner[tf.newaxis, :, :, tf.newaxis], smooth, images)
        factor = tf.reshape(tf.cast(params["factor"], tf.float32), [-1, 1, 1, 1])
        return tf.clip_by_value(degenerate + factor * (images - degenerate), 0.0, 255.0)


@register
@dataclasses.dataclass(frozen=True)
class JpegQuality(Op):
    """Re-encodes as JPEG at a per-image integer quality and decodes (compression artefacts).

    The image is rounded to uint8 first, as a saved file would be. TF has
    JPEG kernels on the CPU only, so in a GPU run this op's work is placed on
    the CPU (one image at a time).
    """

    name = "jpeg_quality"
    param_names = ("quality",)
    p: float = 0.5
    quality: tuple[int, int] = (50, 95)

    def validate(self) -> None:
        check_integers(self, "quality", self.quality)
        check_interval(self, "quality", self.quality, 1, 100)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"quality": rng.integer(int(self.quality[0]), int(self.quality[1]))}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        return {"quality": (float(self.quality[0]), float(self.quality[1]))}

    def neutral_params(self, shape: Shape) -> Params | None:
        # JPEG is lossy at every quality, so no params leave the image unchanged.
        return None

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)
        quality = tf.cast(tf.round(params["quality"]), tf.int32)
        out = tf.map_fn(
            lambda args: tf.image.adjust_jpeg_quality(args[0], args[1]),
            (pixels, quality),
            fn_output_signature=tf.TensorSpec([None, None, None], tf.uint8),
        )
        return tf.reshape(tf.cast(out, tf.float32), tf.shape(images))
