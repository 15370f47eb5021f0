"""Sampling and applying an op list: parameters on the host, pixels in one traced TF function.

``Augmenter.sample`` draws every op's parameters for (key, copy) from its own
counter-based stream (seed, key, copy, op index) and returns them as plain
JSON-able dicts that go into the record. ``Renderer`` applies such parameters,
resizes to the output size and encodes, in a ``tf.function`` with an input
signature, so images of any size share one trace. Given a record's params it
reproduces the record's pixels.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from transforms import encoding as enc
from transforms.errors import ConfigError
from transforms.op_base import Op, Shape
from transforms.preprocess import Preprocessing
from transforms.rng import Rng

RESIZE_MODES = ("stretch", "crop", "pad")


@dataclasses.dataclass(frozen=True)
class Augmenter:
    """An ordered op list and the global seed; samples parameters, never touches pixels."""

    ops: tuple[Op, ...]
    seed: int

    def sample(self, key: str, copy: int, shape: Shape) -> list[dict[str, Any]]:
        """Every op's parameters for copy ``copy`` of ``key`` (an image of ``shape``)."""
        out = []
        for index, op in enumerate(self.ops):
            rng = Rng(self.seed, key, copy, index)
            applied = rng.bernoulli(op.p)
            params = op.sample(rng, shape) if applied else {}
            if applied:
                shape = op.output_shape(shape, params)
            out.append({"op": op.name, "version": op.version, "applied": applied, "params": params})
        return out


def params_json(sampled: list[dict[str, Any]]) -> str:
    """Canonical JSON for sampled params: the same text for the same values, always."""
    return json.dumps(sampled, sort_keys=True, separators=(",", ":"))


def resize(image: Any, size: tuple[int, int], mode: str) -> Any:
    """TF ops: float32 [h, w, 3] to [H, W, 3]; ``stretch``, centre ``crop`` to aspect, or ``pad``."""
    import tensorflow as tf

    height, width = size
    if mode == "crop":
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        scale = tf.minimum(h / height, w / width)
        ch = tf.cast(tf.round(height * scale), tf.int32)
        cw = tf.cast(tf.round(width * scale), tf.int32)
        ch, cw = tf.maximum(ch, 1), tf.maximum(cw, 1)
        y0 = (tf.shape(image)[0] - ch) // 2
        x0 = (tf.shape(image)[1] - cw) // 2
        image = tf.slice(image, tf.stack([y0, x0, 0]), tf.stack([ch, cw, 3]))
    elif mode == "pad":
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        scale = tf.minimum(height / h, width / w)
        nh = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, height)
        nw = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, width)
        inner = tf.image.resize(image, tf.stack([nh, nw]), method="bilinear", antialias=True)
        top, left = (height - nh) // 2, (width - nw) // 2
        out = tf.pad(inner, [[top, height - nh - top], [left, width - nw - left], [0, 0]])
        return tf.ensure_shape(out, [height, width, 3])
    out = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    return tf.clip_by_value(out, 0.0, 255.0)


@dataclasses.dataclass
class Renderer:
    """Applies sampled params, resizes and encodes: uint8 RGB image to record payload."""

    ops: tuple[Op, ...]
    size: tuple[int, int]
    resize_mode: str
    preprocessing: Preprocessing
    encoding: str
    jpeg_quality: int = 95
    _fn: Any = dataclasses.field(default=None, repr=False)
    trace_count: int = 0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize mode {self.resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        enc.check_encoding(self.encoding)
        self.width_params = max([len(op.param_names) for op in self.ops] + [1])

    def pack(self, sampled: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Sampled params as tensors: applied flags [n] and values [n, P] (float32)."""
        applied = np.zeros([len(self.ops)], dtype=bool)
        values = np.zeros([len(self.ops), self.width_params], dtype=np.float32)
        if len(sampled) != len(self.ops):
            raise ValueError(f"expected params for {len(self.ops)} ops, got {len(sampled)}")
        for i, (op, entry) in enumerate(zip(self.ops, sampled, strict=True)):
            if entry["op"] != op.name:
                raise ValueError(f"params[{i}] are for {entry['op']!r}, not {op.name!r}")
            applied[i] = bool(entry["applied"])
            for j, name in enumerate(op.param_names):
                values[i, j] = entry["params"].get(name, 0.0)
        return applied, values

    def _build(self) -> Any:
        import tensorflow as tf

        n = len(self.ops)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.uint8),
                tf.TensorSpec([n], tf.bool),
                tf.TensorSpec([n, self.width_params], tf.float32),
            ]
        )
        def render(image: Any, applied: Any, values: Any) -> Any:
            self.trace_count += 1
            x = tf.cast(image, tf.float32)
            for i, op in enumerate(self.ops):
                params = {name: values[i, j] for j, name in enumerate(op.param_names)}
                x = tf.cond(
                    applied[i],
                    lambda op=op, x=x, params=params: tf.ensure_shape(op.apply(x, params), [None, None, 3]),
                    lambda x=x: x,
                )
            x = resize(x, self.size, self.resize_mode)
            return enc.encode(x, self.encoding, self.preprocessing, self.jpeg_quality)

        return render

    def render(self, image: Any, sampled: list[dict[str, Any]]) -> bytes:
        """The record payload for ``image`` (uint8 [H, W, 3]) under ``sampled`` params."""
        if self._fn is None:
            self._fn = self._build()
        applied, values = self.pack(sampled)
        return enc.to_payload(self._fn(image, applied, values), self.encoding)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fn"] = None
        return state
