"""The geometric ops the target tests run, taken from the registry (never hand-listed), and small helpers.

Every registered op that is neither ``STILL`` nor layered is a geometric op
here; ``WIDE`` only widens some ops' ranges (or sets a size) so the
properties meet large turns, shifts and every resize mode. The policies'
geometric members come from each policy's own branches and magnitude tables.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from transforms.ops import Op, op_from_config, registered_ops
from transforms.ops.compose import Layered
from transforms.ops.policies import KINDS
from transforms.rng import Rng
from transforms.targets.geometry import STILL
from transforms.targets.types import Objects

SHAPE = (40, 56, 3)
OUT = (30, 24)  # random_resized_crop's size: another aspect than the input's
WIDE: dict[str, list[dict[str, Any]]] = {
    "rotation": [{"degrees": [-180.0, 180.0]}],
    "zoom": [{"scale": [0.5, 2.0]}],
    "translate": [{"x": [-0.4, 0.4], "y": [-0.4, 0.4]}],
    "shear": [{"x": [-40.0, 40.0], "y": [-40.0, 40.0]}],
    "affine": [
        {
            "degrees": [-180.0, 180.0],
            "scale": [0.6, 1.6],
            "shear_x": [-30.0, 30.0],
            "shear_y": [-30.0, 30.0],
            "translate_x": [-0.3, 0.3],
            "translate_y": [-0.3, 0.3],
        }
    ],
    "random_crop": [{"height": 24, "width": 30}],
    "center_crop": [{"fraction": 0.7}],
    "resize": [{"height": 30, "width": 50, "mode": mode} for mode in ("stretch", "crop", "pad")],
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One geometric op and how to draw its params from an integer seed."""

    id: str
    op: Op
    policy: Op | None = None  # the policy whose magnitude table draws the params, for a policy's member

    def params(self, seed: int) -> dict[str, Any]:
        rng = Rng(seed, "targets", 0, 0)
        if self.policy is None:
            return self.op.sample(rng, SHAPE)
        kinds = [kind for kind, (name, _signed, _mapper) in KINDS.items() if name == self.op.name]
        kind = kinds[rng.integer(0, len(kinds) - 1)]
        bins = int(getattr(self.policy, "num_magnitude_bins", 10))
        layer = self.policy.layer(rng, kind, rng.integer(0, bins - 1), bins, SHAPE, wide=rng.bernoulli(0.5))  # type: ignore[attr-defined]
        return layer["params"]


def geometric_cases() -> list[Case]:
    """Every geometric op of the registry (some with wider ranges), then every policy's geometric branches."""
    cases = []
    for name, cls in sorted(registered_ops().items()):
        if name in STILL or issubclass(cls, Layered):
            continue
        for extra in WIDE.get(name, [{}]):
            op = op_from_config({"op": name, "p": 1.0, **extra}).with_output_size(OUT)
            cases.append(Case(f"{name}-{extra['mode']}" if "mode" in extra else name, op))
    for name, cls in sorted(registered_ops().items()):
        if not issubclass(cls, Layered) or name in ("one_of", "some_of"):
            continue
        policy = op_from_config({"op": name})
        for branch in policy.branches():  # type: ignore[attr-defined]
            if branch.name not in STILL:
                cases.append(Case(f"{name}.{branch.name}", branch, policy))
    return cases


def entry(op: Op, params: dict[str, Any]) -> dict[str, Any]:
    """One op's sampled entry, applied, as ``Augmenter.sample`` records it."""
    return {"op": op.name, "version": op.version, "applied": True, "params": params}


def objects(boxes: Any, masks: Any = None, keypoints: Any = None) -> Objects:
    """Objects with ids 10, 11, ... and classes 0, 1, ... for the given boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    return Objects(
        boxes=boxes,
        classes=np.arange(n, dtype=np.int64),
        ids=np.arange(10, 10 + n, dtype=np.int64),
        iscrowd=np.zeros([n], bool),
        masks=None if masks is None else np.asarray(masks, np.uint8),
        keypoints=None if keypoints is None else np.asarray(keypoints, np.float64),
    )


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """uint8 [H, W]: 1 on the pixels of the integer box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    out = np.zeros(shape[:2], np.uint8)
    out[y0:y1, x0:x1] = 1
    return out


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """The enclosing box (continuous frame) of a mask's set pixels, or None when none is set."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
