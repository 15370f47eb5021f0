"""``augbeam preview``: a contact sheet of augmented copies, to see what a config does before a long run.

Each row is one input image, the first column the input itself, the next
columns copies 0..K-1 exactly as the job would draw them for that key (the
key is the path relative to ``--root``, as the job's key is relative to its
``--input`` folder; without ``--root``, the file name), each captioned with the
ops that ran and their main params. Tiles show [0, 255] pixels before the
model's preprocessing, letterboxed to keep the aspect ratio.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from transforms.errors import ConfigError

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


def make_sheet(
    paths: list[str],
    ops: tuple,
    copies: int,
    seed: int,
    tile: int = 224,
    alpha_fill: int = 255,
    root: str | None = None,
) -> tuple[np.ndarray, list[list[list[str]]]]:
    """The sheet as a uint8 array (without captions), and the caption lines per tile."""
    from transforms.augment import Augmenter, Renderer
    from transforms.decode import DecodeError, Decoder
    from transforms.preprocess import get_preprocessing

    decoder = Decoder(alpha_fill=alpha_fill)
    augmenter = Augmenter(ops, seed)
    renderer = Renderer(ops, (tile, tile), "pad", get_preprocessing("none"), "uint8")
    plain = Renderer((), (tile, tile), "pad", get_preprocessing("none"), "uint8")
    rows, captions = [], []
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
        tiles = [_tile(plain.render(image, []), tile)]
        row_captions = [[f"{key} {shape[1]}x{shape[0]}", "input"]]
        for copy in range(copies):
            sampled = augmenter.sample(key, copy, shape)
            tiles.append(_tile(renderer.render(image, sampled), tile))
            row_captions.append([f"copy {copy}"] + describe(sampled))
        rows.append(tiles)
        captions.append(row_captions)
    return _grid(rows, tile), captions


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
