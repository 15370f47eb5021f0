"""Occlusion ops: Random Erasing (Zhong et al., 2017), also known as cutout.

Blanking out random rectangles makes a model look at the whole object instead
of its single most telling part, and makes it robust to things in front of
the object. Boxes are drawn on the host (count, area, aspect ratio and
position) and applied on the device as a per-image mask built from row and
column comparisons, so images in one batch get their own boxes and an image's
result does not depend on the rest of the batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.errors import ConfigError
from transforms.ops.base import Op, Params, Shape, check_choice, check_interval, check_range, register
from transforms.ops.filters import SEED_LIMIT, check_integers, per_image_random, sample_seeds
from transforms.rng import Rng

FILLS = ("constant", "noise")
MAX_BOXES = 16
BOX_FIELDS = ("y", "x", "h", "w")


@register
@dataclasses.dataclass(frozen=True)
class RandomErasing(Op):
    """Fills ``count`` random boxes with ``fill_value`` (``constant``) or uniform noise in [0, 255] (``noise``).

    Each box covers a fraction ``area`` of the image with aspect ratio h / w
    drawn log-uniformly from ``ratio``; it is clamped to fit the image and put
    at a random position. Params: ``n`` (boxes used), then ``y{i}, x{i},
    h{i}, w{i}`` (top, left, height, width in pixels) for each of the
    max(count) slots (unused slots are zero), then ``seed0, seed1`` for the
    noise fill.
    """

    name = "random_erasing"
    p: float = 0.5
    count: tuple[int, int] = (1, 1)
    area: tuple[float, float] = (0.02, 0.2)
    ratio: tuple[float, float] = (0.3, 3.3)
    fill: str = "constant"
    fill_value: float = 0.0

    def validate(self) -> None:
        check_integers(self, "count", self.count)
        check_interval(self, "count", self.count, 0, MAX_BOXES)
        check_interval(self, "area", self.area, 0.0, 1.0)
        if self.area[0] <= 0.0:
            raise ConfigError(f"{self.name}.area must be [min, max] with 0 < min <= max <= 1, got {list(self.area)}")
        check_interval(self, "ratio", self.ratio, 0.01, 100.0)
        check_choice(self, "fill", self.fill, FILLS)
        check_range(self, "fill_value", self.fill_value, 0.0, 255.0)

    @property
    def slots(self) -> int:
        """The number of box slots in the params: the largest count."""
        return int(self.count[1])

    def layout(self) -> tuple[str, ...]:
        boxes = tuple(f"{field}{i}" for i in range(self.slots) for field in BOX_FIELDS)
        return ("n", *boxes, "seed0", "seed1")

    def sample(self, rng: Rng, shape: Shape) -> Params:
        height, width = shape[0], shape[1]
        n = rng.integer(int(self.count[0]), int(self.count[1]))
        params: Params = {"n": n}
        for i in range(self.slots):
            y = x = h = w = 0
            if i < n:
                target = rng.uniform(*self.area) * height * width
                aspect = rng.log_uniform(*self.ratio)
                h = min(max(round(math.sqrt(target * aspect)), 1), height)
                w = min(max(round(math.sqrt(target / aspect)), 1), width)
                y = rng.integer(0, height - h)
                x = rng.integer(0, width - w)
            params.update({f"y{i}": y, f"x{i}": x, f"h{i}": h, f"w{i}": w})
        params.update(sample_seeds(rng))
        return params

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        height, width = float(shape[0]), float(shape[1])
        bounds = {"n": (float(self.count[0]), float(self.count[1]))}
        for i in range(self.slots):
            bounds.update(
                {
                    f"y{i}": (0.0, height - 1.0),
                    f"x{i}": (0.0, width - 1.0),
                    f"h{i}": (0.0, height),
                    f"w{i}": (0.0, width),
                }
            )
        seeds = (0.0, float(SEED_LIMIT - 1))
        bounds.update({"seed0": seeds, "seed1": seeds})
        return bounds

    def neutral_params(self, shape: Shape) -> Params:
        return dict.fromkeys(self.layout(), 0)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        def column(name: str) -> Any:
            return tf.reshape(tf.cast(tf.round(params[name]), tf.int32), [-1, 1, 1])

        iy = tf.range(tf.shape(images)[1])[tf.newaxis, :, tf.newaxis]
        ix = tf.range(tf.shape(images)[2])[tf.newaxis, tf.newaxis, :]
        n = column("n")
        mask = tf.fill(tf.shape(images)[:3], False)
        for i in range(self.slots):
            y0, x0 = column(f"y{i}"), column(f"x{i}")
            y1, x1 = y0 + column(f"h{i}"), x0 + column(f"w{i}")
            mask = mask | ((i < n) & (iy >= y0) & (iy < y1) & (ix >= x0) & (ix < x1))
        if self.fill == "noise":
            fill = per_image_random(
                images,
                params["seed0"],
                params["seed1"],
                lambda shape, seed: tf.random.stateless_uniform(shape, seed, 0.0, 255.0, dtype=tf.float32),
            )
        else:
            fill = tf.fill(tf.shape(images), tf.constant(self.fill_value, tf.float32))
        return tf.where(mask[..., tf.newaxis], fill, images)
