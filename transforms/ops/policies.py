"""Augmentation policies: RandAugment, TrivialAugment (wide) and AutoAugment's ImageNet policy.

Each follows torchvision's tables (op list, magnitude bins, signs, the 25
ImageNet sub-policies), so results are comparable with what users know; the
pixels come from this project's TF ops (for example ``contrast`` uses the
per-channel mean, as ``tf.image.adjust_contrast`` does). A policy is a
layered choice (see ``compose``): each layer records which op ran, its
magnitude bin and its concrete params, so a record is replayable and
readable. Magnitude ``m`` of ``bins`` maps to level ``m / (bins - 1)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from transforms.ops.base import Op, Params, Shape, check_choice, check_range, register, registered_ops
from transforms.ops.compose import Layered
from transforms.ops.geometric import INTERPOLATIONS
from transforms.rng import Rng

# Branch ops every policy can run, by our op names; params come from the tables below.
BRANCH_OPS = (
    "shear",
    "translate",
    "rotation",
    "brightness",
    "saturation",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "auto_contrast",
    "equalize",
    "invert",
)

# kind -> (branch op, signed, params(level, sign, shape, bins, wide))
Mapper = Callable[[float, float, Shape, int, bool], Params]


def _shear(axis: str) -> Mapper:
    def params(level: float, sign: float, shape: Shape, bins: int, wide: bool) -> Params:
        factor = (0.99 if wide else 0.3) * level  # torchvision's shear factor, as an angle here
        angle = sign * math.degrees(math.atan(factor))
        return {"x": angle, "y": 0.0} if axis == "x" else {"x": 0.0, "y": angle}

    return params


def _translate(axis: str) -> Mapper:
    def params(level: float, sign: float, shape: Shape, bins: int, wide: bool) -> Params:
        side = shape[1] if axis == "x" else shape[0]
        pixels = 32.0 * level if wide else 150.0 / 331.0 * side * level
        fraction = sign * pixels / max(side, 1)
        return {"x": fraction, "y": 0.0} if axis == "x" else {"x": 0.0, "y": fraction}

    return params


def _factor(level: float, sign: float, shape: Shape, bins: int, wide: bool) -> Params:
    return {"factor": 1.0 + sign * (0.99 if wide else 0.9) * level}


def _posterize(level: float, sign: float, shape: Shape, bins: int, wide: bool) -> Params:
    step = 6.0 if wide else 4.0
    return {"bits": int(8 - round(level * (bins - 1) / ((bins - 1) / step)))}


KINDS: dict[str, tuple[str, bool, Mapper]] = {
    "shear_x": ("shear", True, _shear("x")),
    "shear_y": ("shear", True, _shear("y")),
    "translate_x": ("translate", True, _translate("x")),
    "translate_y": ("translate", True, _translate("y")),
    "rotate": ("rotation", True, lambda lv, s, sh, b, w: {"angle": s * (135.0 if w else 30.0) * lv}),
    "brightness": ("brightness", True, lambda lv, s, sh, b, w: {"delta": 0.0, **_factor(lv, s, sh, b, w)}),
    "color": ("saturation", True, _factor),
    "contrast": ("contrast", True, _factor),
    "sharpness": ("sharpness", True, _factor),
    "posterize": ("posterize", False, _posterize),
    "solarize": ("solarize", False, lambda lv, s, sh, b, w: {"threshold": 255.0 * (1.0 - lv)}),
    "auto_contrast": ("auto_contrast", False, lambda *_: {}),
    "equalize": ("equalize", False, lambda *_: {}),
    "invert": ("invert", False, lambda *_: {}),
}
# RandAugment's and TrivialAugmentWide's op lists ("identity" runs nothing).
AUGMENT_SPACE = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "auto_contrast",
    "equalize",
)
# AutoAugment's ImageNet policy: 25 sub-policies of two (kind, probability, magnitude bin of 10).
IMAGENET_POLICY = (
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, None)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
    (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("equalize", 0.4, None), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, None)),
    (("posterize", 0.8, 5), ("equalize", 1.0, None)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
    (("equalize", 0.6, None), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)),
    (("rotate", 0.4, 9), ("equalize", 0.6, None)),
    (("equalize", 0.0, None), ("equalize", 0.8, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)),
    (("sharpness", 0.4, 7), ("invert", 0.6, None)),
    (("shear_x", 0.6, 5), ("equalize", 1.0, None)),
    (("color", 0.4, 0), ("equalize", 0.6, None)),
    (("equalize", 0.4, None), ("solarize", 0.2, 4)),
    (("solarize", 0.6, 5), ("auto_contrast", 0.6, None)),
    (("invert", 0.6, None), ("equalize", 1.0, None)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, None), ("equalize", 0.6, None)),
)


@dataclasses.dataclass(frozen=True)
class _Policy(Layered):
    """Shared branches (built once per instance) and the per-layer draw of sign and params."""

    fill_value: float = 0.0
    interpolation: str = "nearest"

    def validate(self) -> None:
        check_range(self, "fill_value", self.fill_value, 0.0, 255.0)
        check_choice(self, "interpolation", self.interpolation, INTERPOLATIONS)
        self.validate_policy()
        ops = registered_ops()  # complete: transforms/ops/__init__.py imports every op module
        warp = {"fill_mode": "constant", "fill_value": self.fill_value, "interpolation": self.interpolation}
        built: list[Op] = []
        for name in BRANCH_OPS:
            cls = ops[name]
            kwargs: dict[str, Any] = dict(warp) if name in ("shear", "translate", "rotation") else {}
            built.append(cls(p=1.0, **kwargs))
        object.__setattr__(self, "_branches", tuple(built))

    def validate_policy(self) -> None:
        """The policy's own fields."""

    def branches(self) -> tuple[Op, ...]:
        return self._branches  # type: ignore[attr-defined]

    @property
    def changes_shape(self) -> bool:  # type: ignore[override]
        return False

    def layer(self, rng: Rng, kind: str, magnitude: int, bins: int, shape: Shape, wide: bool) -> dict[str, Any]:
        """One layer's record: the branch that runs and its concrete params."""
        if kind == "identity":
            return {"index": -1, "op": "identity", "kind": kind, "applied": False, "magnitude": magnitude, "params": {}}
        op_name, signed, mapper = KINDS[kind]
        sign = -1.0 if signed and rng.bernoulli(0.5) else 1.0
        level = magnitude / (bins - 1) if bins > 1 else 0.0
        params = mapper(level, sign, shape, bins, wide)
        return {
            "index": BRANCH_OPS.index(op_name),
            "op": op_name,
            "kind": kind,
            "applied": True,
            "magnitude": magnitude,
            "params": params,
        }

    def output_shape(self, shape: Shape, params: Params) -> Shape:
        return shape


