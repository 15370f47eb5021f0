"""TensorFlow Datasets metadata, so ``tfds.builder_from_directory(DST)`` reads an output folder as it is.

TFDS needs, beside the shards, ``dataset_info.json`` (name, version, and per
split the shard lengths and a file name template matching our shard names)
and ``features.json`` (how to decode each feature), plus ``label.labels.txt``
for class names. They are written here as JSON in the layout TFDS 4.9 writes
itself (protobuf JSON: camelCase keys, int64 as strings), so augbeam needs no
tensorflow-datasets at run time; ``tests/pipeline/format/test_tfds_info.py`` reads them with it.

The features name only the record's flat keys (``image``, ``label``, ``key``,
``copy``, ``params``, ``source_sha256``): TFDS parses only the keys it is
given, so ``image/shape`` and the other ``/`` keys stay in the records
unread (in TFDS a ``/`` means a nested feature).
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.format.manifest import Manifest, SplitInfo
from pipeline.format.records import MASK_ENCODED

DATASET_NAME = "augbeam"
VERSION = "1.0.0"
FILE_FORMAT = "tfrecord"
# Our names are {split}-{shard:05d}-of-{num_shards:05d}.tfrecord; TFDS formats {SHARD_X_OF_Y} the same
# way (both numbers padded to max(5, digits of num_shards)), checked per run in ``_shard_names_match``.
FILEPATH_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.tfrecord"
LABELS_FILE = "label.labels.txt"
DATASET_INFO = "dataset_info.json"

_FEATURES = "tensorflow_datasets.core.features."
_TENSOR = _FEATURES + "tensor_feature.Tensor"
_IMAGE = _FEATURES + "image_feature.Image"
_CLASS_LABEL = _FEATURES + "class_label_feature.ClassLabel"
_TEXT = _FEATURES + "text_feature.Text"
_FEATURES_DICT = _FEATURES + "features_dict.FeaturesDict"
_SEQUENCE = _FEATURES + "sequence_feature.Sequence"
_BBOX = _FEATURES + "bounding_boxes.BBoxFeature"


def make_files(out: str, manifest: Manifest) -> dict[str, bytes]:
    """``dataset_info.json``, ``features.json`` and, when the run has classes, usually ``label.labels.txt``.

    Returns nothing when TFDS could not name the shards as we do (100000
    shards or more in a split): TFDS cannot read such a folder, and the run
    must not fail over it at the very end.
    """
    del out  # everything comes from the manifest
    if not all(_shard_names_match(split, info) for split, info in manifest.splits.items()):
        return {}
    features, files = _features(manifest)
    info: dict[str, Any] = {
        "name": DATASET_NAME,
        "version": VERSION,
        "description": _description(manifest),
        "fileFormat": FILE_FORMAT,
        "splits": [_split_info(split, manifest.splits[split]) for split in sorted(manifest.splits)],
    }
    if manifest.classes:
        info["supervisedKeys"] = {"tuple": {"items": [{"featureKey": "image"}, {"featureKey": "label"}]}}
    files[DATASET_INFO] = _json(info)
    files["features.json"] = _json(features)
    return files


def tfds_shard_name(split: str, shard: int, num_shards: int) -> str:
    """The file name TFDS derives from ``FILEPATH_TEMPLATE`` (as ``naming.ShardedFileTemplate`` does)."""
    digits = max(5, len(str(num_shards)))
    return f"{split}-{shard:0{digits}d}-of-{num_shards:0{digits}d}.tfrecord"


def _shard_names_match(split: str, info: SplitInfo) -> bool:
    shards = info.shards
    return all(s.file == tfds_shard_name(split, i, len(shards)) for i, s in enumerate(shards))


def _split_info(split: str, info: SplitInfo) -> dict[str, Any]:
    # int64 fields as strings: protobuf's JSON form, as TFDS writes them.
    return {
        "name": split,
        "filepathTemplate": FILEPATH_TEMPLATE,
        "numBytes": str(sum(s.bytes for s in info.shards)),
        "shardLengths": [str(s.records) for s in info.shards],
    }


def _features(manifest: Manifest) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The ``FeaturesDict`` proto as JSON, and the label names file it needs (if any)."""
    docs = {name: spec["doc"] for name, spec in manifest.features.items()}
    image = manifest.image
    height, width, channels = image.shape
    shape = {"dimensions": [str(height), str(width), str(channels)]}
    if image.encoding in ("jpeg", "png"):
        image_feature = _feature(
            _IMAGE, _image_doc(manifest), image={"shape": shape, "dtype": "uint8", "encodingFormat": image.encoding}
        )
    else:  # raw little-endian pixels: what Tensor(encoding="bytes") decodes with tf.io.decode_raw
        image_feature = _feature(
            _TENSOR, _image_doc(manifest), tensor={"shape": shape, "dtype": image.stored_dtype, "encoding": "bytes"}
        )
    if manifest.targets is not None:
        return _target_features(manifest, image_feature, docs), {}
    label_feature, files = _label_feature(manifest.classes, docs["label"])
    features = {
        "image": image_feature,
        "label": label_feature,
        "key": _feature(_TEXT, docs["key"], text={}),
        "copy": _feature(_TENSOR, docs["copy"], tensor={"shape": {}, "dtype": "int64", "encoding": "none"}),
        "params": _feature(_TEXT, docs["params"], text={}),
        "source_sha256": _feature(_TEXT, docs["source_sha256"], text={}),
        **_column_features(manifest, docs),
    }
    return {"pythonClassName": _FEATURES_DICT, "featuresDict": {"features": features}}, files


