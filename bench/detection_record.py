"""The detection record's writer: protobuf's deterministic serialisation against a hand writer of the same bytes.

python bench/detection_record.py [--objects 20] [--size 224] [--repeats 200] [--json out.json]

One record of ``--objects`` objects with instance masks and 17 keypoints each, a float32 image (the largest
payload: 600 KB at 224x224) and a JPEG one. Times per record (medians of ``--repeats``): the whole
``build_detection_example`` (mask PNGs included), its mask PNG encoding alone, and the serialisation of the
same fields through protobuf and through a hand writer (``hand_written`` below, the way
``pipeline/format/records.py`` writes classification records; checked to give the same bytes). A record's
worker time (decode, augment, encode) is several ms at this size (docs/performance.md), so the writers'
difference is compared with that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pipeline.format import records  # noqa: E402
from pipeline.format.detection_records import build_detection_example, encode_png  # noqa: E402
from pipeline.format.records import example_class, parse_example  # noqa: E402
from transforms.targets.types import Objects  # noqa: E402


def sample(n: int, size: int) -> Objects:
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, size / 2, (n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(4, size / 2, (n, 2))], 1)
    masks = np.zeros((n, size, size), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[i, y0:y1, x0:x1] = 1
    keypoints = np.concatenate([rng.uniform(0, size, (n, 17, 2)), rng.integers(0, 3, (n, 17, 1))], 2)
    return Objects(boxes, rng.integers(0, 80, n), np.arange(n), np.zeros(n, bool), masks, keypoints)


def fields_of(record: bytes) -> dict[str, tuple[str, list[Any]]]:
    """The record's features as (kind, values), in protobuf's deterministic order (read back from its bytes)."""
    message = example_class().FromString(record)
    out = {}
    for name, feature in message.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value))
    order = _written_order(record)
    return {name: out[name] for name in order}


def _written_order(record: bytes) -> list[str]:
    names = []
    view, i = memoryview(record), 0
    _, i = _varint(view, 1)  # Example.features length (after tag 0x0a)
    i += 0
    pos = i
    while pos < len(view):
        pos += 1  # tag of Features.feature
        length, pos = _varint(view, pos)
        entry = view[pos : pos + length]
        key_len, k = _varint(entry, 1)
        names.append(bytes(entry[k : k + key_len]).decode())
        pos += length
    return names


def _varint(view: Any, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = view[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def hand_written(fields: dict[str, tuple[str, list[Any]]]) -> bytes:
    """The same Example written by hand (records.py's helpers plus float and repeated-bytes lists)."""
    u, f = records._uvarint, records._field
    body = []
    for name, (kind, values) in fields.items():
        if kind == "bytes_list":
            feature = f(1, b"".join(f(1, v) for v in values))
        elif kind == "int64_list":
            feature = f(3, f(1, b"".join(u(int(v)) for v in values)) if values else b"")
        else:
            feature = f(2, f(1, struct.pack(f"<{len(values)}f", *values)) if values else b"")
        body.append(records._entry_head(name, len(feature)) + feature)
    inner = b"".join(body)
    return b"\x0a" + u(len(inner)) + inner


def median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json")
    args = parser.parse_args()
    size, objects = args.size, sample(args.objects, args.size)
    results: dict[str, Any] = {"objects": args.objects, "size": size, "keypoints": 17}
    for encoding, image in (("float32", bytes(size * size * 12)), ("jpeg", bytes(30_000))):
        kw = dict(
            image=image, shape=(size, size, 3), dtype="float32" if encoding == "float32" else "uint8",
            encoding=encoding, key="train/x.jpg", copy=1, params="[]" * 100, source_sha256="ab" * 32,
            objects=objects, class_names=tuple(f"c{i}" for i in range(80)),
        )  # fmt: skip
        record = build_detection_example(**kw)
        fields = fields_of(record)
        assert hand_written(fields) == record, "the hand writer must give protobuf's bytes"
        assert parse_example(record).keys() == fields.keys()
        message = example_class().FromString(record)

        def protobuf_serialise(message: Any = message, fields: dict = fields) -> bytes:
            example = example_class()()
            for name, (kind, values) in fields.items():
                getattr(example.features.feature[name], kind).value.extend(values)
            return bytes(example.SerializeToString(deterministic=True))

        assert protobuf_serialise() == record
        results[encoding] = {
            "record_bytes": len(record),
            "build_detection_example_ms": median_ms(lambda kw=kw: build_detection_example(**kw), args.repeats),
            "mask_pngs_ms": median_ms(lambda: [encode_png(m) for m in objects.masks], args.repeats),
            "protobuf_serialise_ms": median_ms(protobuf_serialise, args.repeats),
            "hand_writer_ms": median_ms(lambda fields=fields: hand_written(fields), args.repeats),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
