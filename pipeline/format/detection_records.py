"""The detection / segmentation / keypoint record: a ``tf.train.Example`` in the TF Object Detection API schema.

The keys and types the OD API's ``TfExampleDecoder`` documents (it decodes
``image/encoded`` only for ``--encoding jpeg`` or ``png``; the OD API itself is
not installed here, so that decoder is not run in the tests), plus augbeam's own keys (``key``, ``copy``, ``params``,
``source_sha256``, the image's shape, dtype and encoding) and the two keys
TensorFlow Datasets needs for its ``BBoxFeature`` (``objects/bbox``,
``objects/label``; see ``DETECTION_FEATURES``).

Built through protobuf's ``SerializeToString(deterministic=True)`` (the
``Example`` class ``records.example_class`` declares, no TensorFlow), not by
hand as ``records.build_example`` is: measured with ``bench/detection_record.py``
(20 objects with masks and 17 keypoints, 224x224, this 2-core host), protobuf
serialises in 0.48 ms (float32 image) / 0.38 ms (JPEG) against a hand writer's
0.67 / 0.31 ms for the same bytes, while the whole record takes 8-16 ms (the 20
mask PNGs alone 6.6 ms): the hand writer would save under 1%, so the simpler
writer is kept. The builder takes the
objects already in the output image's frame (``transforms.targets.types``:
``xyxy`` absolute pixels) and normalises them here by the output size.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np

from pipeline.format.manifest import LABEL_OFFSET
from pipeline.format.records import example_class, parse_example
from transforms.targets.types import Objects

JPEG_PNG = ("jpeg", "png")

# Every key a detection record may hold: type, what it holds, and when it is written.
DETECTION_FEATURES: dict[str, dict[str, Any]] = {
    "image/encoded": {"type": "bytes", "doc": "the JPEG or PNG image (encodings jpeg, png)"},
    "image/format": {"type": "bytes", "doc": "jpeg or png (encodings jpeg, png)"},
    "image": {"type": "bytes", "doc": "raw little-endian pixels (encodings uint8, float32, float16)"},
    "image/height": {"type": "int64", "doc": "height of the stored image"},
    "image/width": {"type": "int64", "doc": "width of the stored image"},
    "image/shape": {"type": "int64", "doc": "[height, width, 3]"},
    "image/dtype": {"type": "bytes", "doc": "float32, float16 or uint8"},
    "image/encoding": {"type": "bytes", "doc": "float32, float16, uint8, jpeg or png"},
    "image/source_id": {"type": "bytes", "doc": "the key"},
    "image/filename": {"type": "bytes", "doc": "the key"},
    "image/object/bbox/xmin": {"type": "float", "doc": "[N] left edges / width, in [0, 1]"},
    "image/object/bbox/ymin": {"type": "float", "doc": "[N] top edges / height"},
    "image/object/bbox/xmax": {"type": "float", "doc": "[N] right edges / width"},
    "image/object/bbox/ymax": {"type": "float", "doc": "[N] bottom edges / height"},
    "image/object/class/label": {"type": "int64", "doc": "[N] class index + 1 (OD API label maps are 1-based)"},
    "image/object/class/text": {"type": "bytes", "doc": "[N] class names"},
    "image/object/is_crowd": {"type": "int64", "doc": "[N] 1 for a crowd region"},
    "image/object/id": {"type": "int64", "doc": "[N] the objects' indices in the source annotation"},
    "image/object/mask": {"type": "bytes", "doc": "[N] one PNG per object, 0/1, at the image's size"},
    "image/object/keypoint/x": {"type": "float", "doc": "[N*K] x / width, object-major"},
    "image/object/keypoint/y": {"type": "float", "doc": "[N*K] y / height"},
    "image/object/keypoint/visibility": {"type": "int64", "doc": "[N*K] 0 absent, 1 occluded, 2 visible"},
    "image/segmentation/class/encoded": {"type": "bytes", "doc": "PNG of class indices (255: no class)"},
    "image/segmentation/class/format": {"type": "bytes", "doc": "png"},
    "objects/bbox": {"type": "float", "doc": "[N*4] ymin, xmin, ymax, xmax normalised (TFDS BBoxFeature)"},
    "objects/label": {"type": "int64", "doc": "[N] class index, 0-based (TFDS ClassLabel)"},
    "key": {"type": "bytes", "doc": "input path relative to the input root"},
    "copy": {"type": "int64", "doc": "augmented copy index of this key"},
    "params": {"type": "bytes", "doc": "JSON list of {op, version, applied, params}, then the removal counts"},
    "source_sha256": {"type": "bytes", "doc": "sha256 of the source file's bytes (hex)"},
}


# A detection record's params: the ops' entries, then one entry ``{"removed": {...}}`` with the counts by reason
# and the source ids of the objects the removal rules took out (``transforms.targets.types.Removed``).
REMOVED = "removed"


def ops_params(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ops' entries of a record's params (what replays it): a detection record's removal entry left out."""
    return entries[:-1] if entries and REMOVED in entries[-1] else entries


