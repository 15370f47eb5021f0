"""The TFRecord framing and the Example bytes: what TensorFlow reads, what protobuf writes, checksums."""

from __future__ import annotations

import io

import pytest

from pipeline.format.records import FIELD_ORDER, TFRecordWriter, build_example, parse_example, parse_spec


def test_tfrecord_framing_reads_back_in_tensorflow(tmp_path):
    import tensorflow as tf

    records = [
        build_example(
            image=bytes([i]) * 10,
            shape=(1, 2, 3),
            dtype="uint8",
            encoding="uint8",
            label=i,
            key=f"k/{i} ü.png",
            copy=i,
            params="[]",
            source_sha256="ab",
        )
        for i in range(5)
    ]
    buffer = io.BytesIO()
    writer = TFRecordWriter(buffer)
    for record in records:
        writer.write(record)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(buffer.getvalue())
    assert writer.records == 5 and writer.bytes == len(buffer.getvalue())
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert read == records
    parsed = tf.io.parse_single_example(read[3], parse_spec())
    assert parsed["key"].numpy().decode() == "k/3 ü.png" and int(parsed["label"]) == 3
    assert parsed["image/shape"].numpy().tolist() == [1, 2, 3]


@pytest.mark.parametrize("label", [-1, 0, 7, 2**40])
def test_parse_example_without_tensorflow_equals_tensorflows_parse(label):
    """The driver's reader (protobuf, schema declared without TensorFlow) gives what TensorFlow's parser gives,
    negatives and big ints included, with TensorFlow's own Example classes loaded beside it."""
    import tensorflow as tf

    from pipeline.format.records import parse_example

    record = build_example(
        image=bytes(range(256)) * 3,
        shape=(16, 16, 3),
        dtype="uint8",
        encoding="uint8",
        label=label,
        key="train/ü/é 1.png",
        copy=300,
        params='[{"op": "x"}]',
        source_sha256="ab" * 32,
    )
    ours = parse_example(record)
    theirs = tf.train.Example.FromString(record).features.feature
    assert set(ours) == set(theirs)
    for name, feature in theirs.items():
        kind = feature.WhichOneof("kind")
        assert ours[name] == list(getattr(feature, kind).value), name
    assert ours["label"] == [label] and ours["image/shape"] == [16, 16, 3]

    def delimited(field: int, body: bytes) -> bytes:
        return bytes([field << 3 | 2, len(body)]) + body

    # An int64 list written unpacked (one varint per value), as older writers may: -2 is 10 varint bytes.
    minus_two = bytes([0xFE] + [0xFF] * 8 + [0x01])
    int64_list = b"\x08\x03" + b"\x08" + minus_two
    entry = delimited(1, b"n") + delimited(2, delimited(3, int64_list))
    data = delimited(1, delimited(1, entry))
    assert tf.train.Example.FromString(data).features.feature["n"].int64_list.value == [3, -2]
    assert parse_example(data)["n"] == [3, -2]


def test_examples_are_deterministic():
    kwargs = dict(
        image=b"x",
        shape=(1, 1, 3),
        dtype="uint8",
        encoding="png",
        label=0,
        key="k",
        copy=0,
        params="[]",
        source_sha256="00",
    )
    assert build_example(**kwargs) == build_example(**kwargs)


def _EMPTY_TARGETS(fields: dict) -> set[str]:  # noqa: N802 - target fields written with an empty list
    return {name for name in ("labels", "values") if fields.get(name) == ()}


