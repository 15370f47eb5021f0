"""Composition: ``one_of`` and ``some_of``, and the layered choice that the policies build on.

A composite op holds child ops and draws, from its own stream, which child
runs in each of its layers: ``one_of`` has one layer, ``some_of(n)`` has n
(distinct children, applied in the listed order unless ``random_order``).
A chosen child still honours its own ``p``. The record stores, per layer,
the child's index, name and params, so a record says exactly what ran.

In the traced function a layer is a choice column (-1: nothing ran) plus one
block of columns per child. On a batch, each child runs only if some image
chose it, and ``tf.where`` keeps each image's own choice; on one image whose
size may change, ``tf.switch_case`` runs just the chosen child.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from transforms.errors import ConfigError
from transforms.ops.base import Op, Params, Shape, config_number, op_from_config, register
from transforms.rng import Rng


@dataclasses.dataclass(frozen=True)
class Layered(Op):
    """Base of ops that apply, in each of ``num_layers()`` layers, at most one of ``branches()``."""

    def branches(self) -> tuple[Op, ...]:
        raise NotImplementedError

    def num_layers(self) -> int:
        raise NotImplementedError

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        """Per layer: {"index": i or -1, "op": name, "applied": bool, "params": {...}} (host side)."""
        raise NotImplementedError

    @property
    def changes_shape(self) -> bool:  # type: ignore[override]
        return any(op.changes_shape for op in self.branches())

    def sample(self, rng: Rng, shape: Shape) -> Params:
        return {"layers": self.sample_layers(rng, shape)}

    def run_branch(self, rng: Rng, index: int, shape: Shape, **extra: Any) -> tuple[dict[str, Any], Shape]:
        """Draws the chosen branch's own ``p`` and params; returns the layer entry and the new shape."""
        op = self.branches()[index]
        applied = rng.bernoulli(op.p)
        params = op.sample(rng, shape) if applied else {}
        entry = {"index": index, "op": op.name, "applied": applied, **extra, "params": params}
        return entry, (op.output_shape(shape, params) if applied else shape)

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        for layer in params["layers"]:
            if layer["index"] >= 0 and layer["applied"]:
                shape = self.branches()[layer["index"]].output_shape(shape, layer["params"])
        return shape

    def layout(self) -> tuple[str, ...]:
        cols: list[str] = []
        for k in range(self.num_layers()):
            cols.append(f"{k}.choice")
            for j, op in enumerate(self.branches()):
                cols += [f"{k}.{j}.{name}" for name in op.layout()]
        return tuple(cols)

    def pack(self, params: dict[str, Any]) -> list[float]:
        branches = self.branches()
        row: list[float] = []
        layers = params.get("layers", [])
        for k in range(self.num_layers()):
            layer: dict[str, Any] = layers[k] if k < len(layers) else {"index": -1}
            chosen = layer["index"] if layer["index"] >= 0 and layer.get("applied", False) else -1
            row.append(float(chosen))
            for j, op in enumerate(branches):
                width = len(op.layout())
                row += op.pack(layer["params"]) if j == chosen else [0.0] * width
        return row

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = images
        for k in range(self.num_layers()):
            choice = tf.cast(params[f"{k}.choice"], tf.int32)
            subs = [self._branch_params(params, k, j, op) for j, op in enumerate(self.branches())]
            if self.changes_shape:
                fns = [lambda x=x: x] + [
                    lambda op=op, sub=sub, x=x: op.apply_batch(x, sub)
                    for op, sub in zip(self.branches(), subs, strict=True)
                ]
                x = tf.switch_case(choice[0] + 1, fns)
                continue
            for j, (op, sub) in enumerate(zip(self.branches(), subs, strict=True)):
                mask = tf.equal(choice, j)

                def run(op: Op = op, sub: dict = sub, mask: Any = mask, x: Any = x) -> Any:
                    return tf.where(mask[:, tf.newaxis, tf.newaxis, tf.newaxis], op.apply_batch(x, sub), x)

                x = tf.cond(tf.reduce_any(mask), run, lambda x=x: x)
        return x

    @staticmethod
    def _branch_params(params: dict[str, Any], k: int, j: int, op: Op) -> dict[str, Any]:
        import tensorflow as tf

        names = op.layout()
        if not names:
            return {}
        rows = tf.stack([params[f"{k}.{j}.{name}"] for name in names], axis=1)
        return op.unpack(rows)


