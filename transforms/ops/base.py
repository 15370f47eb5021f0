"""The declaration every augmentation op follows, and the registry of ops by name.

This module imports no op module: each op module imports it and registers its
ops with ``@register`` when it is imported, and ``transforms/ops/__init__.py``
imports every op module. Python runs that ``__init__`` before any module under
``transforms.ops``, so whoever can reach ``Op`` sees the full registry, and the
lookups below (re-exported by ``transforms.ops``) just read it.

An op is a frozen dataclass: its fields are its configuration (validated when
it is built), ``sample`` draws plain JSON-able parameters on the host from a
counter-based stream, and ``apply_batch`` applies given parameters with
TensorFlow ops only (so it runs on a GPU when there is one, and can replay a
record). Images are float32 in [0, 255] before and after every op.

Writing an op:

- class attributes ``name`` (registry key), ``version`` (bump when the pixels
  or the sampling change), ``param_names`` (the scalar params, in the order
  they are packed into a float32 row for the traced function), and
  ``changes_shape`` (True when the output size may differ from the input's),
  ``per_image`` (True when each image has its own window: one image per call);
- dataclass fields with defaults: the configuration, checked in ``validate``
  with ``check_range``/``check_interval``/``check_choice``;
- ``sample(rng, shape) -> {param: number}``: host side, no TensorFlow; every
  draw comes from ``rng``. An op whose params are each drawn from one range
  field declares ``draws`` instead and gets ``sample``, ``param_bounds``,
  ``neutral_params`` and ``param_names`` from it;
- ``param_bounds(shape)``: the interval each sampled param lies in (tests and
  ``augbeam ops`` use it); ``neutral_params(shape)``: params that leave the
  image unchanged, or None when there are none (a flip);
- ``apply_batch(images, params)``: ``images`` float32 [B, H, W, 3], ``params``
  name -> float32 [B] tensors, one value per image; returns [B, H', W', 3] in
  [0, 255]. Ops with ``changes_shape`` are only called with B == 1.
  ``apply(image, params)`` (one image, plain params) is derived from it, so
  the per-image and batched paths run the same code.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
from typing import Any, ClassVar

from transforms.errors import ConfigError
from transforms.rng import Rng

Shape = tuple[int, int, int]
Params = dict[str, Any]  # JSON values: numbers for most ops, lists of layers for composites

_REGISTRY: dict[str, type[Op]] = {}
# The largest magnitude a config number may have: 2**53, where floats stop being exact integers. No op accepts
# anything near it (sizes stop at 2**16), and it keeps a 1000-digit integer from reaching float() (an
# OverflowError) or an error message (a 1000-digit line).
MAX_NUMBER = 2**53
# The most pixels an op that sets a size (``resize``, ``random_resized_crop``) may make: 8192 x 8192, 768 MiB
# per image as the float32 the ops work on, under the 89 M pixels a job decodes by default (``--max-pixels``).
# Each side alone may still be up to 16384, for long strips.
MAX_OP_PIXELS = 1 << 26


@dataclasses.dataclass(frozen=True)
class Op:
    """Base of all ops. ``p`` is the probability that the op is applied at all."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    # Parameter names in the order they are packed into a tensor for tracing.
    param_names: ClassVar[tuple[str, ...]] = ()
    # True when the output size may differ from the input's (crops, resize).
    changes_shape: ClassVar[bool] = False
    # True when each image gets its own window (crops): apply_batch is called with one image at a time, even
    # when every output has the same size (``random_resized_crop``, which then ends a per-image run).
    per_image: ClassVar[bool] = False
    # True when the op only moves or selects pixels (flips, crops): it gives the same values on uint8 as on
    # float32, so the renderer runs it before converting, on 4x fewer bytes.
    moves_pixels_only: ClassVar[bool] = False
    # Params drawn each from one range field, declared once: (param, field, neutral value or None,
    # "uniform" | "log"). An op that declares them gets sample, param_bounds, neutral_params and
    # param_names from them (in this order, which is the order of the draws).
    draws: ClassVar[tuple[tuple[str, str, float | None, str], ...]] = ()

    p: float = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "draws" in cls.__dict__:
            cls.param_names = tuple(d[0] for d in cls.draws)

    def __post_init__(self) -> None:
        check_range(self, "p", self.p, 0.0, 1.0)
        self.validate()

    def validate(self) -> None:
        """Checks the op's own fields; raises ``ConfigError`` naming the field."""

    def sample(self, rng: Rng, shape: Shape) -> Params:
        """Draws this op's parameters for an image of ``shape`` (host side, no TF)."""
        return {
            param: (rng.log_uniform if dist == "log" else rng.uniform)(*getattr(self, field))
            for param, field, _neutral, dist in self.draws
        }

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        """The image shape after the op; geometric ops that crop override this."""
        return shape

    def fixed_size(self) -> tuple[int, int] | None:
        """The (height, width) every output has whatever the input, for ops that set it (``resize``)."""
        return None

    def float_output(self) -> bool:
        """True when ``apply_batch`` takes uint8 and returns float32, the values it returns for that input as float32.

        The renderer then hands the op uint8 (a resizing crop, a resize): no float32 copy of a large input.
        """
        return False

    def with_output_size(self, size: tuple[int, int]) -> Op:
        """The op with any size that means "the job's output size" made concrete (most ops have none)."""
        return self

    def param_bounds(self, shape: Shape) -> dict[str, tuple[float, float]]:
        """The closed interval each sampled param lies in, for an image of ``shape``."""
        return {param: getattr(self, field) for param, field, _neutral, _dist in self.draws}

    def neutral_params(self, shape: Shape) -> Params | None:
        """Params that leave the image unchanged, or None when the op has none."""
        if not self.draws or any(neutral is None for _p, _f, neutral, _d in self.draws):
            return None
        return {param: neutral for param, _field, neutral, _dist in self.draws if neutral is not None}

    def layout(self) -> tuple[str, ...]:
        """Names of the packed float32 row's columns (composites override)."""
        return self.param_names

    def pack(self, params: dict[str, Any]) -> list[float]:
        """Sampled params as the row the traced function receives."""
        return [float(params.get(name, 0.0)) for name in self.layout()]

    def unpack(self, rows: Any) -> dict[str, Any]:
        """Columns of ``rows`` (float32 [B, >= len(layout)]) as name -> [B] tensors."""
        return {name: rows[:, j] for j, name in enumerate(self.layout())}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        """Applies per-image ``params`` ([B] tensors) to float32 [B, H, W, 3] images."""
        raise NotImplementedError

    def apply(self, image: Any, params: dict[str, Any]) -> Any:
        """Applies plain ``params`` (as sampled or as recorded) to one float32 [H, W, 3] image.

        Runs traced (one ``tf.function`` per op config, any image size), as the
        pipeline does: eager TensorFlow can round differently from a graph that
        Grappler has rewritten.
        """
        import tensorflow as tf

        row = tf.constant([self.pack(params) or [0.0]], tf.float32)
        return _traced_apply(self)(tf.cast(image, tf.float32), row)

    def to_config(self) -> dict[str, Any]:
        """The op as a plain dict, every field resolved (lists for ranges)."""
        out: dict[str, Any] = {"op": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: str) -> Op:
        """Builds the op from a config mapping whose keys were checked against its fields."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {key: _coerce(f"{where}.{key}", value, fields[key].default) for key, value in entry.items()}
        return cls(**kwargs)


_TRACED: dict[Op, Any] = {}
atexit.register(_TRACED.clear)  # drop traced functions before TensorFlow tears down


def _traced_apply(op: Op) -> Any:
    """The op's one-image apply as a ``tf.function`` with an input signature, cached per config."""
    fn = _TRACED.get(op)
    if fn is None:
        import tensorflow as tf

        width = max(len(op.layout()), 1)

        @tf.function(
            autograph=False,
            input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([1, width], tf.float32)],
        )
        def fn(image: Any, row: Any) -> Any:
            return op.apply_batch(image[tf.newaxis], op.unpack(row))[0]

        _TRACED[op] = fn
    return fn


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: makes an op available by its ``name`` in configs."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise TypeError(f"op {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_ops() -> dict[str, type[Op]]:
    """All ops by name: every builtin op (``transforms.ops`` imports them all) plus any registered since."""
    return dict(_REGISTRY)


def op_from_config(entry: Any, where: str = "ops") -> Op:
    """Builds an op from ``{"op": name, field: value, ...}``; unknown names or keys are errors."""
    if not isinstance(entry, dict) or "op" not in entry:
        raise ConfigError(f"{where}: each op must be a mapping with an 'op' key, got {entry!r}")
    name = entry["op"]
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"{where}: unknown op {name!r}; known ops: {known}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(entry) - set(fields) - {"op"})
    if unknown:
        raise ConfigError(f"{where} ({name}): unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    try:
        return cls.from_config({k: v for k, v in entry.items() if k != "op"}, f"{where} ({name})")
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where} ({name}): {exc}") from None


def _coerce(where: str, value: Any, default: Any) -> Any:
    """Checks a config value against the type of the field's default."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ConfigError(f"{where}: expected a list of {len(default)} numbers, got {value!r}")
        return tuple(_coerce(where, v, d) for v, d in zip(value, default, strict=True))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        value = config_number(where, value)
        if isinstance(default, int) and not isinstance(default, bool):
            if value != int(value):
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return int(value)
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def config_number(where: str, value: Any) -> int | float:
    """``value`` if it is a finite number within +-``MAX_NUMBER``; else one ``ConfigError`` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if abs(value) > MAX_NUMBER:
        raise ConfigError(
            f"{where}: {shown_number(value)} is out of range (no op takes a number beyond +-2**53); give a value in "
            "the field's range"
        )
    return value


def shown_number(value: int | float) -> str:
    """A number as an error message shows it: a huge integer by its size, not its thousand digits."""
    if isinstance(value, int) and abs(value) > MAX_NUMBER:
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def check_range(op: Op, field: str, value: float, low: float, high: float) -> None:
    """Raises ``ConfigError`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ConfigError(f"{op.name}.{field} must be in [{low}, {high}], got {value}")


def check_area(op: Op, height: int, width: int) -> None:
    """Raises unless ``height`` x ``width`` is at most ``MAX_OP_PIXELS`` (each side is range-checked on its own)."""
    if height * width > MAX_OP_PIXELS:
        raise ConfigError(
            f"{op.name}: height x width = {height} x {width} = {height * width} pixels, over the bound of "
            f"{MAX_OP_PIXELS} (8192 x 8192, 768 MiB per image as float32); use a smaller size"
        )


def check_interval(op: Op, field: str, value: tuple, low: float, high: float) -> None:
    """Raises unless ``value`` is an ordered pair inside [low, high]."""
    a, b = value
    if not (low <= a <= b <= high):
        raise ConfigError(f"{op.name}.{field} must be [min, max] with {low} <= min <= max <= {high}, got [{a}, {b}]")


def check_choice(op: Op, field: str, value: str, choices: tuple[str, ...]) -> None:
    """Raises unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{op.name}.{field} must be one of {', '.join(choices)}, got {value!r}")
