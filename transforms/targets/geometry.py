"""Where each op moves pixels: the 3x3 matrix of the continuous frame, from the op's sampled params.

Targets follow the image through the same matrices the image ops use. In the
continuous frame of ``types`` (the image covers ``[0, W] x [0, H]``, pixel
(row i, column j) centred at ``(j + 0.5, i + 0.5)``):

- ``warp()`` (rotation, zoom, translate, shear, affine) maps pixel centres
  ``p' = A (p - c) + c + t`` with ``c = ((W - 1) / 2, (H - 1) / 2)``; with
  ``q = p + 0.5`` that is ``q' = A (q - C) + C + t``, ``C = (W / 2, H / 2)``;
- flips are ``x' = W - x`` (``y' = H - y``);
- crops shift by the window's corner; resizes (``tf.image.resize``,
  half-pixel centres) scale the frame by ``out / in`` per axis, after the
  centre cut of ``crop`` mode and before the offset of ``pad`` mode, with the
  sizes computed in float32 exactly as ``resize_images`` computes them.

Ops are looked up by name: ``GEOMETRY`` for ops that move pixels, ``STILL``
for ops that leave every pixel where it is (colour, tone, filters, erasing),
and layered ops (``one_of``, ``some_of``, the policies) are expanded into the
branch each layer ran. An op in none of them is an error (``NoGeometryError``),
never treated as the identity: a new op that moves pixels must say how.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np

from transforms.ops import Op, Params, Shape
from transforms.ops.compose import Layered
from transforms.ops.crops import RESIZE_MODES

Size = tuple[int, int]  # (height, width)


class NoGeometryError(TypeError):
    """An op whose effect on pixel positions is not declared (a programming error: add it to GEOMETRY or STILL)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Affine:
    """One step of the image's geometry: continuous input frame to continuous output frame.

    ``matrix`` is float64 [3, 3] acting on ``(x, y, 1)``; ``size`` the output's
    (height, width); ``mirror`` True when the step is a horizontal flip (the
    one step that swaps a dataset's left/right keypoint pairs).
    """

    matrix: np.ndarray
    size: Size
    mirror: bool = False

    def then(self, later: Affine) -> Affine:
        """This step followed by ``later``: one matrix; mirrored when an odd number of horizontal flips ran."""
        return Affine(later.matrix @ self.matrix, later.size, self.mirror != later.mirror)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``points`` [..., 2] (x, y) mapped to the output frame."""
        m = self.matrix
        x, y = points[..., 0], points[..., 1]
        return np.stack([m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]], axis=-1)

    @property
    def linear_det(self) -> float:
        """The determinant of the linear part: how areas scale."""
        return float(self.matrix[0, 0] * self.matrix[1, 1] - self.matrix[0, 1] * self.matrix[1, 0])


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def identity(size: Size) -> Affine:
    """The step that changes nothing, for an image of ``size``."""
    return Affine(np.eye(3), size)


def warp_matrix(
    size: Size,
    angle: float = 0.0,
    scale: float = 1.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
    tx: float = 0.0,
    ty: float = 0.0,
) -> np.ndarray:
    """``warp()``'s forward map in the continuous frame: ``A (q - C) + C + t``, A = R(angle) Shx Shy (scale)."""
    h, w = size
    rad = math.pi / 180.0
    theta = angle * rad
    kx, ky = math.tan(shear_x * rad), math.tan(shear_y * rad)
    cos, sin = math.cos(theta), math.sin(theta)
    rotation = np.array([[cos, sin], [-sin, cos]])
    linear = rotation @ np.array([[1.0, kx], [0.0, 1.0]]) @ np.array([[1.0, 0.0], [ky, 1.0]]) * scale
    centre = np.array([w / 2.0, h / 2.0])
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = centre + np.array([tx * w, ty * h]) - linear @ centre
    return out