def _children_from_config(entry: dict[str, Any], where: str) -> tuple[Op, ...]:
    # Children by name from base's registry, complete whenever an op is built: importing this module ran
    # transforms/ops/__init__.py, which imports every op module.
    ops = entry.get("ops")
    if not isinstance(ops, list) or not ops:
        raise ConfigError(f"{where}.ops: expected a non-empty list of ops")
    return tuple(op_from_config(child, f"{where}.ops[{i}]") for i, child in enumerate(ops))


def _check_number(where: str, value: Any) -> float:
    return float(config_number(where, value))


@register
@dataclasses.dataclass(frozen=True)
class OneOf(Layered):
    """Applies one child, chosen with probability proportional to ``weights`` (equal by default)."""

    name = "one_of"
    ops: tuple[Op, ...] = ()
    weights: tuple[float, ...] = ()

    def validate(self) -> None:
        if not self.ops:
            raise ConfigError(f"{self.name}: needs at least one op in 'ops'")
        if self.weights:
            if len(self.weights) != len(self.ops):
                raise ConfigError(f"{self.name}.weights: give one weight per op ({len(self.ops)}), or none")
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ConfigError(f"{self.name}.weights: must be >= 0 with a positive sum, got {list(self.weights)}")

    def branches(self) -> tuple[Op, ...]:
        return self.ops

    def num_layers(self) -> int:
        return 1

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        weights = self.weights or (1.0,) * len(self.ops)
        target, total, index = rng.random() * sum(weights), 0.0, len(weights) - 1
        for i, w in enumerate(weights):
            total += w
            if target < total:
                index = i
                break
        entry, _ = self.run_branch(rng, index, shape)
        return [entry]

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.name, "p": self.p, "ops": [op.to_config() for op in self.ops]}
        if self.weights:
            out["weights"] = list(self.weights)
        return out

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: str) -> Op:
        weights = entry.get("weights", [])
        if not isinstance(weights, list):
            raise ConfigError(f"{where}.weights: expected a list of numbers, got {weights!r}")
        return cls(
            p=_check_number(f"{where}.p", entry.get("p", 1.0)),
            ops=_children_from_config(entry, where),
            weights=tuple(_check_number(f"{where}.weights", w) for w in weights),
        )


@register
@dataclasses.dataclass(frozen=True)
class SomeOf(Layered):
    """Applies ``n`` distinct children (a number drawn from ``n`` = [min, max]), in listed or random order."""

    name = "some_of"
    ops: tuple[Op, ...] = ()
    n: tuple[int, int] = (1, 2)
    random_order: bool = False

    def validate(self) -> None:
        if not self.ops:
            raise ConfigError(f"{self.name}: needs at least one op in 'ops'")
        low, high = self.n
        if not 0 <= low <= high <= len(self.ops):
            raise ConfigError(
                f"{self.name}.n must be [min, max] with 0 <= min <= max <= {len(self.ops)}, got {[low, high]}"
            )

    def branches(self) -> tuple[Op, ...]:
        return self.ops

    def num_layers(self) -> int:
        return self.n[1]

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        count = rng.integer(*self.n)
        pool = list(range(len(self.ops)))
        chosen = []
        for _ in range(count):  # partial Fisher-Yates: draws without replacement
            chosen.append(pool.pop(rng.integer(0, len(pool) - 1)))
        if not self.random_order:
            chosen.sort()
        layers = []
        for index in chosen:
            entry, shape = self.run_branch(rng, index, shape)
            layers.append(entry)
        return layers

    def to_config(self) -> dict[str, Any]:
        return {
            "op": self.name,
            "p": self.p,
            "n": list(self.n),
            "random_order": self.random_order,
            "ops": [op.to_config() for op in self.ops],
        }

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: str) -> Op:
        n = entry.get("n", [1, 2])
        if isinstance(n, int) and not isinstance(n, bool):
            n = [n, n]
        if not isinstance(n, list) or len(n) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in n):
            raise ConfigError(f"{where}.n: expected an integer or [min, max] integers, got {n!r}")
        n = [config_number(f"{where}.n", v) for v in n]
        order = entry.get("random_order", False)
        if not isinstance(order, bool):
            raise ConfigError(f"{where}.random_order: expected true or false, got {order!r}")
        return cls(
            p=_check_number(f"{where}.p", entry.get("p", 1.0)),
            ops=_children_from_config(entry, where),
            n=tuple(n),
            random_order=order,
        )
