"""Sampling and applying an op list: parameters on the host, pixels in one traced TF function.

``Augmenter.sample`` draws every op's parameters for (key, copy) from its own
counter-based stream (seed, key, copy, op index) and returns them as plain
JSON-able dicts that go into the record. ``Renderer`` applies such parameters,
resizes to the output size and encodes, in one ``tf.function`` with an input
signature, so images of any size and batches of any length share one trace.
Given a record's params it reproduces the record's pixels.

Batches hold same-size images. The op list is cut into segments: runs of ops
that keep every image the same size are applied to the whole batch at once
(one kernel call per op, what a GPU wants); a run that starts with a crop
(sizes then differ per image) is applied image by image inside the same
traced function, up to an op that makes sizes uniform again (a ``resize`` or
a resizing ``random_resized_crop`` with p = 1) or the final resize. Every op's
batched result for an image equals its result alone, so batching never
changes the bytes (tested).

A record whose params carry a decode plan (``transforms.window``: a JPEG's
crop window decoded at a DCT downscale) is rendered from that window: the
planned crop then takes the whole window and resizes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import numpy as np

from transforms import encoding as enc
from transforms.errors import ConfigError
from transforms.ops import Op, Shape
from transforms.ops.crops import RESIZE_MODES, resize_images
from transforms.preprocess import Preprocessing
from transforms.rng import Rng
from transforms.tfcall import FlatCall
from transforms.window import plan_of


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


DEVICES = ("auto", "cpu", "gpu")


class RangeError(ValueError):
    """A record whose pixels left the range they must be in (a bug, never written silently)."""


def _stats(images: Any) -> Any:
    """Per image: [min, max, 1.0 if every value is finite else 0.0] as float32 [B, 3] (of float32 or uint8)."""
    import tensorflow as tf

    if images.dtype == tf.uint8:  # finite by type; min and max without a float32 copy
        low, high = (tf.cast(f(images, axis=[1, 2, 3]), tf.float32) for f in (tf.reduce_min, tf.reduce_max))
        return tf.stack([low, high, tf.ones_like(low)], axis=1)
    # x * 0 sums to 0 when every value is finite and to NaN otherwise: one pass instead of a test and a select.
    # Min and max only matter (and are only reported as such) when the image is finite.
    finite = tf.math.is_finite(tf.reduce_sum(images * 0.0, axis=[1, 2, 3]))
    return tf.stack(
        [tf.reduce_min(images, axis=[1, 2, 3]), tf.reduce_max(images, axis=[1, 2, 3]), tf.cast(finite, tf.float32)],
        axis=1,
    )


def device_name(device: str) -> str | None:
    """The TF device string for ``--device``; a clear error when a GPU is asked for and none is visible."""
    if device not in DEVICES:
        raise ConfigError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return None
    if device == "cpu":
        return "/CPU:0"
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise ConfigError(
            "--device gpu: TensorFlow sees no GPU on this machine "
            "(check the CUDA driver and `pip install tensorflow[and-cuda]`), or use --device auto"
        )
    return "/GPU:0"


def _host_view(tensor: Any) -> Any:
    """The tensor's values as NumPy without ``.numpy()``'s copy (a read-only view, TensorFlow's documented way).

    A batch of float32 payloads is 600 KB per image; the copy cost 0.3 ms per record, measured. String
    tensors (JPEG/PNG payloads) have no buffer view and are converted as usual.
    """
    import tensorflow as tf

    if tensor.dtype == tf.string:
        return tensor.numpy()
    return np.asarray(memoryview(tensor))


def _on_device(device: str | None) -> contextlib.AbstractContextManager[Any]:
    """Traced ops placed on ``device`` (a TF device string), or where TensorFlow places them (None)."""
    import tensorflow as tf

    return tf.device(device) if device is not None else contextlib.nullcontext()


def _flat_call(function: Any) -> FlatCall:
    """The traced function's concrete function through its flat call: no trace lookup, argument binding or spec
    checks per call (``transforms.tfcall``; ``render_checked`` checks the shapes it passes)."""
    return FlatCall(function.get_concrete_function())


def _unknown_batch(tensor: Any) -> Any:
    """Traced: ``tensor`` with its first dimension unknown to shape inference (the values pass unchanged)."""
    import tensorflow as tf

    return tf.raw_ops.PlaceholderWithDefault(input=tensor, shape=[None, *tensor.shape[1:]])


def segments(ops: tuple[Op, ...]) -> list[tuple[str, int, int]]:
    """Cuts the op list into ("batch" | "each", start, stop) runs; see the module docstring."""
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(ops)
    while i < n:
        start = i
        if _one_at_a_time(ops[i]):
            i += 1
            if not _uniform_after(ops[start]):  # sizes differ until an op makes them uniform again
                while i < n and not _uniform_after(ops[i]):
                    i += 1
                if i < n:  # the op that makes sizes uniform again ends the run
                    i += 1
            out.append(("each", start, i))
        else:
            while i < n and not _one_at_a_time(ops[i]):
                i += 1
            out.append(("batch", start, i))
    return out


def _one_at_a_time(op: Op) -> bool:
    """True when the op must see one image per call: its output size varies, or each image has its own window."""
    return op.changes_shape and (op.per_image or not _uniform_after(op))


def _uniform_after(op: Op) -> bool:
    """True when every image leaves ``op`` with the same size (a fixed-size resize applied always)."""
    return op.changes_shape and op.p >= 1.0 and op.fixed_size() is not None


@dataclasses.dataclass
class Renderer:
    """Applies sampled params, resizes and encodes: uint8 RGB images to record payloads."""

    ops: tuple[Op, ...]
    size: tuple[int, int]
    resize_mode: str
    preprocessing: Preprocessing
    encoding: str
    jpeg_quality: int = 95
    device: str = "auto"
    _fns: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)  # by "one image per call", or encoded
    trace_count: int = 0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize mode {self.resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        enc.check_encoding(self.encoding)
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r}: choose one of {', '.join(DEVICES)}")
        self.width_params = max([len(op.layout()) for op in self.ops] + [1])
        self.plan = segments(self.ops)
        # One image needs no map_fn loop when the per-image run (if any) is the last: it then ends in the final
        # resize, whose fixed size both paths know. A run that ends earlier would leave its output's static size
        # known here and unknown after map_fn, and Grappler's rewrites follow static shapes (the bytes could part).
        each = [stop for kind, _, stop in self.plan if kind == "each"]
        self.single_path = each == [len(self.ops)]

    def pack(self, sampled: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Sampled params as arrays: applied flags [n] and values [n, P] (float32)."""
        applied = np.zeros([len(self.ops)], dtype=bool)
        values = np.zeros([len(self.ops), self.width_params], dtype=np.float32)
        if len(sampled) != len(self.ops):
            raise ValueError(f"expected params for {len(self.ops)} ops, got {len(sampled)}")
        plan = plan_of(sampled)
        for i, (op, entry) in enumerate(zip(self.ops, sampled, strict=True)):
            if entry["op"] != op.name:
                raise ValueError(f"params[{i}] are for {entry['op']!r}, not {op.name!r}")
            if entry.get("version", op.version) != op.version:
                raise ValueError(
                    f"params[{i}] are for {op.name} version {entry['version']}, this is version {op.version}"
                )
            applied[i] = bool(entry["applied"])
            if applied[i]:
                params = entry["params"]
                if plan is not None and plan.op_index == i:  # the image is the decoded window: crop all of it
                    height, width = plan.upright_size()
                    params = {**params, "y": 0, "x": 0, "height": height, "width": width}
                row = op.pack(params)
                values[i, : len(row)] = row
        return applied, values

    def _apply_op(self, i: int, x: Any, applied: Any, values: Any, single: bool = False) -> Any:
        """Op ``i`` on batch ``x`` where ``applied`` [B] says so; skipped when no image needs it.

        ``single``: ``x`` holds one image, so a branch alone decides (no per-image select pass).
        """
        import tensorflow as tf

        op = self.ops[i]
        if op.p >= 1.0:
            return op.apply_batch(x, op.unpack(values[:, i]))
        # Not applied: the image as is, as float32 where the op returns float32 from uint8 (a resizing crop).
        skip = (lambda: tf.cast(x, tf.float32)) if op.float_output() else (lambda: x)
        if op.changes_shape or single:  # shape-changing ops are only ever called with one image
            return tf.cond(applied[0, i], lambda: op.apply_batch(x, op.unpack(values[:, i])), skip)

        def some() -> Any:
            out = op.apply_batch(x, op.unpack(values[:, i]))
            return tf.where(applied[:, i][:, tf.newaxis, tf.newaxis, tf.newaxis], out, x)

        return tf.cond(tf.reduce_any(applied[:, i]), some, lambda: x)

    # --- the traced render functions: one builder per variant, sharing the steps below -----------------------------

    def _build_batch(self) -> FlatCall:
        """Same-size uint8 images [B, H, W, 3], any B: per-image runs loop over the batch with ``map_fn``."""
        return _flat_call(self._traced_pixels(single=False))

    def _build_single(self) -> FlatCall:
        """One uint8 image [1, H, W, 3], for ``single_path`` plans: the last (per-image) run without a loop."""
        return _flat_call(self._traced_pixels(single=True))

    def _build_encoded(self, alpha_fill: float) -> FlatCall:
        """Encoded JPEG / 8-bit PNG bytes of any sizes (``render_encoded``): each decoded, then rendered as alone."""
        import tensorflow as tf

        from transforms.decode import decode_rgb, to_rgb
        from transforms.formats import orient_graph
        from transforms.window import decode_window_graph

        n = len(self.ops)
        height, width = self.size
        device = device_name(self.device)
        single = self.single_path

        def decode_and_render(data: Any, size: Any, orientation: Any, row: Any, flags: Any, vals: Any) -> Any:
            """One encoded image: decoded as ``Decoder.decode_for`` does, checked against its size, rendered alone."""
            image = tf.cond(
                row[0] > 0,
                lambda: to_rgb(decode_window_graph(data, row), alpha_fill),
                lambda: decode_rgb(data, alpha_fill),
            )
            image = orient_graph(image, orientation)
            check = tf.debugging.assert_equal(tf.shape(image)[:2], size, message="decoded size differs from header")
            with tf.control_dependencies([check]):
                image = tf.identity(image)
            # A batch of one whose size is unknown when traced, as ``render_checked``'s is: ops after a per-image
            # run see the same static shapes on both paths (with a static 1, contrast's mean rounded differently).
            images, flags, vals = (_unknown_batch(t[tf.newaxis]) for t in (image, flags, vals))
            payload, stats = self._body(images, flags, vals, single, one_image=True)
            return payload[0], stats[0]

        payload_spec = (
            tf.TensorSpec([], tf.string)
            if self.encoding in ("jpeg", "png")
            else tf.TensorSpec([height, width, 3], enc.stored_dtype(self.encoding))
        )

        @tf.function(
            autograph=False,
            input_signature=[
                tf.TensorSpec([None], tf.string),
                tf.TensorSpec([None, 2], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, 5], tf.int32),
                tf.TensorSpec([None, n], tf.bool),
                tf.TensorSpec([None, n, self.width_params], tf.float32),
            ],
        )
        def render_encoded(data: Any, sizes: Any, orientations: Any, rows: Any, applied: Any, values: Any) -> Any:
            self.trace_count += 1
            with _on_device(device):
                return tf.map_fn(
                    lambda elem: decode_and_render(*elem),
                    (data, sizes, orientations, rows, applied, values),
                    fn_output_signature=(payload_spec, tf.TensorSpec([6], tf.float32)),
                )

        return _flat_call(render_encoded)

    def _traced_pixels(self, single: bool) -> Any:
        """The ``tf.function`` over uint8 pixels, applied flags and param values (``_build_batch``/``_single``)."""
        import tensorflow as tf

        device = device_name(self.device)

        @tf.function(
            autograph=False,
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8),
                tf.TensorSpec([None, len(self.ops)], tf.bool),
                tf.TensorSpec([None, len(self.ops), self.width_params], tf.float32),
            ],
        )
        def render(images: Any, applied: Any, values: Any) -> Any:
            self.trace_count += 1
            with _on_device(device):
                return self._body(images, applied, values, single)

        return render

    def _body(self, images: Any, applied: Any, values: Any, single: bool, one_image: bool = False) -> tuple[Any, Any]:
        """Traced: uint8 images to (payloads, stats [B, 6]): the ops and final resize, then what is written."""
        x, before = self._augment(images, applied, values, single, one_image)
        return self._payloads(x, before)

    def _augment(
        self, images: Any, applied: Any, values: Any, single: bool, one_image: bool = False
    ) -> tuple[Any, Any]:
        """Traced: every op run of the plan, then the final resize: float32 [B, H, W, 3] and range stats [B, 3].

        ``single``: ``images`` holds one image and the plan's only per-image run is the last (``single_path``).
        ``one_image``: ``images`` holds one image whatever its static batch size (``render_encoded``'s loop), so
        the ops on the whole batch are chosen by a branch on its flag, not applied to it and selected per pixel:
        the same values, without a broadcast select that copied the image once per op (about a fifth of a
        worker's CPU on ImageNet-size photos, measured with ``perf``).
        """
        import tensorflow as tf

        height, width = self.size
        x = images
        done_final = False
        for kind, start, stop in self.plan:
            if kind == "batch":
                for i in range(start, stop):
                    x = self._apply_op(i, self._as_float(x, i), applied, values, single=one_image)
                continue
            last = stop == len(self.ops)
            if single:  # the last run, on a batch of one: no map_fn loop, the same ops and static shapes
                x, before = self._each_alone(images, x, applied, values, start, stop, last)
                done_final = True
                continue
            x, before = self._each_looped(x, applied, values, start, stop, last)
            done_final = last
        if not done_final:
            x, before = self._final(x)
        return tf.ensure_shape(x, [None, height, width, 3]), before

    def _each_alone(
        self, images: Any, x: Any, applied: Any, values: Any, start: int, stop: int, last: bool
    ) -> tuple[Any, Any]:
        """Traced: a per-image run on the batch of one, unlooped; the batch size stays unknown as after ``map_fn``."""
        import tensorflow as tf

        height, width = self.size
        y, stats = self._run_each(x[0], applied[0], values[0], start, stop, last)
        batch = tf.shape(images)[:1]  # unknown when traced, as map_fn's output batch is
        x = tf.reshape(y, tf.concat([batch, [height, width, 3]], axis=0))
        before = tf.reshape(stats, tf.concat([batch, [3]], axis=0))
        return x, before

    def _each_looped(self, x: Any, applied: Any, values: Any, start: int, stop: int, last: bool) -> tuple[Any, Any]:
        """Traced: a per-image run, one image at a time with ``map_fn`` (sizes differ per image inside it)."""
        import tensorflow as tf

        return tf.map_fn(
            lambda elem: self._run_each(elem[0], elem[1], elem[2], start, stop, last),
            (x, applied, values),
            fn_output_signature=(
                tf.TensorSpec([None, None, 3], tf.float32),
                tf.TensorSpec([3], tf.float32),
            ),
        )

    def _run_each(self, one: Any, flags: Any, vals: Any, start: int, stop: int, last: bool) -> tuple[Any, Any]:
        """Traced: ops ``start:stop`` on one image [H, W, 3] (static batch 1 inside), then the final resize if last."""
        import tensorflow as tf

        y = one[tf.newaxis]
        for i in range(start, stop):
            y = self._apply_op(i, self._as_float(y, i), flags[tf.newaxis], vals[tf.newaxis], single=True)
        if last:
            y, stats = self._final(y)
        else:
            y, stats = self._as_float(y), tf.zeros([1, 3], tf.float32)
        return y[0], stats[0]

    def _as_float(self, x: Any, i: int | None = None) -> Any:
        """Traced: ``x`` as float32, except before an op (op ``i``) that takes uint8 as it is.

        Flips and crops run on the uint8 input (same values, 4x fewer bytes), and resizing ops read it as float32
        themselves (``Op.float_output``); the first other op gets float32.
        """
        import tensorflow as tf

        if x.dtype == tf.float32 or (i is not None and (self.ops[i].moves_pixels_only or self.ops[i].float_output())):
            return x
        return tf.cast(x, tf.float32)

    def _final(self, x: Any) -> tuple[Any, Any]:
        """Traced: the final resize (of uint8 or float32), and the range guard's stats taken before it clips."""
        return resize_images(x, self.size, self.resize_mode), _stats(x)

    def _payloads(self, x: Any, before: Any) -> tuple[Any, Any]:
        """Traced: resized float32 pixels to record payloads, with the stats [B, 6] the range guards read."""
        import tensorflow as tf

        if enc.stores_preprocessed(self.encoding):  # the model's input is what is written: check it
            model_input = self.preprocessing(x)
            return tf.cast(model_input, self.encoding), tf.concat([before, _stats(model_input)], axis=1)
        # Pixels are written and the reader preprocesses them. Finite [0, 255] pixels (the guard above, then
        # the resize's clip) map into the model's declared range by construction: there is nothing to check.
        after = tf.tile(tf.constant([[0.0, 0.0, 1.0]]), tf.stack([tf.shape(x)[0], 1]))
        if self.encoding in ("jpeg", "png"):
            payload = tf.map_fn(
                lambda im: enc.encode(im, self.encoding, self.preprocessing, self.jpeg_quality),
                x,
                fn_output_signature=tf.TensorSpec([], tf.string),
            )
        else:
            payload = enc.encode(x, self.encoding, self.preprocessing, self.jpeg_quality)
        return payload, tf.concat([before, after], axis=1)  # "after": finite, never compared (see below)

    def render_checked(self, images: Any, sampled: list[list[dict[str, Any]]]) -> list[bytes | RangeError]:
        """Payloads for same-size uint8 images [B, H, W, 3]; a ``RangeError`` where a guard failed.

        Guards: uint8 input is [0, 255] by type; what the ops produce must be
        finite and in [0, 255] (checked before the final resize clips it); where
        the record holds the model's input (float encodings), it must be finite
        and in the model's declared range.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise RangeError(f"images entering augmentation must be uint8 [0, 255], got {images.dtype}")
        if images.ndim != 4 or images.shape[-1] != 3 or len(sampled) != len(images):
            raise ValueError(f"expected images [B, H, W, 3] and B params, got {images.shape} and {len(sampled)}")
        for one in sampled:
            plan = plan_of(one)
            if plan is not None and plan.upright_size() != images.shape[1:3]:
                raise ValueError(
                    f"params plan a decoded window of {plan.upright_size()}, but the image is {images.shape[1:3]}: "
                    "decode it with Decoder.decode_for"
                )
        single = len(images) == 1 and self.single_path
        if self._fns.get(single) is None:
            self._fns[single] = self._build_single() if single else self._build_batch()
        applied, values = self._packed(sampled)
        return self._checked(*self._fns[single](images, applied, values))

    def render_encoded(
        self,
        data: list[bytes],
        shapes: list[tuple[int, int]],
        orientations: list[int],
        sampled: list[Any],
        alpha_fill: float,
    ) -> list[bytes | RangeError]:
        """Payloads straight from encoded JPEG / 8-bit PNG bytes, in one call for images of any sizes.

        ``shapes`` and ``orientations`` come from the headers
        (``decode.header_shape``); the decoded image must have that size, else
        the call raises (the caller then decodes and renders the usual way).
        Each image is decoded as ``Decoder.decode_for`` does (the planned JPEG
        window where its params have a plan) and rendered as alone, so the
        bytes equal ``render_checked`` on the decoded image (tested).
        """
        if len(data) != len(shapes) or len(data) != len(orientations) or len(data) != len(sampled):
            raise ValueError("render_encoded: data, shapes, orientations and params must have the same length")
        key = ("encoded", float(alpha_fill))
        if self._fns.get(key) is None:
            self._fns[key] = self._build_encoded(float(alpha_fill))
        applied, values = self._packed(sampled)
        rows = np.zeros([len(data), 5], np.int32)  # [ratio, y, x, h, w]; ratio 0: the whole image
        sizes = np.asarray(shapes, np.int32).reshape(-1, 2).copy()
        turns = np.asarray(orientations, np.int32).reshape(-1).copy()
        for j, one in enumerate(sampled):
            plan = plan_of(one)
            if plan is not None:
                rows[j], sizes[j], turns[j] = plan.row(), plan.upright_size(), plan.orientation
        return self._checked(*self._fns[key](np.asarray(data, object), sizes, turns, rows, applied, values))

    def _packed(self, sampled: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        packed = [self.pack(s) for s in sampled]
        return np.stack([a for a, _ in packed]), np.stack([v for _, v in packed])

    def _checked(self, payloads: Any, stats: Any) -> list[bytes | RangeError]:
        """The range guards' verdict per image: its payload, or a ``RangeError`` (see ``render_checked``)."""
        low, high = self.preprocessing.output_range
        slack = 1e-4 * (high - low)
        check_model_input = enc.stores_preprocessed(self.encoding)
        out: list[bytes | RangeError] = []
        for item, (b_min, b_max, b_ok, a_min, a_max, a_ok) in zip(_host_view(payloads), stats.numpy(), strict=True):
            # Min and max of a non-finite image depend on how a reduction met the NaN: not reported.
            if not b_ok:
                out.append(RangeError("pixels after augmentation are not finite: an op produced NaN or inf"))
            elif b_min < -1e-3 or b_max > 255.001:
                out.append(
                    RangeError(
                        f"pixels after augmentation outside [0, 255] (min {b_min:g}, max {b_max:g}): "
                        "an op produced out-of-range values"
                    )
                )
            elif not check_model_input:
                out.append(enc.to_payload(item, self.encoding))
            elif not a_ok:
                out.append(RangeError(f"preprocessed values are not finite ({self.preprocessing.name!r})"))
            elif a_min < low - slack or a_max > high + slack:
                out.append(
                    RangeError(
                        f"preprocessed values outside {self.preprocessing.name!r}'s declared range "
                        f"[{low:g}, {high:g}] (min {a_min:g}, max {a_max:g})"
                    )
                )
            else:
                out.append(enc.to_payload(item, self.encoding))
        return out

    def render_batch(self, images: Any, sampled: list[list[dict[str, Any]]]) -> list[bytes]:
        """Record payloads for same-size uint8 images [B, H, W, 3]; raises ``RangeError`` if a guard fails."""
        out = self.render_checked(images, sampled)
        for item in out:
            if isinstance(item, RangeError):
                raise item
        return out  # type: ignore[return-value]

    def render(self, image: Any, sampled: list[dict[str, Any]]) -> bytes:
        """The record payload for one uint8 [H, W, 3] image under ``sampled`` params."""
        return self.render_batch(np.asarray(image)[np.newaxis], [sampled])[0]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fns"] = {}
        return state