def removed_counts(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A detection record's removal entry (counts by reason, ``ids``), or None for a classification record."""
    return dict(entries[-1][REMOVED]) if entries and REMOVED in entries[-1] else None


def encode_png(array: np.ndarray) -> bytes:
    """A uint8 [H, W] array as a greyscale PNG (Pillow, pinned: the same bytes for the same array)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """A greyscale PNG back to uint8 [H, W] (Pillow; for tools that read records without TensorFlow)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), np.uint8)


def build_detection_example(
    *,
    image: bytes,
    shape: tuple[int, int, int],
    dtype: str,
    encoding: str,
    key: str,
    copy: int,
    params: str,
    source_sha256: str,
    objects: Objects,
    class_names: tuple[str, ...],
    semantic_mask: np.ndarray | None = None,
) -> bytes:
    """One serialised detection ``tf.train.Example`` (``DETECTION_FEATURES``), deterministic bytes.

    ``objects`` are in the output image's frame (``xyxy`` absolute pixels of an image of ``shape``);
    ``class_names`` the manifest's ``targets.classes``; ``semantic_mask`` uint8 [H, W] class indices.
    Masks and keypoints are written when ``objects`` has them (also for zero objects, so every record of
    a split has the same keys). Raises ValueError for arrays whose shapes do not match the image.
    """
    height, width, _ = shape
    n = len(objects)
    _check(objects, height, width, semantic_mask, len(class_names))
    boxes = np.asarray(objects.boxes, np.float64).reshape(n, 4)
    xmin, ymin, xmax, ymax = (boxes[:, i] / (width if i % 2 == 0 else height) for i in range(4))
    classes = np.asarray(objects.classes, np.int64)
    example = example_class()()
    feature = example.features.feature

    def put(name: str, kind: str, values: Any) -> None:
        values_list = getattr(feature[name], kind)
        values_list.SetInParent()  # an empty list is still written as one (the key is there with no values)
        values_list.value.extend(values)

    if encoding in JPEG_PNG:
        put("image/encoded", "bytes_list", [image])
        put("image/format", "bytes_list", [encoding.encode()])
    else:
        put("image", "bytes_list", [image])
    put("image/height", "int64_list", [height])
    put("image/width", "int64_list", [width])
    put("image/shape", "int64_list", list(shape))
    put("image/dtype", "bytes_list", [dtype.encode()])
    put("image/encoding", "bytes_list", [encoding.encode()])
    put("image/source_id", "bytes_list", [key.encode("utf-8")])
    put("image/filename", "bytes_list", [key.encode("utf-8")])
    for name, values in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
        put(f"image/object/bbox/{name}", "float_list", values.tolist())
    put("image/object/class/label", "int64_list", (classes + LABEL_OFFSET).tolist())
    put("image/object/class/text", "bytes_list", [class_names[c].encode("utf-8") for c in classes])
    put("image/object/is_crowd", "int64_list", np.asarray(objects.iscrowd, np.int64).tolist())
    put("image/object/id", "int64_list", np.asarray(objects.ids, np.int64).tolist())
    if objects.masks is not None:
        put("image/object/mask", "bytes_list", [encode_png(m) for m in objects.masks])
    if objects.keypoints is not None:
        points = np.asarray(objects.keypoints, np.float64)
        put("image/object/keypoint/x", "float_list", (points[..., 0] / width).reshape(-1).tolist())
        put("image/object/keypoint/y", "float_list", (points[..., 1] / height).reshape(-1).tolist())
        put("image/object/keypoint/visibility", "int64_list", points[..., 2].astype(np.int64).reshape(-1).tolist())
    if semantic_mask is not None:
        put("image/segmentation/class/encoded", "bytes_list", [encode_png(semantic_mask)])
        put("image/segmentation/class/format", "bytes_list", [b"png"])
    put("objects/bbox", "float_list", np.stack([ymin, xmin, ymax, xmax], axis=1).reshape(-1).tolist())
    put("objects/label", "int64_list", classes.tolist())
    put("key", "bytes_list", [key.encode("utf-8")])
    put("copy", "int64_list", [copy])
    put("params", "bytes_list", [params.encode("utf-8")])
    put("source_sha256", "bytes_list", [source_sha256.encode()])
    return bytes(example.SerializeToString(deterministic=True))