def resize_geometry(in_size: Size, out_size: Size, mode: str) -> Affine:
    """``resize_images(images, out_size, mode)`` on an image of ``in_size``, sizes computed as its float32 ops do."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    h, w = in_size
    height, width = out_size
    f32 = np.float32
    if mode == "crop":
        scale = min(f32(h) / f32(height), f32(w) / f32(width))
        ch = max(int(np.round(f32(height) * scale)), 1)
        cw = max(int(np.round(f32(width) * scale)), 1)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        matrix = _scaling(width / cw, height / ch) @ _translation(-x0, -y0)
        return Affine(matrix, (height, width))
    if mode == "pad":
        scale = min(f32(height) / f32(h), f32(width) / f32(w))
        nh = min(max(int(np.round(f32(h) * scale)), 1), height)
        nw = min(max(int(np.round(f32(w) * scale)), 1), width)
        top, left = (height - nh) // 2, (width - nw) // 2
        return Affine(_translation(left, top) @ _scaling(nw / w, nh / h), (height, width))
    return Affine(_scaling(width / w, height / h), (height, width))


def _horizontal_flip(op: Op, params: Params, shape: Shape) -> Affine:
    return Affine(np.array([[-1.0, 0.0, shape[1]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), shape[:2], mirror=True)


def _vertical_flip(op: Op, params: Params, shape: Shape) -> Affine:
    return Affine(np.array([[1.0, 0.0, 0.0], [0.0, -1.0, shape[0]], [0.0, 0.0, 1.0]]), shape[:2])


def _warp(**names: str) -> Callable[[Op, Params, Shape], Affine]:
    """A warp op's geometry: ``warp()`` keyword -> the op's param name."""

    def geometry(op: Op, params: Params, shape: Shape) -> Affine:
        kwargs = {kw: float(params[name]) for kw, name in names.items()}
        return Affine(warp_matrix(shape[:2], **kwargs), shape[:2])

    return geometry


def _crop(op: Op, params: Params, shape: Shape) -> Affine:
    """The window (y, x, height, width) cut out; a resizing ``random_resized_crop`` then stretches it."""
    y, x, h, w = (int(params[k]) for k in ("y", "x", "height", "width"))
    window = Affine(_translation(-x, -y), (h, w))
    size = op.fixed_size() if op.name == "random_resized_crop" else None
    return window if size is None else window.then(resize_geometry((h, w), size, "stretch"))


def _resize(op: Op, params: Params, shape: Shape) -> Affine:
    return resize_geometry(shape[:2], (op.height, op.width), op.mode)  # type: ignore[attr-defined]


# Ops that move pixels, by registry name: (op, params, input shape) -> the step.
GEOMETRY: dict[str, Callable[[Op, Params, Shape], Affine]] = {
    "horizontal_flip": _horizontal_flip,
    "vertical_flip": _vertical_flip,
    "rotation": _warp(angle="angle"),
    "zoom": _warp(scale="scale"),
    "translate": _warp(tx="x", ty="y"),
    "shear": _warp(shear_x="x", shear_y="y"),
    "affine": _warp(angle="angle", scale="scale", shear_x="shear_x", shear_y="shear_y", tx="x", ty="y"),
    "random_resized_crop": _crop,
    "random_crop": _crop,
    "center_crop": _crop,
    "resize": _resize,
}
# Ops whose output pixel (i, j) comes from input pixel (i, j) (and whole-image statistics): targets stay put.
STILL = frozenset(
    {
        "brightness",
        "contrast",
        "saturation",
        "hue",
        "gamma",
        "grayscale",
        "channel_shuffle",
        "invert",
        "posterize",
        "solarize",
        "equalize",
        "auto_contrast",
        "gaussian_noise",
        "gaussian_blur",
        "sharpness",
        "jpeg_quality",
        "random_erasing",
    }
)


def leaves(op: Op, params: Params) -> Iterator[tuple[Op, Params]]:
    """The plain ops an applied op ran, in order, with their params: layered ops give each layer's branch."""
    if isinstance(op, Layered):
        branches = op.branches()
        for layer in params.get("layers", []):
            if layer["index"] >= 0 and layer["applied"]:
                yield from leaves(branches[layer["index"]], layer["params"])
        return
    yield op, params


def leaf_geometry(op: Op, params: Params, shape: Shape) -> Affine | None:
    """The step of a plain (not layered) applied op on an image of ``shape``; None when it moves no pixel."""
    if op.name in STILL:
        return None
    geometry = GEOMETRY.get(op.name)
    if geometry is None:
        raise NoGeometryError(
            f"op {op.name!r} ({type(op).__name__}) declares no target geometry: add it to "
            "transforms.targets.geometry.GEOMETRY (it moves pixels) or STILL (it does not)"
        )
    return geometry(op, params, shape)


def op_steps(op: Op, params: Params, shape: Shape) -> list[Affine]:
    """Every step an applied op took, in order (one per moving branch of a layered op)."""
    steps = []
    for leaf, leaf_params in leaves(op, params):
        step = leaf_geometry(leaf, leaf_params, shape)
        if step is not None:
            steps.append(step)
            shape = (*step.size, shape[2])
    return steps


def op_geometry(op: Op, params: Params, shape: Shape) -> Affine | None:
    """The applied op's map of the continuous frame (its steps composed), output size and mirror; None if still."""
    steps = op_steps(op, params, shape)
    if not steps:
        return None
    out = steps[0]
    for step in steps[1:]:
        out = out.then(step)
    return out


def final_resize(shape: Shape | Size, out_size: Size, resize_mode: str) -> Affine:
    """The renderer's last step: ``resize_images`` to the job's size with the job's resize mode."""
    return resize_geometry((int(shape[0]), int(shape[1])), out_size, resize_mode)
