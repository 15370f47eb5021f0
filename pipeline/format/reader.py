"""Reading augbeam output with ``tf.data``, with the model's preprocessing applied exactly once.

``load(DST, split="train")`` gives ``(image, label)`` pairs: float32
``[H, W, 3]`` with a static shape, ready for ``model.fit``. When the records
hold raw or compressed pixels the reader applies the preprocessing the
manifest names; when they hold the preprocessed tensor it only decodes. It
refuses a folder without a manifest (an unfinished run) and shards whose
checksum or size does not match it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import FORMAT_NAME, MANIFEST, Manifest, SchemaError, ShardInfo
from pipeline.format.records import FORMAT_VERSION

VERIFY_MODES = ("full", "size", "none")


class ReaderError(UserError):
    """The output folder cannot be read as asked; the message says why and what to do."""


def read_manifest(path: str) -> Manifest:
    """The manifest of an output folder; a folder without one is an unfinished run."""
    manifest_path = fsutil.join(fsutil.normalize(path), MANIFEST)
    if not fsutil.exists(manifest_path):
        raise ReaderError(
            f"{path!r} has no manifest.json: the run did not finish (or this is not augbeam output); "
            "run the job again with --overwrite"
        )
    try:
        data = json.loads(fsutil.read_bytes(manifest_path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{manifest_path!r} is not valid JSON ({exc}): it was changed or is not augbeam's") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ReaderError(f"{manifest_path!r} is not an augbeam manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise ReaderError(
            f"{path!r} has format version {data.get('format_version')}, this reader reads {FORMAT_VERSION}; "
            "use the augbeam version that wrote it, or rerun the job"
        )
    try:
        return Manifest.from_json(data)
    except (SchemaError, TypeError, ValueError, AttributeError) as exc:
        raise ReaderError(f"{manifest_path!r} is not a complete augbeam manifest ({exc}): it was changed") from None


def shard_paths(path: str, manifest: Manifest, split: str, verify: str = "full") -> list[str]:
    """The split's shard files, checked against the manifest (``full``: sha256, ``size``: bytes)."""
    if verify not in VERIFY_MODES:
        raise ReaderError(f"verify={verify!r}: choose one of {', '.join(VERIFY_MODES)}")
    splits = manifest.splits
    if split not in splits:
        raise ReaderError(f"{path!r} has no split {split!r}; it has: {', '.join(sorted(splits))}")
    root = fsutil.normalize(path)
    paths = []
    for shard in splits[split].shards:
        full = fsutil.join(root, shard.file)
        if not fsutil.exists(full):
            raise ReaderError(f"shard {shard.file} listed in the manifest is missing from {path!r}")
        if verify != "none":
            _check_shard(full, shard, verify)
        paths.append(full)
    return paths


def _check_shard(full: str, shard: ShardInfo, verify: str) -> None:
    if verify == "size" and fsutil.is_local(full):
        size = os.path.getsize(full)
        if size != shard.bytes:
            raise ReaderError(f"shard {full} has {size} bytes, the manifest says {shard.bytes}: it was changed")
        return
    digest = hashlib.sha256()
    with open(full, "rb") if fsutil.is_local(full) else fsutil.FileSystems.open(full) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != shard.sha256:
        raise ReaderError(f"shard {full} does not match its checksum in the manifest: it is corrupt or was changed")


def check_expected_model(path: str, made: Any, expect_model: str) -> None:
    """Refuses data whose preprocessing differs from ``expect_model``'s, naming both.

    Names that share a function are the same preprocessing (``resnet50`` and
    ``ResNet101``: caffe; ``efficientnet`` and ``EfficientNetB3``: pass-through).
    """
    from transforms.preprocess import get_preprocessing

    wanted = get_preprocessing(expect_model) if expect_model != "mean_std" else None
    same = wanted is not None and (wanted.mode, wanted.mean, wanted.std) == (made.mode, made.mean, made.std)
    if not same:
        made_range = ", ".join(f"{v:g}" for v in made.output_range)
        raise ReaderError(
            f"{path!r} was made for model preprocessing {made.name!r} ({made.mode}, values in [{made_range}]), "
            f"not {expect_model!r}; rerun the job with --model {expect_model}"
        )


def load(
    path: str,
    split: str = "train",
    batch_size: int | None = None,
    with_metadata: bool = False,
    expect_model: str | None = None,
    verify: str = "full",
    shuffle_files: bool = False,
    seed: int | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(image, label)`` (plus a metadata dict if ``with_metadata``).

    ``expect_model`` refuses data made for another preprocessing. ``verify``
    checks shard checksums (``full``), sizes only (``size``) or nothing.
    """
    import tensorflow as tf

    from pipeline.format.records import parse_spec
    from transforms import encoding as enc
    from transforms.preprocess import Preprocessing

    manifest = read_manifest(path)
    preprocessing = Preprocessing.from_description(manifest.preprocessing)
    if expect_model is not None:
        check_expected_model(path, preprocessing, expect_model)
    files = shard_paths(path, manifest, split, verify)
    height, width, _ = manifest.image.shape
    encoding = manifest.image.encoding
    spec = parse_spec()

    def parse(record: Any) -> Any:
        example = tf.io.parse_single_example(record, spec)
        image = enc.decode(example["image"], encoding, preprocessing, height, width)
        image = tf.ensure_shape(image, [height, width, 3])
        label = example["label"]
        if with_metadata:
            meta = {"key": example["key"], "copy": example["copy"], "params": example["params"]}
            return image, label, meta
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle_files,
    )
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
