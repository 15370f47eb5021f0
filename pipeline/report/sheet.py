"""The run report's contact sheets: a few records per split, decoded back from the shard bytes.

The sample is the first records of each shard in turn (records sit in hash
order inside a shard, so this mixes keys and classes), at most
``PER_SPLIT``, read one at a time: a run of any size costs the same. The
pixels are what training reads: raw or compressed pixels as stored, and for
float encodings the preprocessed tensor mapped back to [0, 255] by inverting
the manifest's preprocessing (for display only; the page says so).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline.format.manifest import Manifest, SplitInfo, TargetsInfo

PER_SPLIT = 16
TILE = 128
COLUMNS = 6
CELL_W = TILE + 52
CAPTION_LINES = 6
LINE_H = 14
FONT_SIZE = 12
PAD = 6


def sample_records(root: str, split_info: SplitInfo) -> Iterator[tuple[str, int, bytes]]:
    """``(shard file, position, record)`` for up to ``PER_SPLIT`` records, the first ones of each shard.

    A generator: one record is held at a time, however large the images.
    """
    from pipeline import fsutil
    from pipeline.format.records import iter_records

    shards = [s for s in split_info.shards if s.records > 0]
    per_shard = max(1, math.ceil(PER_SPLIT / max(len(shards), 1)))
    taken = 0
    for shard in shards:
        records = iter_records(fsutil.join(root, shard.file))
        for position, record in zip(range(min(per_shard, PER_SPLIT - taken)), records, strict=False):
            taken += 1
            yield shard.file, position, record
        records.close()  # closes the shard file now, not when the generator is collected
        if taken == PER_SPLIT:
            return


def parse(record: bytes) -> dict[str, Any]:
    """The record's features as plain values (``records.parse_example``: protobuf, without importing TensorFlow)."""
    from pipeline.format.records import parse_example

    feature = parse_example(record)
    if "image" not in feature and "image/encoded" in feature:  # a detection record stores JPEG/PNG there
        feature["image"] = feature["image/encoded"]
    text = {k: _first_bytes(feature[k]) for k in ("image", "key", "params", "image/encoding")}
    return {
        "image": text["image"],
        "encoding": text["image/encoding"].decode(),
        "key": text["key"].decode("utf-8", "replace"),
        "params": text["params"].decode("utf-8", "replace"),
        "shape": [int(v) for v in feature["image/shape"]],
        "label": int(feature["label"][0]) if "label" in feature else -1,  # a detection record has objects instead
        "copy": int(feature["copy"][0]),
        "objects": len(feature.get("image/object/class/label", [])),
    }


def _first_bytes(values: list[Any]) -> bytes:
    """A bytes feature's value (the schema makes these bytes; anything else is a corrupt record)."""
    if not values or not isinstance(values[0], bytes):
        raise ValueError("the record lacks a bytes feature the schema requires")
    return values[0]


def display_pixels(rec: dict[str, Any], preprocessing: dict[str, Any]) -> np.ndarray:
    """uint8 [H, W, 3] RGB for display: stored pixels, or the float tensor with its preprocessing undone."""
    encoding = rec["encoding"]
    height, width, _ = rec["shape"]
    if encoding in ("jpeg", "png"):  # Pillow, not TensorFlow: the driver does not import TensorFlow
        from PIL import Image

        with Image.open(io.BytesIO(rec["image"])) as image:
            return np.asarray(image.convert("RGB"))
    if encoding == "uint8":
        return np.frombuffer(rec["image"], np.uint8).reshape(height, width, 3)
    x = np.frombuffer(rec["image"], np.dtype("<f4" if encoding == "float32" else "<f2")).reshape(height, width, 3)
    return np.clip(np.round(undo_preprocessing(x.astype(np.float64), preprocessing)), 0, 255).astype(np.uint8)


def undo_preprocessing(x: np.ndarray, pre: dict[str, Any]) -> np.ndarray:
    """The model's preprocessing inverted: its float output back to RGB [0, 255]; unknown modes: min-max."""
    from transforms.preprocess import CAFFE_MEAN_BGR, TORCH_MEAN, TORCH_STD

    mode = pre.get("mode")
    if mode == "identity":
        return x
    if mode == "tf":
        return (x + 1.0) * 127.5
    if mode == "scale_0_1":
        return x * 255.0
    if mode == "caffe":
        return (x + np.array(CAFFE_MEAN_BGR))[..., ::-1]
    if mode in ("torch", "mean_std"):
        mean, std = (TORCH_MEAN, TORCH_STD) if mode == "torch" else (pre["mean"], pre["std"])
        return (x * np.array(std) + np.array(mean)) * 255.0
    low, high = float(x.min()), float(x.max())
    return (x - low) * (255.0 / (high - low) if high > low else 0.0)


def undo_note(pre: dict[str, Any]) -> str:
    """How float records were mapped back to pixels, for the page."""
    notes = {
        "identity": "values are already [0, 255] pixels",
        "tf": "(x + 1) &times; 127.5",
        "scale_0_1": "x &times; 255",
        "caffe": "x + the BGR mean, then BGR to RGB",
        "torch": "(x &times; std + mean) &times; 255",
        "mean_std": "(x &times; std + mean) &times; 255",
    }
    return notes.get(pre.get("mode", ""), "a min-max rescale of each image (mode unknown to this report)")