def _column_features(manifest: Manifest, docs: dict[str, str]) -> dict[str, Any]:
    """The listing's target columns every split holds: ``labels`` a ``Sequence`` of ``ClassLabel``, ``values`` a
    float32 ``[D]`` tensor, the semantic mask an ``Image`` of one channel (class ids, PNG).

    TFDS parses every feature it is given in every split, so a column only some splits hold is left to
    ``augbeam.load``.
    """
    splits = list(manifest.splits.values())
    common = set.intersection(*(set(info.columns) for info in splits)) if splits else set()
    out: dict[str, Any] = {}
    if "labels" in common:
        names = {"names": list(manifest.classes)}
        doc = docs.get("labels", "class indices (multi-label)")
        label = _feature(_CLASS_LABEL, doc, jsonFeature={"json": json.dumps(names, sort_keys=True)})
        out["labels"] = _feature(_SEQUENCE, doc, sequence={"feature": label, "length": "-1"})
    dims = {info.values_dim for info in splits}
    if "values" in common and len(dims) == 1:
        shape = {"dimensions": [str(dims.pop())]}
        tensor = {"shape": shape, "dtype": "float32", "encoding": "none"}
        out["values"] = _feature(_TENSOR, docs.get("values", "regression targets"), tensor=tensor)
    if "mask" in common:
        height, width, _ = manifest.image.shape
        shape = {"dimensions": [str(height), str(width), "1"]}
        image = {"shape": shape, "dtype": "uint8", "encodingFormat": "png"}
        out[MASK_ENCODED] = _feature(_IMAGE, docs.get(MASK_ENCODED, "semantic mask: class ids"), image=image)
    return out


def _target_features(manifest: Manifest, image_feature: dict[str, Any], docs: dict[str, str]) -> dict[str, Any]:
    """Detection records: the image and ``objects``, a ``Sequence`` of ``BBoxFeature`` and ``ClassLabel``.

    TFDS's ``BBoxFeature`` reads one key of 4 floats per box in (ymin, xmin, ymax, xmax) order, so it cannot
    read the OD API's four ``image/object/bbox/*`` lists: the records also hold ``objects/bbox`` and
    ``objects/label`` for it. A TFDS feature's name is its key in the record, so a JPEG or PNG image is
    ``image/encoded`` (decoded by ``Image``), a raw one ``image`` (as for classification records).
    """
    assert manifest.targets is not None
    classes = list(manifest.targets.classes)
    bbox = {"shape": {"dimensions": ["4"]}, "dtype": "float32", "bboxFormat": "REL_YXYX"}
    objects = {
        "bbox": _feature(_BBOX, docs["objects/bbox"], boundingBox=bbox),
        "label": _feature(_CLASS_LABEL, docs["objects/label"], jsonFeature={"json": json.dumps({"names": classes})}),
    }
    sequence = {"feature": {"pythonClassName": _FEATURES_DICT, "featuresDict": {"features": objects}}, "length": "-1"}
    image_name = "image/encoded" if manifest.image.encoding in ("jpeg", "png") else "image"
    features = {
        image_name: image_feature,
        "objects": _feature(_SEQUENCE, "the objects of the image", sequence=sequence),
        "key": _feature(_TEXT, docs["key"], text={}),
        "copy": _feature(_TENSOR, docs["copy"], tensor={"shape": {}, "dtype": "int64", "encoding": "none"}),
        "params": _feature(_TEXT, docs["params"], text={}),
        "source_sha256": _feature(_TEXT, docs["source_sha256"], text={}),
    }
    return {"pythonClassName": _FEATURES_DICT, "featuresDict": {"features": features}}


