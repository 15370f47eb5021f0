"""One configured instance of every registered op, for tests that run over the whole registry; a broken op."""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.ops import Op, op_from_config, registered_ops

# Ops that cannot be built from defaults alone (composites need children).
CONFIGS = {
    "one_of": {"op": "one_of", "ops": [{"op": "rotation", "p": 1.0}, {"op": "brightness"}], "weights": [1.0, 3.0]},
    "some_of": {
        "op": "some_of",
        "n": [1, 2],
        "ops": [{"op": "contrast"}, {"op": "horizontal_flip", "p": 1.0}, {"op": "translate"}],
    },
}


def example_op(name: str) -> Op:
    """A valid instance of ``name`` with p = 1 where the op has a probability, so it runs."""
    entry = dict(CONFIGS.get(name, {"op": name}))
    entry.setdefault("p", 1.0)
    return op_from_config(entry)


def all_examples() -> list[Op]:
    return [example_op(name) for name in sorted(registered_ops())]


def traced_batch(op: Op, images, rows):
    """``op.apply_batch`` traced (as ``Op.apply`` and the pipeline run it), on float32 [B, H, W, 3]."""
    import tensorflow as tf

    rows = tf.constant(rows, tf.float32)
    fn = tf.function(
        lambda x, r: op.apply_batch(x, op.unpack(r)),
        autograph=False,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec(rows.shape, tf.float32)],
    )
    return fn(tf.constant(images, tf.float32), rows).numpy()


@dataclasses.dataclass(frozen=True)
class Overflow(Op):
    """A broken op for the range guard: adds 300 to some images and does not clip.

    Not registered: a test that names it in a config registers it for itself (others see the registry as shipped).
    """

    name = "test_overflow"
    param_names = ("on",)

    def sample(self, rng: Any, shape: Any) -> dict[str, float]:
        return {"on": float(rng.bernoulli(0.5))}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return images + 300.0 * params["on"][:, None, None, None]