def thumbnail(pixels: np.ndarray) -> Any:
    """A PIL image fitting TILE x TILE: small images grow by a whole factor (crisp pixels), big ones shrink."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    height, width = pixels.shape[:2]
    if max(height, width) <= TILE:
        factor = TILE // max(height, width)
        return image.resize((width * factor, height * factor), Image.Resampling.NEAREST)
    scale = TILE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _fit(text: str, font: Any, width: int, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` pixels, with '...' where it was cut (keys keep their file name)."""
    from PIL import ImageFont

    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap font draws Latin-1 only
        text = text.encode("latin-1", "replace").decode("latin-1")
    if font.getlength(text) <= width:
        return text
    for cut in range(len(text) - 1, 0, -1):
        candidate = "..." + text[-cut:] if keep_end else text[:cut] + "..."
        if font.getlength(candidate) <= width:
            return candidate
    return "..."


def draw_sheet(tiles: list[tuple[np.ndarray, list[str]]]) -> bytes:
    """The tiles in a grid of ``COLUMNS``, each captioned below; PNG bytes (fixed settings: same bytes)."""
    from PIL import Image, ImageDraw

    columns = min(COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    cell_h = TILE + CAPTION_LINES * LINE_H + 2 * PAD
    sheet = Image.new("RGB", (columns * CELL_W + PAD, rows * cell_h + PAD), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for n, (pixels, lines) in enumerate(tiles):
        x, y = PAD + (n % columns) * CELL_W, PAD + (n // columns) * cell_h
        thumb = thumbnail(pixels)
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), fill=(236, 236, 236))
        sheet.paste(thumb, (x + (TILE - thumb.width) // 2, y + (TILE - thumb.height) // 2))
        for i, line in enumerate(lines[:CAPTION_LINES]):
            text = _fit(line, font, CELL_W - PAD, keep_end=i == 0)
            draw.text((x, y + TILE + 3 + i * LINE_H), text, fill=(20, 20, 20) if i < 2 else (70, 70, 70), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=False, compress_level=3)  # 9: 6x the time for 1% smaller
    return buffer.getvalue()


def _ops(params: str) -> list[str]:
    """The ops that ran, one short line each (``preview.describe``)."""
    import json

    from pipeline.format.detection_records import ops_params
    from pipeline.report.preview import describe

    try:
        return describe(ops_params(json.loads(params)))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ["(params unreadable)"]


def captions(key: str, copy: int, label: str, ops: list[str]) -> list[str]:
    """Key, copy and label, then the ops that ran, cut to the caption's lines."""
    room = CAPTION_LINES - 2
    if len(ops) > room:
        ops = ops[: room - 1] + [f"+{len(ops) - room + 1} more"]
    return [key, f"copy {copy} | {label}", *ops]


def split_sheet(root: str, split_info: SplitInfo, manifest: Manifest) -> tuple[bytes, list[dict]]:
    """PNG bytes of the split's sheet (empty when it has no records) and the sampled records' details.

    With the manifest's ``targets`` (detection records) each tile has its boxes, masks and keypoints drawn,
    and the caption says how many objects the record holds instead of a class label.
    """
    if manifest.targets is not None:
        return _targets_sheet(root, split_info, manifest, manifest.targets)
    classes = manifest.classes
    tiles, details = [], []
    for shard, position, record in sample_records(root, split_info):
        rec = parse(record)
        label = classes[rec["label"]] if 0 <= rec["label"] < len(classes) else f"label {rec['label']}"
        if manifest.targets is not None:
            label = f"{rec['objects']} objects"
        ops = _ops(rec["params"])
        tiles.append((display_pixels(rec, manifest.preprocessing), captions(rec["key"], rec["copy"], label, ops)))
        details.append(
            {"key": rec["key"], "copy": rec["copy"], "label": label, "shard": shard, "position": position, "ops": ops}
        )
    return (draw_sheet(tiles) if tiles else b""), details


def _targets_sheet(
    root: str, split_info: SplitInfo, manifest: Manifest, targets: TargetsInfo
) -> tuple[bytes, list[dict]]:
    """``split_sheet`` for detection records: parsed without TensorFlow, targets drawn on the thumbnail."""
    from pipeline.format.detection_records import parse_detection_example
    from pipeline.report.draw_targets import TileTargets, draw_targets

    tiles, details = [], []
    for shard, position, record in sample_records(root, split_info):
        parsed = parse_detection_example(record)
        rec = {"image": parsed.image, "encoding": parsed.encoding, "shape": list(parsed.shape)}
        pixels = display_pixels(rec, manifest.preprocessing)
        thumb = np.asarray(thumbnail(pixels))  # drawn at display size: lines and names stay crisp
        drawn = TileTargets.from_objects(parsed).resized(pixels.shape, thumb.shape)
        thumb = draw_targets(thumb, drawn, targets.classes, targets.keypoints, mask_ignore=targets.mask_ignore)
        label = objects_caption(len(parsed.boxes), removed_count(parsed.params))
        ops = _ops(parsed.params)
        tiles.append((thumb, captions(parsed.key, parsed.copy, label, ops)))
        details.append(
            {"key": parsed.key, "copy": parsed.copy, "label": label, "shard": shard, "position": position, "ops": ops}
        )
    return (draw_sheet(tiles) if tiles else b""), details


def objects_caption(objects: int, removed: int | None) -> str:
    """``3 objects``, and ``, 1 removed`` when the record says how many its rules removed."""
    text = f"{objects} object{'' if objects == 1 else 's'}"
    return text if removed is None else f"{text}, {removed} removed"


def removed_count(params: str) -> int | None:
    """How many objects the removal rules took out of a detection record (its params' last entry); else None."""
    import json

    from pipeline.format.detection_records import removed_counts
    from transforms.targets.types import Removed

    try:
        entries = json.loads(params)
        counts = removed_counts(entries) if isinstance(entries, list) else None
        return None if counts is None else Removed(**counts).total
    except (ValueError, TypeError):
        return None