def _check(objects: Objects, height: int, width: int, semantic_mask: np.ndarray | None, num_classes: int) -> None:
    """The integrator's arrays must match the output image; a mismatch is a bug, said with the shapes."""
    n = len(objects)
    if np.asarray(objects.boxes).shape != (n, 4):
        raise ValueError(f"boxes have shape {np.asarray(objects.boxes).shape}, expected ({n}, 4)")
    classes = np.asarray(objects.classes)
    if n and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"class indices {classes.tolist()} are outside the {num_classes} class names")
    if objects.masks is not None and objects.masks.shape != (n, height, width):
        raise ValueError(f"masks have shape {objects.masks.shape}, expected ({n}, {height}, {width})")
    if objects.keypoints is not None and (objects.keypoints.ndim != 3 or objects.keypoints.shape[::2] != (n, 3)):
        raise ValueError(f"keypoints have shape {objects.keypoints.shape}, expected ({n}, K, 3)")
    if semantic_mask is not None and semantic_mask.shape != (height, width):
        raise ValueError(f"the semantic mask has shape {semantic_mask.shape}, expected ({height}, {width})")


@dataclasses.dataclass(frozen=True, eq=False)
class ParsedDetection:
    """A detection record as NumPy, read without TensorFlow (``parse_detection_example``), for tools.

    Boxes and keypoints are back in absolute pixels of the stored image (``xyxy``, as ``Objects``; float32,
    so within float32's rounding of what was written); classes are 0-based; ``image`` the stored bytes.
    """

    key: str
    copy: int
    params: str
    source_sha256: str
    shape: tuple[int, int, int]
    encoding: str
    image: bytes
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels
    classes: np.ndarray  # int32 [N]
    ids: np.ndarray  # int64 [N]
    iscrowd: np.ndarray  # bool [N]
    masks: np.ndarray | None  # uint8 [N, H, W]
    keypoints: np.ndarray | None  # float32 [N, K, 3]
    semantic_mask: np.ndarray | None  # uint8 [H, W]


def parse_detection_example(record: bytes) -> ParsedDetection:
    """A serialised detection record to NumPy through protobuf (``records.parse_example``), no TensorFlow.

    Raises ``google.protobuf.message.DecodeError`` for bytes that are no Example, KeyError for a
    classification record (no ``image/object/bbox/xmin``).
    """
    f = parse_example(record)
    height, width, channels = (int(v) for v in f["image/shape"])
    size = np.array([width, height, width, height], np.float32)
    boxes = np.stack([np.asarray(f[f"image/object/bbox/{c}"], np.float32) for c in ("xmin", "ymin", "xmax", "ymax")], 1)
    n = boxes.shape[0]
    masks = None
    if "image/object/mask" in f:
        pngs = f["image/object/mask"]
        masks = np.stack([decode_png(m) for m in pngs]) if n else np.zeros((0, height, width), np.uint8)  # type: ignore[arg-type]
    keypoints = None
    if "image/object/keypoint/x" in f:
        x = np.asarray(f["image/object/keypoint/x"], np.float32) * width
        y = np.asarray(f["image/object/keypoint/y"], np.float32) * height
        v = np.asarray(f["image/object/keypoint/visibility"], np.float32)
        keypoints = np.stack([x, y, v], 1).reshape(n, -1, 3) if n else np.zeros((0, 0, 3), np.float32)
    semantic = f.get("image/segmentation/class/encoded")
    image = f.get("image/encoded", f.get("image"))
    return ParsedDetection(
        key=_text(f["key"]),
        copy=int(f["copy"][0]),
        params=_text(f["params"]),
        source_sha256=_text(f["source_sha256"]),
        shape=(height, width, channels),
        encoding=_text(f["image/encoding"]),
        image=bytes(image[0]) if image else b"",  # type: ignore[arg-type]
        boxes=(boxes * size).astype(np.float32) if n else np.zeros((0, 4), np.float32),
        classes=np.asarray(f["image/object/class/label"], np.int32) - LABEL_OFFSET,
        ids=np.asarray(f.get("image/object/id", []), np.int64),
        iscrowd=np.asarray(f.get("image/object/is_crowd", []), bool),
        masks=masks,
        keypoints=keypoints,
        semantic_mask=decode_png(semantic[0]) if semantic else None,  # type: ignore[arg-type]
    )


def _text(values: Any) -> str:
    return bytes(values[0]).decode("utf-8")
