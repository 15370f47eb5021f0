"""The record schema (``tf.train.Example``) and a TFRecord writer for any Beam filesystem.

Examples are written out by hand, as protobuf's ``deterministic=True``
serialisation writes them (a fixed map order: byte-identical shards need
one), without building protobuf messages. Kept hand-written because it is
measured: a worker's Python per float32 record went from about 2.1 to 1.2 ms
when records stopped being built as messages and joined (the image, up to
600 KB, is hashed and written in place, never copied), with the same bytes
(tested against protobuf field by field). The TFRecord framing (writer and
``iter_records``) is hand-written for the same reason and because the readers
that need it (the report, ``augbeam verify``) run in the driver, where
TensorFlow's reader would cost a TensorFlow import (5-11 s measured) for a few
records; ``tf.data.TFRecordDataset`` is what training reads with.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Generator
from typing import IO, Any

FORMAT_VERSION = 2  # 2: the index and error table in one part per shard (was index.parquet, errors.parquet)
# The order of the Example's map entries: the one protobuf's upb backend (as pinned) writes with
# deterministic=True, which sorts keys that share a prefix longest first ("image/shape" before "image").
# Shards were written through protobuf before build_example wrote them by hand: the same bytes.
# The target fields (labels, values, the semantic mask) are written only by records whose listing has them.
MASK_ENCODED = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"
FIELD_ORDER = (
    "copy",
    "image/dtype",
    "image/encoding",
    MASK_ENCODED,
    MASK_FORMAT,
    "image/shape",
    "image",
    "key",
    "labels",
    "label",
    "params",
    "source_sha256",
    "values",
)
TARGET_FIELDS = ("labels", "values", MASK_ENCODED, MASK_FORMAT)

FEATURES: dict[str, dict[str, Any]] = {
    "image": {"type": "bytes", "shape": [], "doc": "pixels as the manifest's encoding says"},
    "image/shape": {"type": "int64", "shape": [3], "doc": "[height, width, 3] of the stored image"},
    "image/dtype": {"type": "bytes", "shape": [], "doc": "float32, float16 or uint8"},
    "image/encoding": {"type": "bytes", "shape": [], "doc": "float32, float16, uint8, jpeg or png"},
    "label": {"type": "int64", "shape": [], "doc": "class index (-1: unlabeled)"},
    "key": {"type": "bytes", "shape": [], "doc": "input path relative to the input root"},
    "copy": {"type": "int64", "shape": [], "doc": "augmented copy index of this key"},
    "params": {"type": "bytes", "shape": [], "doc": "JSON list of {op, version, applied, params}"},
    "source_sha256": {"type": "bytes", "shape": [], "doc": "sha256 of the source file's bytes (hex)"},
}
# Written only where the listing has the column (the manifest's split ``columns`` says which).
TARGET_FEATURES: dict[str, dict[str, Any]] = {
    "labels": {"type": "int64", "shape": [None], "doc": "sorted class indices (multi-label); the manifest's classes"},
    "values": {"type": "float", "shape": ["values_dim"], "doc": "regression targets, float32"},
    MASK_ENCODED: {"type": "bytes", "shape": [], "doc": "semantic mask: PNG, 8-bit class ids at the image's size"},
    MASK_FORMAT: {"type": "bytes", "shape": [], "doc": "png"},
}


def build_example(**fields: Any) -> bytes:
    """One serialised ``tf.train.Example`` (``example_parts``' fields): the bytes protobuf's deterministic
    serialisation gives (tested)."""
    return b"".join(example_parts(**fields))


def example_parts(
    *,
    image: bytes,
    shape: tuple[int, int, int],
    dtype: str,
    encoding: str,
    label: int,
    key: str,
    copy: int,
    params: str,
    source_sha256: str,
    labels: tuple[int, ...] | None = None,
    values: tuple[float, ...] | None = None,
    mask_png: bytes | None = None,
) -> tuple[bytes, bytes, bytes]:
    """A serialised Example as (what precedes the image's bytes, the image's bytes, what follows).

    Written out here rather than through the protobuf classes, and kept in three parts that are hashed,
    checksummed and written one after the other: building the message copied a float32 image (600 KB at
    224x224) into a ``BytesList`` and again when serialising, and joining copies it once more; about
    1 ms of a worker's Python per record, measured. The image itself is never copied here.
    ``labels``, ``values``, ``mask_png``: the listing's targets; None leaves the field out (the record's
    bytes are then those of a record without targets).
    """
    small = {
        "image/shape": _int64_feature(shape),
        "image/dtype": _bytes_feature(dtype.encode()),
        "image/encoding": _bytes_feature(encoding.encode()),
        "label": _int64_feature((label,)),
        "key": _bytes_feature(key.encode("utf-8")),
        "copy": _int64_feature((copy,)),
        "params": _bytes_feature(params.encode("utf-8")),
        "source_sha256": _bytes_feature(source_sha256.encode()),
    }
    if labels is not None:
        small["labels"] = _int64_feature(labels)
    if values is not None:
        small["values"] = _float_feature(values)
    if mask_png is not None:
        small[MASK_ENCODED] = _bytes_feature(mask_png)
        small[MASK_FORMAT] = _bytes_feature(b"png")
    at = FIELD_ORDER.index("image")
    before = b"".join(_entry_head(name, len(small[name])) + small[name] for name in FIELD_ORDER[:at] if name in small)
    after = b"".join(
        _entry_head(name, len(small[name])) + small[name] for name in FIELD_ORDER[at + 1 :] if name in small
    )
    # Feature{bytes_list: BytesList{value: [image]}}, without the image: its bytes follow.
    value_head = b"\x0a" + _uvarint(len(image))
    feature_head = b"\x0a" + _uvarint(len(value_head) + len(image)) + value_head
    image_head = _entry_head("image", len(feature_head) + len(image)) + feature_head
    size = len(before) + len(image_head) + len(image) + len(after)
    return b"\x0a" + _uvarint(size) + before + image_head, image, after


def _entry_head(name: str, feature_size: int) -> bytes:
    """A ``map<string, Feature>`` entry up to its Feature's bytes: tag, length, key, the Feature's tag and length."""
    head = _field(1, name.encode("utf-8")) + b"\x12" + _uvarint(feature_size)
    return b"\x0a" + _uvarint(len(head) + feature_size) + head


def _uvarint(value: int) -> bytes:
    """A protobuf varint; negative int64 values as their 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field (tag, length, data), for small field numbers."""
    return bytes([number << 3 | 2]) + _uvarint(len(data)) + data


def _bytes_feature(value: bytes) -> bytes:
    """Feature{bytes_list: BytesList{value: [value]}}."""
    return _field(1, _field(1, value))


def _int64_feature(values: tuple[int, ...] | list[int]) -> bytes:
    """Feature{int64_list: Int64List{value: values}}, packed as protobuf writes it (an empty list: no field)."""
    return _field(3, _field(1, b"".join(_uvarint(int(v)) for v in values)) if values else b"")


def _float_feature(values: tuple[float, ...] | list[float]) -> bytes:
    """Feature{float_list: FloatList{value: values}}: packed little-endian float32, as protobuf writes it."""
    return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)) if values else b"")


# tensorflow/core/example/{example,feature}.proto, the messages a reader needs, for protobuf's own parser.
# Declared here because the one installed package that ships them, TensorFlow (``tensorflow.core.example.
# example_pb2``), imports all of TensorFlow when its package loads: 5-11 s on this 2-core host
# (``python -X importtime -c "from tensorflow.core.example import example_pb2"``), against 0.2 ms to build
# these classes. tensorflow-metadata, tensorflow-datasets, tensorboard and Beam ship no Example message.
# A private pool, so TensorFlow's own classes load beside them wherever both are imported.
EXAMPLE_PROTO = """
name: "tensorflow/core/example/example.proto" package: "tensorflow" syntax: "proto3"
message_type { name: "BytesList" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_BYTES } }
message_type { name: "FloatList" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_FLOAT } }
message_type { name: "Int64List" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_INT64 } }
message_type {
  name: "Feature"
  field { name: "bytes_list" number: 1 type: TYPE_MESSAGE type_name: ".tensorflow.BytesList" oneof_index: 0 }
  field { name: "float_list" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.FloatList" oneof_index: 0 }
  field { name: "int64_list" number: 3 type: TYPE_MESSAGE type_name: ".tensorflow.Int64List" oneof_index: 0 }
  oneof_decl { name: "kind" }
}
message_type {
  name: "Features"
  field {
    name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tensorflow.Features.FeatureEntry"
  }
  nested_type {
    name: "FeatureEntry"
    options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING }
    field { name: "value" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.Feature" }
  }
}
message_type {
  name: "Example"
  field { name: "features" number: 1 type: TYPE_MESSAGE type_name: ".tensorflow.Features" }
}
"""


@functools.cache
def example_class() -> Any:
    """The ``tensorflow.Example`` message class from ``EXAMPLE_PROTO`` (built on first use: workers never read)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

    pool = descriptor_pool.DescriptorPool()
    pool.Add(text_format.Parse(EXAMPLE_PROTO, descriptor_pb2.FileDescriptorProto()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def parse_example(record: bytes) -> dict[str, list[bytes] | list[int] | list[float]]:
    """A serialised ``tf.train.Example``'s features by name, through protobuf, without importing TensorFlow.

    The driver reads a few records at finalize (the report's contact sheet); importing TensorFlow there
    would add seconds to every run whose workers are other processes. Names come in protobuf's map order,
    not the written order. Raises ``google.protobuf.message.DecodeError`` for bytes that are no Example.
    """
    out: dict[str, list[bytes] | list[int] | list[float]] = {}
    for name, feature in example_class().FromString(record).features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is not None:
            out[name] = list(getattr(feature, kind).value)
    return out


def parse_spec() -> dict[str, Any]:
    """The ``tf.io.parse_single_example`` spec for ``FEATURES``."""
    import tensorflow as tf

    kinds = {"bytes": tf.string, "int64": tf.int64}
    return {name: tf.io.FixedLenFeature(f["shape"], kinds[f["type"]]) for name, f in FEATURES.items()}


def _crc32c_function() -> Callable[[int, bytes], int]:
    """``extend(crc, data)``: the CRC32C of what ``crc`` covered followed by ``data`` (0 to start)."""
    try:
        import google_crc32c

        return google_crc32c.extend
    except ImportError:
        import crcmod.predefined  # installed by apache-beam[tfrecord], with its C extension

        crc32c = crcmod.predefined.mkPredefinedCrcFun("crc-32c")

        def extend(crc: int, data: bytes) -> int:
            return crc32c(data, crc)

        extend.__module__ = crc32c.__module__  # where the checksum is computed (the benchmark reports it)
        return extend


_crc32c_extend = _crc32c_function()


def _mask(crc: int) -> bytes:
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _masked_crc(data: bytes) -> bytes:
    return _mask(_crc32c_extend(0, data))


def framed_length(record: bytes | tuple[bytes, ...]) -> int:
    """Bytes a record (or its parts) takes in a TFRecord file: length (8), its CRC (4), the data, its CRC (4)."""
    return _length(record) + 16


def _length(record: bytes | tuple[bytes, ...]) -> int:
    return len(record) if isinstance(record, bytes) else sum(len(part) for part in record)


def record_sha256(record: bytes | tuple[bytes, ...]) -> str:
    """The sha256 (hex) of a record given whole or in parts."""
    digest = hashlib.sha256()
    for part in (record,) if isinstance(record, bytes) else record:
        digest.update(part)
    return digest.hexdigest()


class TFRecordWriter:
    """Frames records as TFRecord into a stream, counting records and hashing the bytes."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.records = 0
        self.bytes = 0

    def write(self, record: bytes | tuple[bytes, ...]) -> None:
        """Writes one record, given whole or as parts to be written one after another (never joined)."""
        parts = (record,) if isinstance(record, bytes) else tuple(record)
        length = struct.pack("<Q", _length(parts))
        crc = 0
        for part in parts:
            crc = _crc32c_extend(crc, part)
        for part in (length, _masked_crc(length), *parts, _mask(crc)):
            self._handle.write(part)
            self.sha256.update(part)
            self.bytes += len(part)
        self.records += 1


def iter_records(path: str) -> Generator[bytes, None, None]:
    """The records of a TFRecord file, checking lengths and masked CRC32Cs; ValueError when broken."""
    from pipeline import fsutil  # Beam's filesystems: only when a file is read

    with open(path, "rb") if fsutil.is_local(path) else fsutil.FileSystems.open(path) as handle:
        yield from read_records(handle)


def read_records(handle: IO[bytes]) -> Generator[bytes, None, None]:
    """``iter_records`` on an open stream (``augbeam verify`` hashes the bytes as they pass: one read)."""
    position = 0
    while True:
        head = handle.read(12)
        if not head:
            return
        if len(head) < 12 or _masked_crc(head[:8]) != head[8:12]:
            raise ValueError(f"bad record header at byte {position}")
        (length,) = struct.unpack("<Q", head[:8])
        body = handle.read(length + 4)
        if len(body) < length + 4 or _masked_crc(body[:length]) != body[length:]:
            raise ValueError(f"bad record data at byte {position} (truncated or corrupt)")
        position += 12 + length + 4
        yield body[:length]
