"""Reading augbeam output with ``tf.data``, with the model's preprocessing applied exactly once.

``load(DST, split="train")`` gives ``(image, label)`` pairs: float32
``[H, W, 3]`` with a static shape, ready for ``model.fit``. When the records
hold raw or compressed pixels the reader applies the preprocessing the
manifest names; when they hold the preprocessed tensor it only decodes. It
refuses a folder without a manifest (an unfinished run) and shards whose size
(or, asked, checksum) does not match it. Starting costs O(shards), never
O(records): nothing is read before the first batch but the manifest and a
stat per file. ``iter_index`` / ``iter_errors`` stream the per-shard parts of
the index and the error table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import (
    FORMAT_NAME,
    MANIFEST,
    ErrorRow,
    IndexRow,
    Manifest,
    SchemaError,
    ShardInfo,
    TableInfo,
)
from pipeline.format.records import FORMAT_VERSION
from pipeline.format.tables import iter_table

VERIFY_MODES = ("size", "full", "none")
DEFAULT_VERIFY = "size"  # O(shards) at load(); "full" reads every byte first


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


def shard_paths(path: str, manifest: Manifest, split: str, verify: str = DEFAULT_VERIFY) -> list[str]:
    """The split's shard files, checked against the manifest as ``verify`` says, before any record is read.

    ``size`` (the default): each shard and its index and error parts exist with the size the manifest
    names; a stat per file (one listing of the folder for a URL), no file's bytes, so it costs the same
    for a gigabyte and for terabytes; ``tf.data`` then checks each record's CRC as it reads it. ``full``:
    also the sha256 of each, which reads the whole split before the first batch (``augbeam verify``
    does that and more, once, for everyone). ``none``: nothing; a missing shard fails when reached.
    """
    if verify not in VERIFY_MODES:
        raise ReaderError(f"verify={verify!r}: choose one of {', '.join(VERIFY_MODES)}")
    splits = manifest.splits
    if split not in splits:
        raise ReaderError(f"{path!r} has no split {split!r}; it has: {', '.join(sorted(splits))}")
    root = fsutil.normalize(path)
    shards = splits[split].shards
    if verify != "none":
        files = [(what, info) for shard in shards for what, info in _files_of(shard)]
        sizes = _sizes(root, [info.name for _, info in files])
        for what, info in files:
            _check_file(path, fsutil.join(root, info.name), what, info, sizes[info.name], verify)
    return [fsutil.join(root, shard.file) for shard in shards]


def _files_of(shard: ShardInfo) -> list[tuple[str, TableInfo]]:
    """The shard and its two parts, each as (what it is, name/size/checksum)."""
    return [
        ("shard", TableInfo(shard.file, shard.records, shard.bytes, shard.sha256)),
        ("index part", shard.index),
        ("error part", shard.errors),
    ]


def _sizes(root: str, names: list[str]) -> dict[str, int | None]:
    """Each file's size (None: missing): a stat each for a local folder, one listing for a URL."""
    if fsutil.is_local(root):
        out: dict[str, int | None] = {}
        for name in names:
            try:
                out[name] = os.path.getsize(os.path.join(root, name))
            except OSError:
                out[name] = None
        return out
    prefix = root.rstrip("/") + "/"
    listed = {p[len(prefix) :]: size for p, size in fsutil.list_files(root) if p.startswith(prefix)}
    return {name: listed.get(name) for name in names}


def _check_file(path: str, full: str, what: str, info: TableInfo, size: int | None, verify: str) -> None:
    if size is None:
        raise ReaderError(f"{what} {info.name} listed in the manifest is missing from {path!r}")
    if size != info.bytes:
        raise ReaderError(f"{what} {full} has {size} bytes, the manifest says {info.bytes}: it was changed")
    if verify != "full":
        return
    digest = hashlib.sha256()
    with fsutil.open_read(full) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != info.sha256:
        raise ReaderError(f"{what} {full} does not match its checksum in the manifest: it is corrupt or was changed")


def iter_index(path: str, split: str | None = None) -> Iterator[IndexRow]:
    """Every written record's index row (of ``split``, or all), streamed part by part in shard order."""
    manifest = read_manifest(path)
    return iter_table(fsutil.normalize(path), manifest.index_tables(_known(path, manifest, split)), IndexRow)


def iter_errors(path: str, split: str | None = None) -> Iterator[ErrorRow]:
    """Every error row (of ``split``, or all), streamed part by part in shard order."""
    manifest = read_manifest(path)
    return iter_table(fsutil.normalize(path), manifest.error_tables(_known(path, manifest, split)), ErrorRow)


def _known(path: str, manifest: Manifest, split: str | None) -> str | None:
    if split is not None and split not in manifest.splits:
        raise ReaderError(f"{path!r} has no split {split!r}; it has: {', '.join(sorted(manifest.splits))}")
    return split


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
    verify: str = DEFAULT_VERIFY,
    shuffle_files: bool = False,
    seed: int | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(image, label)`` (plus a metadata dict if ``with_metadata``).

    ``expect_model`` refuses data made for another preprocessing. ``verify``
    (see ``shard_paths``): ``size``, the default, stats each shard and part
    against the manifest and leaves the records' CRCs to ``tf.data`` as it
    reads (a flipped bit fails that read with ``DataLossError``); ``full``
    also checks every file's sha256 first, reading the whole split before the
    first batch; ``none`` checks nothing. ``augbeam verify`` is the full check.
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