@register
@dataclasses.dataclass(frozen=True)
class RandAugment(_Policy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops drawn uniformly, all at one ``magnitude``."""

    name = "randaugment"
    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31

    def validate_policy(self) -> None:
        check_range(self, "num_ops", self.num_ops, 0, 16)
        check_range(self, "num_magnitude_bins", self.num_magnitude_bins, 2, 1000)
        check_range(self, "magnitude", self.magnitude, 0, self.num_magnitude_bins - 1)

    def num_layers(self) -> int:
        return self.num_ops

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        layers = []
        for _ in range(self.num_ops):
            kind = AUGMENT_SPACE[rng.integer(0, len(AUGMENT_SPACE) - 1)]
            layers.append(self.layer(rng, kind, self.magnitude, self.num_magnitude_bins, shape, wide=False))
        return layers


@register
@dataclasses.dataclass(frozen=True)
class TrivialAugment(_Policy):
    """TrivialAugment (Mueller and Hutter 2021, the "wide" space): one op, magnitude bin drawn uniformly."""

    name = "trivial_augment"
    num_magnitude_bins: int = 31

    def validate_policy(self) -> None:
        check_range(self, "num_magnitude_bins", self.num_magnitude_bins, 2, 1000)

    def num_layers(self) -> int:
        return 1

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        kind = AUGMENT_SPACE[rng.integer(0, len(AUGMENT_SPACE) - 1)]
        magnitude = rng.integer(0, self.num_magnitude_bins - 1)
        return [self.layer(rng, kind, magnitude, self.num_magnitude_bins, shape, wide=True)]


@register
@dataclasses.dataclass(frozen=True)
class AutoAugment(_Policy):
    """AutoAugment (Cubuk et al. 2019), ImageNet policy: one of 25 sub-policies, each two ops with set odds."""

    name = "autoaugment"
    policy: str = "imagenet"

    def validate_policy(self) -> None:
        check_choice(self, "policy", self.policy, ("imagenet",))

    def num_layers(self) -> int:
        return 2

    def sample_layers(self, rng: Rng, shape: Shape) -> list[dict[str, Any]]:
        index = rng.integer(0, len(IMAGENET_POLICY) - 1)
        layers = []
        for kind, prob, magnitude in IMAGENET_POLICY[index]:
            entry = self.layer(rng, kind, magnitude or 0, 10, shape, wide=False)
            if not rng.bernoulli(prob):
                entry = {**entry, "index": -1, "applied": False, "params": {}}
            layers.append({"sub_policy": index, **entry})
        return layers
