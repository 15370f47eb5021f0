"""Detection / segmentation / keypoint records as ``tf.data`` dicts (``augbeam.load`` on a folder with targets).

Each element is a dict (shapes for one record; N objects, K keypoints):

- ``image`` float32 [H, W, 3], the model's preprocessing applied once (as ``augbeam.load`` for classification)
- ``boxes`` float32 [N, 4] ``xyxy`` in absolute pixels of the image (Keras 3 ``bounding_box_format="xyxy"``)
- ``classes`` int32 [N], 0-based indices into the manifest's ``targets.classes``
- ``num_objects`` int32, N before any padding
- ``masks`` uint8 [N, H, W] 0/1 (instance segmentation), ``keypoints`` float32 [N, K, 3] (x, y pixels,
  visibility), ``semantic_mask`` uint8 [H, W] (class indices, 255 no class): when the manifest's tasks have them
- ``key``, ``params`` (tf.string), ``copy`` (int64)

Batched with ``padded_batch``: boxes and classes padded with -1 (Keras' dense box format), masks and
keypoints with 0 (visibility 0: absent). ``max_objects`` pads every record to that many objects, so
batches have a static shape; a record with more fails the read with one message naming it.
"""

from __future__ import annotations

from typing import Any

from pipeline.format.manifest import Manifest
from transforms import encoding as enc
from transforms.preprocess import Preprocessing

PAD = -1  # boxes and classes past num_objects
OBJECT_KEYS = ("boxes", "classes", "masks", "keypoints")


def load_targets(
    records: Any, manifest: Manifest, preprocessing: Preprocessing, batch_size: int | None, max_objects: int | None
) -> Any:
    """``records`` (``reader.record_dataset``) parsed into dicts, padded to ``max_objects``, ``padded_batch``-ed."""
    import tensorflow as tf

    from pipeline.format.reader import ReaderError

    bad = isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1
    if max_objects is not None and bad:
        raise ReaderError(f"max_objects={max_objects!r}: give a whole number >= 1, or leave it out")
    targets = manifest.targets
    assert targets is not None
    height, width, _ = manifest.image.shape
    encoding = manifest.image.encoding
    num_keypoints = len(targets.keypoints.names) if targets.keypoints is not None else 0
    spec = _spec(encoding, targets.tasks)

    def parse(record: Any, *_checked: Any) -> dict[str, Any]:
        ex = tf.io.parse_single_example(record, spec)
        payload = ex["image/encoded"] if encoding in ("jpeg", "png") else ex["image"]
        image = tf.ensure_shape(enc.decode(payload, encoding, preprocessing, height, width), [height, width, 3])
        corners = [tf.sparse.to_dense(ex[f"image/object/bbox/{c}"]) for c in ("xmin", "ymin", "xmax", "ymax")]
        boxes = tf.stack(corners, axis=1) * tf.constant([width, height, width, height], tf.float32)
        labels = tf.sparse.to_dense(ex["image/object/class/label"])
        out = {
            "image": image,
            "boxes": boxes,
            "classes": tf.cast(labels - targets.label_offset, tf.int32),
            "num_objects": tf.shape(labels, out_type=tf.int32)[0],
            "key": ex["key"],
            "copy": ex["copy"],
            "params": ex["params"],
        }
        if targets.has("instance_segmentation"):
            out["masks"] = tf.map_fn(
                lambda png: tf.reshape(tf.io.decode_png(png, channels=1), [height, width]),
                tf.sparse.to_dense(ex["image/object/mask"]),
                fn_output_signature=tf.TensorSpec([height, width], tf.uint8),
            )
        if targets.has("keypoints"):
            x = tf.sparse.to_dense(ex["image/object/keypoint/x"]) * width
            y = tf.sparse.to_dense(ex["image/object/keypoint/y"]) * height
            v = tf.cast(tf.sparse.to_dense(ex["image/object/keypoint/visibility"]), tf.float32)
            out["keypoints"] = tf.reshape(tf.stack([x, y, v], axis=1), [-1, num_keypoints, 3])
        if targets.has("semantic_segmentation"):
            png = ex["image/segmentation/class/encoded"]
            out["semantic_mask"] = tf.reshape(tf.io.decode_png(png, channels=1), [height, width])
        if max_objects is not None:
            out = _pad_to(out, max_objects)
        return out

    dataset = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.padded_batch(batch_size, padding_values=_padding(dataset.element_spec))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _spec(encoding: str, tasks: tuple[str, ...]) -> dict[str, Any]:
    """The ``tf.io.parse_single_example`` spec for the keys the manifest's tasks put in every record."""
    import tensorflow as tf

    image_key = "image/encoded" if encoding in ("jpeg", "png") else "image"
    spec: dict[str, Any] = {
        image_key: tf.io.FixedLenFeature([], tf.string),
        "key": tf.io.FixedLenFeature([], tf.string),
        "copy": tf.io.FixedLenFeature([], tf.int64),
        "params": tf.io.FixedLenFeature([], tf.string),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    }
    spec.update({f"image/object/bbox/{c}": tf.io.VarLenFeature(tf.float32) for c in ("xmin", "ymin", "xmax", "ymax")})
    if "instance_segmentation" in tasks:
        spec["image/object/mask"] = tf.io.VarLenFeature(tf.string)
    if "keypoints" in tasks:
        spec["image/object/keypoint/x"] = tf.io.VarLenFeature(tf.float32)
        spec["image/object/keypoint/y"] = tf.io.VarLenFeature(tf.float32)
        spec["image/object/keypoint/visibility"] = tf.io.VarLenFeature(tf.int64)
    if "semantic_segmentation" in tasks:
        spec["image/segmentation/class/encoded"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def _pad_to(out: dict[str, Any], max_objects: int) -> dict[str, Any]:
    """Every object tensor padded to ``max_objects`` rows (static shape); more objects fail with the key."""
    import tensorflow as tf

    n = out["num_objects"]
    check = tf.debugging.Assert(
        n <= max_objects,
        ["augbeam.load: record", out["key"], "has", n, f"objects, more than max_objects={max_objects}; raise it"],
    )
    with tf.control_dependencies([check]):
        extra = max_objects - n
    padded = dict(out)
    for name in OBJECT_KEYS:
        if name in out:
            value = out[name]
            pad = [[0, extra]] + [[0, 0]] * (len(value.shape) - 1)
            fill = PAD if name in ("boxes", "classes") else 0
            padded[name] = tf.ensure_shape(
                tf.pad(value, pad, constant_values=tf.cast(fill, value.dtype)), [max_objects, *value.shape[1:]]
            )
    return padded


def _padding(spec: dict[str, Any]) -> dict[str, Any]:
    """``padded_batch``'s values: -1 for boxes and classes, 0 (or "") for the rest."""
    import tensorflow as tf

    return {
        name: tf.constant(PAD if name in ("boxes", "classes") else ("" if s.dtype == tf.string else 0), s.dtype)
        for name, s in spec.items()
    }
