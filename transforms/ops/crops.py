"""Ops that change the image size: random resized crop, random crop, centre crop, resize.

``random_resized_crop`` crops and resizes in one op (as torchvision's
``RandomResizedCrop(size)``): its output has a fixed size, by default the
job's ``--image-size``, so the ops after it run on small, same-size images.
The other crops keep their pixels (no resampling); the pipeline's final resize
brings the result to the output size, unless a ``resize`` op already did.
Crops run on one image at a time (each image has its own window).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.errors import ConfigError
from transforms.ops.base import Op, Params, Shape, check_area, check_choice, check_interval, check_range, register
from transforms.rng import Rng

RESIZE_MODES = ("stretch", "crop", "pad")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3")


def resize_images(
    images: Any, size: tuple[int, int], mode: str = "stretch", interpolation: str = "bilinear", fill: float = 0.0
) -> Any:
    """TF ops: float32 or uint8 [B, h, w, 3] to float32 [B, H, W, 3] in [0, 255].

    ``stretch`` ignores the aspect ratio (as Keras' ``Resizing``); ``crop`` cuts
    the centre to the target aspect first; ``pad`` fits the whole image and
    pads the rest with ``fill``. Downscaling is antialiased (except
    ``nearest``), so fine detail does not alias.

    uint8 is resized as it is: TensorFlow's resize kernels read each value as
    float32, so the result is the one of casting first (tested for every
    interpolation), without a float32 copy of the whole input (a 2800x2600
    crop to 224x224, one thread: 16 ms against 112 ms).
    """
    import tensorflow as tf

    def as_float(t: Any) -> Any:
        return t if t.dtype == tf.float32 else tf.cast(t, tf.float32)  # nearest keeps the input's dtype

    height, width = size
    antialias = interpolation != "nearest"
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    if mode == "crop":
        scale = tf.minimum(h / height, w / width)
        ch = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), 1)
        cw = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), 1)
        y0 = (tf.shape(images)[1] - ch) // 2
        x0 = (tf.shape(images)[2] - cw) // 2
        images = images[:, y0 : y0 + ch, x0 : x0 + cw, :]
    elif mode == "pad":
        scale = tf.minimum(height / h, width / w)
        nh = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, height)
        nw = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, width)
        inner = as_float(tf.image.resize(images, tf.stack([nh, nw]), method=interpolation, antialias=antialias))
        top, left = (height - nh) // 2, (width - nw) // 2
        out = tf.pad(
            tf.clip_by_value(inner, 0.0, 255.0),
            [[0, 0], [top, height - nh - top], [left, width - nw - left], [0, 0]],
            constant_values=fill,
        )
        return tf.ensure_shape(out, [None, height, width, 3])
    out = as_float(tf.image.resize(images, [height, width], method=interpolation, antialias=antialias))
    return tf.clip_by_value(out, 0.0, 255.0)


def _slice(images: Any, params: dict[str, Any]) -> Any:
    import tensorflow as tf

    y, x, h, w = (tf.cast(params[k][0], tf.int32) for k in ("y", "x", "height", "width"))
    return images[:, y : y + h, x : x + w, :]


@dataclasses.dataclass(frozen=True)
class _Crop(Op):
    """Shared by the crops: a box (y, x, height, width) sampled per image, its pixels kept."""

    param_names = ("y", "x", "height", "width")
    changes_shape = True
    moves_pixels_only = True
    per_image = True

    def neutral_params(self, shape: Shape) -> Params | None:
        return {"y": 0, "x": 0, "height": shape[0], "width": shape[1]}

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        return (int(params["height"]), int(params["width"]), shape[2])

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return _slice(images, params)


@register
@dataclasses.dataclass(frozen=True)
class RandomResizedCrop(_Crop):
    """Crops a region of random area and aspect ratio and resizes it to ``height`` x ``width`` (Inception-style).

    Sampling follows torchvision: ten tries for a crop of ``scale`` x area and
    log-uniform ``ratio`` that fits, then a centre crop clamped to the ratio
    range. The resize is the final resize's (antialiased bilinear, stretch), so
    the ops after it run at the output size. ``height``/``width`` 0 mean the
    job's ``--image-size`` (filled in when the config is loaded, so a manifest
    names the size). ``resize: false`` keeps the crop's pixels (version 1).
    Version 2: resizes by default.
    """

    name = "random_resized_crop"
    version = 2
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    height: int = 0
    width: int = 0
    resize: bool = True

    def validate(self) -> None:
        check_interval(self, "scale", self.scale, 1e-6, 1.0)
        check_interval(self, "ratio", self.ratio, 1e-3, 1e3)
        check_range(self, "height", self.height, 0, 1 << 14)
        check_range(self, "width", self.width, 0, 1 << 14)
        check_area(self, self.height, self.width)
        if (self.height == 0) != (self.width == 0):
            raise ConfigError(f"{self.name}: give both height and width, or neither (then the job's --image-size)")

    def with_output_size(self, size: tuple[int, int]) -> RandomResizedCrop:
        """The op with ``height``/``width`` 0 ("the job's output size") made concrete."""
        if self.height:
            return self
        return dataclasses.replace(self, height=int(size[0]), width=int(size[1]))

    def _size(self) -> tuple[int, int]:
        if not self.height:
            raise ConfigError(
                f"{self.name}: its output size is not set (height/width 0 mean the job's --image-size: "
                "load ops with transforms.config.ops_from_data(..., image_size) or give height and width)"
            )
        return (self.height, self.width)

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        if not self.resize:
            return super().output_shape(shape, params)
        return (*self._size(), shape[2])

    def fixed_size(self) -> tuple[int, int] | None:
        return (self.height, self.width) if self.resize and self.height else None

    def float_output(self) -> bool:
        return self.resize  # takes uint8 (the window is cut before converting), resizes in float32

    def neutral_params(self, shape: Shape) -> Params | None:
        if self.resize and (shape[0], shape[1]) != self._size():
            return None  # the whole image resized to another size is not the image
        return super().neutral_params(shape)

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        """The window (on uint8 or float32 input), then, when resizing, float32 resized as the final resize does."""
        crop = _slice(images, params)
        if not self.resize:
            return crop
        return resize_images(crop, self._size())

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

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        return {"y": (0, shape[0] - 1), "x": (0, shape[1] - 1), "height": (1, shape[0]), "width": (1, shape[1])}


@register
@dataclasses.dataclass(frozen=True)
class RandomCrop(_Crop):
    """Crops ``height`` x ``width`` pixels at a random place; a smaller side is taken whole."""

    name = "random_crop"
    height: int = 224
    width: int = 224

    def validate(self) -> None:
        check_range(self, "height", self.height, 1, 1 << 16)
        check_range(self, "width", self.width, 1, 1 << 16)

    def sample(self, rng: Rng, shape: Shape) -> Params:
        h, w = min(self.height, shape[0]), min(self.width, shape[1])
        return {"y": rng.integer(0, shape[0] - h), "x": rng.integer(0, shape[1] - w), "height": h, "width": w}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        h, w = min(self.height, shape[0]), min(self.width, shape[1])
        return {"y": (0, shape[0] - h), "x": (0, shape[1] - w), "height": (h, h), "width": (w, w)}


@register
@dataclasses.dataclass(frozen=True)
class CenterCrop(_Crop):
    """Crops the centre: ``height`` x ``width`` pixels when given, else ``fraction`` of each side.

    ``fraction: 0.875`` is the Inception evaluation crop. Not random, but an op
    so it can sit anywhere in the list; a smaller side is taken whole.
    """

    name = "center_crop"
    height: int = 0
    width: int = 0
    fraction: float = 1.0

    def validate(self) -> None:
        check_range(self, "height", self.height, 0, 1 << 16)
        check_range(self, "width", self.width, 0, 1 << 16)
        check_range(self, "fraction", self.fraction, 1e-3, 1.0)
        if (self.height == 0) != (self.width == 0):
            raise ConfigError(f"{self.name}: give both height and width, or neither (then fraction is used)")

    def sample(self, rng: Rng, shape: Shape) -> Params:
        if self.height:
            h, w = min(self.height, shape[0]), min(self.width, shape[1])
        else:
            h = max(1, int(round(shape[0] * self.fraction)))
            w = max(1, int(round(shape[1] * self.fraction)))
        return {"y": (shape[0] - h) // 2, "x": (shape[1] - w) // 2, "height": h, "width": w}

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        fixed = self.sample(None, shape)  # type: ignore[arg-type]  # not random: draws nothing
        return {k: (v, v) for k, v in fixed.items()}


@register
@dataclasses.dataclass(frozen=True)
class Resize(Op):
    """Resizes to ``height`` x ``width`` (``mode`` stretch, crop or pad; a choice of interpolation).

    Put it first to augment at the output size: later ops then work on small,
    same-size images, which is faster and batches on a GPU.
    """

    name = "resize"
    changes_shape = True
    height: int = 224
    width: int = 224
    mode: str = "stretch"
    interpolation: str = "bilinear"
    fill_value: float = 0.0

    def validate(self) -> None:
        check_range(self, "height", self.height, 1, 1 << 14)
        check_range(self, "width", self.width, 1, 1 << 14)
        check_area(self, self.height, self.width)
        check_choice(self, "mode", self.mode, RESIZE_MODES)
        check_choice(self, "interpolation", self.interpolation, INTERPOLATIONS)
        check_range(self, "fill_value", self.fill_value, 0.0, 255.0)

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        return (self.height, self.width, shape[2])

    def fixed_size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def float_output(self) -> bool:
        return True  # resize_images reads uint8 as float32 itself

    def neutral_params(self, shape: Shape) -> Params | None:
        return {} if (shape[0], shape[1]) == (self.height, self.width) and self.interpolation != "bicubic" else None

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return resize_images(images, (self.height, self.width), self.mode, self.interpolation, self.fill_value)