def _protobuf_example(**fields) -> bytes:
    """The reference: the same Example through TensorFlow's protobuf classes, deterministic serialisation."""
    from tensorflow.core.example import example_pb2, feature_pb2

    def b(value: bytes) -> feature_pb2.Feature:
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[value]))

    def i(values: list[int]) -> feature_pb2.Feature:
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))

    feature = {
        "image": b(fields["image"]),
        "image/shape": i(list(fields["shape"])),
        "image/dtype": b(fields["dtype"].encode()),
        "image/encoding": b(fields["encoding"].encode()),
        "label": i([fields["label"]]),
        "key": b(fields["key"].encode("utf-8")),
        "copy": i([fields["copy"]]),
        "params": b(fields["params"].encode("utf-8")),
        "source_sha256": b(fields["source_sha256"].encode()),
    }
    if fields.get("labels") is not None:
        feature["labels"] = i(list(fields["labels"]))
    if fields.get("values") is not None:
        feature["values"] = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=fields["values"]))
    if fields.get("mask_png") is not None:
        feature["image/segmentation/class/encoded"] = b(fields["mask_png"])
        feature["image/segmentation/class/format"] = b(b"png")
    return example_pb2.Example(features=feature_pb2.Features(feature=feature)).SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"image": b"", "label": 0, "copy": 0, "key": "", "params": "", "shape": (0, 0, 3)},
        {"image": bytes(range(256)) * 3, "label": -1, "copy": 7, "key": "a/ü €.png", "params": "[]"},
        {"image": b"\x00" * (224 * 224 * 3 * 4), "label": 2**40, "copy": 127, "key": "k" * 300, "shape": (224, 224, 3)},
        {"image": b"\xff" * 200, "label": 128, "copy": 16384, "key": "x", "params": "p" * 70000, "dtype": "float16"},
        {"image": b"jpeg", "label": -(2**63), "copy": 2**63 - 1, "key": "k", "encoding": "jpeg", "shape": (1, 1, 3)},
        {"image": b"x" * 9, "label": 1, "copy": 0, "key": "k", "labels": (0, 3, 200), "values": (0.5, -1e30, 3.25)},
        {"image": b"x", "label": -1, "copy": 1, "key": "k", "labels": (), "values": (), "mask_png": b""},
        {"image": b"y" * 300, "label": 0, "copy": 2, "key": "k", "mask_png": b"\x89PNG" * 100, "values": (1.0,)},
    ],
)
def test_examples_are_the_bytes_protobuf_writes(fields):
    """build_example writes the Example by hand; it must equal protobuf's deterministic bytes, field for field."""
    import tensorflow as tf
    from google.protobuf.internal import api_implementation

    full = {"shape": (2, 3, 3), "params": "[]", "dtype": "uint8", "encoding": "uint8", "source_sha256": "ab" * 32}
    full |= fields
    ours = build_example(**full)
    reference = _protobuf_example(**full)
    if api_implementation.Type() == "upb":  # the pinned backend: its deterministic map order is FIELD_ORDER
        assert ours == reference
    assert len(ours) == len(reference)
    assert sorted(parse_example(ours).items()) == sorted(parse_example(reference).items())
    # The map entries in FIELD_ORDER (a parser gives its own map order): each entry's key, then its Feature.
    written = [name for name in FIELD_ORDER if name in parse_example(reference) or name in _EMPTY_TARGETS(full)]
    heads = [b"\x0a" + bytes([len(name)]) + name.encode() + b"\x12" for name in written]
    assert all(ours.count(head) == 1 for head in heads)
    assert sorted(heads, key=ours.index) == heads
    parsed = tf.io.parse_single_example(ours, parse_spec())
    assert int(parsed["label"]) == full["label"] and parsed["image"].numpy() == full["image"]
    assert parsed["key"].numpy().decode("utf-8") == full["key"]


def test_framing_uses_the_hardware_crc32c_and_it_equals_crcmods():
    """google-crc32c is a dependency (fast); crcmod, the fallback, gives the same checksums."""
    import os

    import crcmod.predefined
    import google_crc32c

    from pipeline.format import records

    assert records._crc32c_extend is google_crc32c.extend
    slow = crcmod.predefined.mkPredefinedCrcFun("crc-32c")
    for data in (b"", b"a", os.urandom(100_003)):
        assert google_crc32c.value(data) == slow(data)
        assert records._crc32c_extend(records._crc32c_extend(0, data[:7]), data[7:]) == slow(data)


def test_a_record_written_in_parts_is_the_record_written_whole():
    """The shard writer passes (prefix, image, suffix) unjoined: the same bytes, length, checksums and hash."""
    import hashlib
    import io

    from pipeline.format import records

    fields = dict(shape=(2, 2, 3), dtype="float32", encoding="float32", label=3, key="k/é", copy=1, params="[]")
    fields |= dict(image=bytes(range(48)) * 4, source_sha256="ab")
    parts = records.example_parts(**fields)
    whole = build_example(**fields)
    assert parts[1] is fields["image"] and b"".join(parts) == whole
    assert records.record_sha256(parts) == records.record_sha256(whole) == hashlib.sha256(whole).hexdigest()
    assert records.framed_length(parts) == records.framed_length(whole) == len(whole) + 16
    streams = []
    for record in (parts, whole):
        buffer = io.BytesIO()
        writer = TFRecordWriter(buffer)
        writer.write(record)
        streams.append((buffer.getvalue(), writer.sha256.hexdigest(), writer.bytes))
    assert streams[0] == streams[1]
