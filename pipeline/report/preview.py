"""``augbeam preview``: a contact sheet of augmented copies, to see what a config does before a long run.

Each row is one input image, the first column the input itself, the next
columns copies 0..K-1 exactly as the job would draw them for that key (the
key is the path relative to ``--root``, as the job's key is relative to its
``--input`` folder; without ``--root``, the file name), each captioned with the
ops that ran and their main params. Tiles show [0, 255] pixels before the
model's preprocessing, letterboxed to keep the aspect ratio.

With ``--annotations`` (``PreviewTargets``) each image's boxes, masks and
keypoints are carried as the job carries them (``carry_objects``,
``carry_semantic_mask``: the same sampled params, the tile as the output size,
``pad`` as the resize mode) and drawn on its tiles; the first column shows the
source annotation on the input.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from transforms.errors import ConfigError
from transforms.targets.types import KeypointSpec, Objects, Removed, TargetRules

RESIZE_MODE = "pad"  # the tiles are letterboxed: the job's --resize pad at the tile's size

CAPTION_LINES = 6
LINE_HEIGHT = 12


def describe(sampled: list[dict[str, Any]]) -> list[str]:
    """One short line per applied op (``rotation -7.3``); composites list what ran inside."""
    lines = []
    for entry in sampled:
        if not entry.get("applied"):
            continue
        params = entry.get("params", {})
        if "layers" in params:
            parts = [_short(layer.get("kind", layer["op"]), layer["params"]) for layer in params["layers"]]
            parts = [p for p, layer in zip(parts, params["layers"], strict=True) if layer.get("applied")]
            lines.append(f"{entry['op']}: {', '.join(parts) if parts else 'identity'}")
        else:
            lines.append(_short(entry["op"], params))
    return lines or ["(no op applied)"]


def _short(name: str, params: dict[str, Any]) -> str:
    """``name`` and its param values, compact: crops as WxH@x,y, seeds left out."""
    if "layers" in params:
        inner = [_short(x.get("kind", x["op"]), x["params"]) for x in params["layers"] if x.get("applied")]
        return f"{name}[{', '.join(inner)}]"
    if {"y", "x", "height", "width"} <= set(params):
        return f"{name} {params['width']}x{params['height']}@{params['x']},{params['y']}"
    values = []
    for key, value in params.items():
        if key.startswith("seed") or key == "n" or (value == 0 and len(params) > 1):
            continue  # seeds and zero components (a shear's other axis) say nothing to the eye
        values.append(f"{value:.3g}" if isinstance(value, float) else str(value))
    return f"{name} {' '.join(values)}".strip()


def key_for(path: str, root: str | None) -> str:
    """The job's key for ``path``: relative to ``root`` with '/' separators, else the file name."""
    if root is None:
        return os.path.basename(path)
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(".."):
        raise ConfigError(f"preview: {path!r} is not inside --root {root!r}")
    return rel.replace(os.sep, "/")


class NoTargets(Protocol):
    """Why an image has nothing to draw: its tile's caption, and a refusal's message for the user (or None)."""

    @property
    def caption(self) -> str: ...

    @property
    def message(self) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class ImageTargets:
    """An image's targets at its decoded (upright) size, as the job's worker has them before the ops."""

    objects: Objects
    semantic_mask: np.ndarray | None = None  # uint8 [H, W] class per pixel


@dataclasses.dataclass(frozen=True)
class PreviewTargets:
    """The annotations to draw: the dataset's classes and keypoints, the rules, and each image's targets by key.

    ``targets_for(key, height, width)`` gives the image's targets at its decoded size, or why it has none.
    """

    classes: tuple[str, ...]
    keypoints: KeypointSpec | None
    targets_for: Callable[[str, int, int], ImageTargets | NoTargets]
    rules: TargetRules = TargetRules()


@dataclasses.dataclass(frozen=True)
class Sheet:
    """The grid (uint8, captions not yet drawn), the caption lines per tile, and notes for the user."""

    pixels: np.ndarray
    captions: list[list[list[str]]]
    notes: list[str]