def _label_feature(classes: tuple[str, ...], doc: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``ClassLabel`` when the run has classes (TFDS also reads -1 as "no label"), else an int64 tensor.

    TFDS keeps the names in ``label.labels.txt``, one a line, stripped, and
    reads it in the locale's encoding. When a name would not come back the
    same from it (spaces at either end, a line break, non-ASCII), the names
    go in ``features.json`` instead (ASCII JSON), which TFDS passes on to
    ``ClassLabel(names=...)``.
    """
    if not classes:
        return _feature(_TENSOR, doc, tensor={"shape": {}, "dtype": "int64", "encoding": "none"}), {}
    if all(_survives_names_file(name) for name in classes):
        names_file = ("\n".join(classes) + "\n").encode("ascii")
        return _feature(_CLASS_LABEL, doc, classLabel={"numClasses": str(len(classes))}), {LABELS_FILE: names_file}
    return _feature(_CLASS_LABEL, doc, jsonFeature={"json": json.dumps({"names": list(classes)}, sort_keys=True)}), {}


def _survives_names_file(name: str) -> bool:
    """TFDS reads the names file with ``split("\\n")`` and ``strip()``: the name must come back whole."""
    return bool(name) and name.isascii() and name == name.strip() and len(name.splitlines()) == 1


def _feature(python_class: str, doc: str, **content: Any) -> dict[str, Any]:
    return {"pythonClassName": python_class, "description": doc, **content}


def _image_doc(manifest: Manifest) -> str:
    image, pre = manifest.image, manifest.preprocessing
    height, width, _ = image.shape
    if pre["applied"] == "in_records":
        low, high = pre["output_range"]
        return (
            f"{image.encoding} [{height}, {width}, 3], {pre['name']} preprocessing already applied "
            f"({pre['channel_order']}, values in [{low:g}, {high:g}])"
        )
    what = f"{image.encoding}-encoded" if image.encoding in ("jpeg", "png") else "raw"
    return (
        f"uint8 [{height}, {width}, 3] augmented pixels in [0, 255] ({what}); {pre['name']} preprocessing NOT applied"
    )


def _description(manifest: Manifest) -> str:
    """What the data is and, above all, whether the model's preprocessing is in it."""
    config, image, pre = manifest.config, manifest.image, manifest.preprocessing
    height, width, _ = image.shape
    classes = manifest.classes
    lines = [
        f"Images augmented offline by augbeam {manifest.producer['augbeam']}, resized to {height}x{width} "
        f"and stored as {image.encoding}, for model preprocessing {pre['name']!r}.",
        _preprocessing_note(pre),
    ]
    for split in sorted(manifest.splits):
        info = manifest.splits[split]
        how = f"{len(config['ops'])} augmentation ops" if info.augmented else "no augmentation"
        lines.append(f"Split {split!r}: {info.counts.written} records, {info.counts.copies} per input, {how}.")
    if manifest.targets is not None:
        lines.append(
            f"Objects: boxes (objects/bbox, normalised ymin, xmin, ymax, xmax) and labels (objects/label, 0-based "
            f"into {len(manifest.targets.classes)} class names); masks and keypoints are in the records' "
            "TF Object Detection API keys (read them with augbeam.load)."
        )
    elif classes:
        lines.append(f"Labels: indices into {len(classes)} class names; -1 would mark an unlabeled input.")
    else:
        lines.append("Labels: none; every label is -1.")
    lines.append(
        f"Random choices come from seed {config['seed']}; each record's params feature holds those of its "
        "copy (JSON). manifest.json in this folder has the full config and checksums."
    )
    return "\n".join(lines)


def _preprocessing_note(pre: dict[str, Any]) -> str:
    if pre["applied"] == "in_records":
        low, high = pre["output_range"]
        return (
            f"The image feature holds the model input: {pre['name']} preprocessing ({pre['mode']}, "
            f"{pre['channel_order']}, values in [{low:g}, {high:g}]) is already applied; do not apply it again."
        )
    if pre["mode"] == "identity":
        return (
            f"The image feature holds uint8 pixels in [0, 255]; {pre['name']} needs no preprocessing "
            "beyond a cast to float32."
        )
    if pre["mode"] == "mean_std":
        how = f"x / 255 - mean, divided by std, per RGB channel: mean {pre['mean']}, std {pre['std']}"
    elif pre.get("keras_module"):
        how = f"tf.keras.applications.{pre['keras_module']}.preprocess_input"
    else:
        low, high = pre["output_range"]
        how = f"{pre['mode']} mode: [0, 255] to [{low:g}, {high:g}]"
    return (
        f"The image feature holds uint8 pixels in [0, 255]: the {pre['name']} preprocessing is NOT applied "
        f"in this TFDS view. Apply it once yourself ({how}), or read with augbeam.load, "
        "which does."
    )


def _json(value: Any) -> bytes:
    """Deterministic bytes: sorted keys, ASCII only, no times."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("ascii")
