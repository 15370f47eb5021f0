"""Calling a traced function once per record without tf.function's Python on every call.

A ``ConcreteFunction`` call binds its arguments to the signature, converts
each to a tensor and checks it against the input spec before it executes:
about 0.1-0.2 ms of Python per call, measured (a trivial function: 420 us
called with NumPy arrays, 230 us through its flat call with tensors made
here). The decoder and the renderer call theirs once per record or batch, so
that is paid per image. ``FlatCall`` makes the tensors itself, checks each
against the dtype its input is declared with, and calls the function's flat
entry point.

The flat entry point is private to TensorFlow (``_call_flat``); the pinned
TensorFlow (2.16) has it, and where a version does not, the ordinary call is
used (same results, slower). Shapes are not checked against the input spec
on the flat path, so callers check the shapes they pass (the renderer does).
"""

from __future__ import annotations

from typing import Any


class FlatCall:
    """``FlatCall(concrete)(*args)`` == ``concrete(*args)`` for arguments of the declared dtypes."""

    def __init__(self, concrete: Any) -> None:
        import tensorflow as tf

        self.concrete = concrete
        self._dtypes = [spec.dtype for spec in concrete.structured_input_signature[0]]
        self._flat = getattr(concrete, "_call_flat", None)
        self._constant = tf.constant
        self._tensor = tf.Tensor

    def __call__(self, *args: Any) -> Any:
        if self._flat is None or len(args) != len(self._dtypes):
            return self.concrete(*args)
        tensors = [arg if isinstance(arg, self._tensor) else self._constant(arg) for arg in args]
        for tensor, dtype in zip(tensors, self._dtypes, strict=True):
            if tensor.dtype != dtype:  # never cast silently: the ordinary call would refuse it too
                raise TypeError(f"{self.concrete.name}: expected {dtype.name}, got {tensor.dtype.name}")
        return self._flat(tensors, self.concrete.captured_inputs)