def make_sheet(
    paths: list[str],
    ops: tuple,
    copies: int,
    seed: int,
    tile: int = 224,
    alpha_fill: int = 255,
    root: str | None = None,
    targets: PreviewTargets | None = None,
) -> Sheet:
    """The sheet: one row per image, the input then ``copies`` copies, targets drawn when ``targets`` is given."""
    from transforms.augment import Augmenter, Renderer
    from transforms.decode import DecodeError, Decoder
    from transforms.preprocess import get_preprocessing

    decoder = Decoder(alpha_fill=alpha_fill)
    augmenter = Augmenter(ops, seed)
    renderer = Renderer(ops, (tile, tile), RESIZE_MODE, get_preprocessing("none"), "uint8")
    plain = Renderer((), (tile, tile), RESIZE_MODE, get_preprocessing("none"), "uint8")
    rows, captions, notes = [], [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                image = decoder(handle.read())
        except OSError as exc:
            raise ConfigError(f"preview: cannot read {path!r}: {exc.strerror or exc}") from None
        except DecodeError as exc:
            raise ConfigError(f"preview: {path!r} is not a usable image: {exc}") from None
        key = key_for(path, root)
        height, width, channels = (int(d) for d in image.shape)
        shape = (height, width, channels)
        found = None if targets is None else targets.targets_for(key, height, width)
        drawer = _TileDrawer(targets, found, shape, tile) if targets is not None and found is not None else None
        if drawer is not None and drawer.missing is not None and drawer.missing.message:
            notes.append(f"{path}: {drawer.missing.message}")
        first = _tile(plain.render(image, []), tile)
        tiles = [first if drawer is None else drawer.draw(first, (), [], input_tile=True)]
        row_captions = [[f"{key} {shape[1]}x{shape[0]}", "input" if drawer is None else f"input | {drawer.caption}"]]
        for copy in range(copies):
            sampled = augmenter.sample(key, copy, shape)
            pixels = _tile(renderer.render(image, sampled), tile)
            if drawer is None or drawer.found is None:  # nothing to draw: the input's caption said why
                tiles.append(pixels)
                row_captions.append([f"copy {copy}"] + describe(sampled))
            else:
                tiles.append(drawer.draw(pixels, ops, sampled))
                row_captions.append([f"copy {copy} | {drawer.caption}"] + describe(sampled))
        rows.append(tiles)
        captions.append(row_captions)
    return Sheet(_grid(rows, tile), captions, notes)


class _TileDrawer:
    """One image's targets carried to each of its tiles (as the job carries them) and drawn there."""

    def __init__(
        self, targets: PreviewTargets, found: ImageTargets | NoTargets, shape: tuple[int, int, int], tile: int
    ):
        self.targets, self.shape, self.tile = targets, shape, tile
        self.found = found if isinstance(found, ImageTargets) else None
        self.missing = None if isinstance(found, ImageTargets) else found
        self.caption = self.missing.caption if self.missing is not None else ""

    def draw(
        self, pixels: np.ndarray, ops: tuple, sampled: list[dict[str, Any]], input_tile: bool = False
    ) -> np.ndarray:
        """``pixels`` with the targets after ``ops`` drawn; the input tile's objects are only resized, none removed.

        Sets ``caption``: the objects drawn, and how many the rules removed (copies), or why there are none.
        """
        from pipeline.report.draw_targets import TileTargets, draw_targets
        from transforms.targets.carry import carry_objects, carry_semantic_mask

        if self.found is None:
            return pixels
        size = (self.tile, self.tile)
        rules = TargetRules(min_area=0.0) if input_tile else self.targets.rules
        objects, removed = carry_objects(
            self.found.objects, ops, sampled, self.shape, size, RESIZE_MODE, rules, self.targets.keypoints
        )
        semantic = None
        if self.found.semantic_mask is not None:
            semantic = carry_semantic_mask(self.found.semantic_mask, ops, sampled, self.shape, size, RESIZE_MODE)
        self.caption = _objects_caption(len(objects), None if input_tile else removed)
        drawn = TileTargets.from_objects(objects, semantic)
        return draw_targets(pixels, drawn, self.targets.classes, self.targets.keypoints)


def _objects_caption(n: int, removed: Removed | None) -> str:
    """The report's caption (``sheet.objects_caption``), with the removals by reason: ``2 removed (1 outside)``."""
    from pipeline.report.sheet import objects_caption

    if removed is None or not removed.total:
        return objects_caption(n, None)
    reasons = ", ".join(f"{count} {name}" for name, count in removed.counts().items() if count)
    return f"{objects_caption(n, removed.total)} ({reasons})"


def _tile(payload: bytes, tile: int) -> np.ndarray:
    return np.frombuffer(payload, np.uint8).reshape(tile, tile, 3)


def _grid(rows: list[list[np.ndarray]], tile: int) -> np.ndarray:
    pad = 6
    cell_h = tile + CAPTION_LINES * LINE_HEIGHT + pad
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * cell_h + pad, cols * (tile + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * cell_h, pad + j * (tile + pad)
            sheet[y : y + tile, x : x + tile] = img
    return sheet


def write_sheet(out: str, sheet: np.ndarray, captions: list[list[list[str]]], tile: int) -> None:
    """Draws the captions under each tile and writes a PNG (temp name, then rename)."""
    from PIL import Image, ImageDraw

    pad = 6
    cell_h = tile + CAPTION_LINES * LINE_HEIGHT + pad
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    chars = max(8, tile // 6 + 2)
    for i, row in enumerate(captions):
        for j, lines in enumerate(row):
            x, y = pad + j * (tile + pad), pad + i * cell_h + tile + 2
            wrapped: list[str] = []
            for line in lines:
                wrapped += [line[k : k + chars] for k in range(0, max(len(line), 1), chars)]
            if len(wrapped) > CAPTION_LINES:
                wrapped = wrapped[: CAPTION_LINES - 1] + ["..."]
            for n, text in enumerate(wrapped):
                draw.text((x, y + n * LINE_HEIGHT), text, fill=(0, 0, 0))
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(out)}.tmp")
    img.save(temp, format="PNG")
    os.replace(temp, out)
