"""Reading augbeam output with ``tf.data``, with the model's preprocessing applied exactly once.

``load(DST, split="train")`` gives ``(image, label)`` pairs: float32
``[H, W, 3]`` with a static shape, ready for ``model.fit``. When the records
hold raw or compressed pixels the reader applies the preprocessing the
manifest names; when they hold the preprocessed tensor it only decodes. It
refuses a folder without a manifest (an unfinished run) and shards whose size
(or, asked, checksum) does not match it. Starting costs O(shards), never
O(records): nothing is read before the first batch but the manifest and a
stat per file. ``iter_index`` / ``iter_errors`` stream the per-shard parts of
the index and the error table. ``load(..., epoch=e)`` serves one copy of
each image per epoch (copy ``e mod K``), filtered inside ``tf.data``.
A split whose listing had target columns (``labels``, ``values``, ``mask``:
the manifest's split ``columns``) gives ``(image, targets)``, ``targets`` a
dict of ``label`` and those columns (``target_spec``).

A folder can be rewritten by another run while a training job reads it
(``--overwrite`` removes the manifest first). ``FolderWatch`` checks, each
time a shard file is opened (every epoch), that the folder still holds the
run ``load`` started from: a stat of ``manifest.json`` (O(1)), and only when
that changed, the new manifest's run id and the split's shard checksums.
Another run's data is refused with one error instead of being served.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import threading
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


Identity = tuple[Any, ...]


def manifest_identity(root: str) -> Identity | None:
    """What changes when ``manifest.json`` is written again or removed; None when there is none. O(1).

    A local file: device, inode, size, mtime and ctime (a rewrite goes through a new file and a rename). A
    URL: size and update time from one metadata request, or the content's sha256 where the store has none.
    """
    path = fsutil.join(root, MANIFEST)
    if fsutil.is_local(root):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([path])[0].metadata_list
    if not found:
        return None
    meta = found[0]
    if meta.last_updated_in_seconds:
        return (meta.size_in_bytes, meta.last_updated_in_seconds)
    try:
        return (meta.size_in_bytes, hashlib.sha256(fsutil.read_bytes(path)).hexdigest())
    except FileNotFoundError:
        return None


class FolderWatch:
    """Tells whether the folder still holds the run a ``load`` started from; asked at every shard file's open.

    Cheap while nothing changed: one stat of ``manifest.json``. When it changed, the new manifest is read:
    the same run id and the same shard files (names and sha256) of the split mean the same bytes (a rerun of
    the same input and config), which may be read on; anything else, or no manifest, is another run's.
    """

    def __init__(self, path: str, identity: Identity | None, manifest: Manifest, split: str) -> None:
        self.path = path
        self.root = fsutil.normalize(path)
        self.identity = identity  # taken before the manifest was read, so a change in between is seen
        self.run = manifest.run
        self.split = split
        self.shards = _shard_sums(manifest, split)
        self._lock = threading.Lock()

    def problem(self) -> str:
        """'' while the folder holds the same run, else the one-line reason to stop reading."""
        now = manifest_identity(self.root)
        with self._lock:
            if now is not None and now == self.identity:
                return ""
        if now is None:
            return self._replaced("its manifest.json is gone: a run is rewriting the folder")
        try:
            manifest = read_manifest(self.path)
        except ReaderError:
            return self._replaced("its manifest.json is gone or incomplete: a run is rewriting the folder")
        if manifest.run != self.run or _shard_sums(manifest, self.split) != self.shards:
            return self._replaced(f"run {_short_id(self.run)} then, {_short_id(manifest.run)} now")
        with self._lock:
            self.identity = now  # rewritten by a run of the same input and config: the same bytes
        return ""

    def check(self) -> None:
        """Raises ``ReaderError`` when the folder no longer holds the run (``problem``)."""
        message = self.problem()
        if message:
            raise ReaderError(message)

    def _replaced(self, why: str) -> str:
        # No quotes: TensorFlow's Assert, which carries this message out of tf.data, escapes them.
        return f"the folder {self.path} was replaced by another run while reading ({why}); reload it with augbeam.load"


def _shard_sums(manifest: Manifest, split: str) -> tuple[tuple[str, str], ...] | None:
    info = manifest.splits.get(split)
    return None if info is None else tuple((shard.file, shard.sha256) for shard in info.shards)


def _short_id(run: str | None) -> str:
    return "unknown" if run is None else run[:12]


def _guarded(watch: FolderWatch, value: Any) -> Any:
    """``value`` once ``watch`` found the folder unchanged, computed after ``value``; else the op fails.

    The check runs in Python (``tf.py_function``, once per shard file opened, never per record); its
    message leaves ``tf.data`` through ``tf.debugging.Assert`` as one ``InvalidArgumentError``.
    """
    import tensorflow as tf

    message = tf.py_function(lambda _after: watch.problem(), [value], tf.string)
    message = tf.ensure_shape(message, [])
    with tf.control_dependencies([tf.debugging.Assert(tf.equal(message, ""), [message])]):
        return tf.identity(value)


def open_watched(file: Any, watch: FolderWatch | None) -> Any:
    """One shard's records as ``tf.data``; with a watch, ``(record, "")`` pairs, the folder checked before
    the file is opened and again once its first record is read (so after the open).

    The second check is what rules out a mix: ``--overwrite`` removes the manifest before any shard
    changes, so a manifest unchanged after the open means the opened file is the run's, and a local file
    stays that file once open. The first makes the usual case (the manifest already gone) this error
    rather than a missing file's. ``zip`` asks its inputs in order, so the second check's one element is
    made after the first record and before it is passed on; then a constant follows each record, with no
    per-record function call (a ``tf.cond`` per record cost a quarter of the throughput of tiny records).
    """
    import tensorflow as tf

    if watch is None:
        return tf.data.TFRecordDataset(file)
    records = tf.data.TFRecordDataset(_guarded(watch, file))
    after_open = tf.data.Dataset.from_tensors(file).map(lambda f: _guarded(watch, f))
    checked = after_open.map(lambda _f: tf.constant("")).concatenate(tf.data.Dataset.from_tensors("").repeat())
    return tf.data.Dataset.zip((records, checked))


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


def check_epoch(epoch: Any) -> None:
    """Refuses an ``epoch`` that is not None or a whole number >= 0 (numpy's integers count), in one line."""
    if epoch is None:
        return
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ReaderError(
            f"epoch={epoch!r}: give the training epoch as a whole number >= 0 (counted from 0), "
            "or leave it out to read every copy"
        )


def epoch_copy(epoch: int, copies: int) -> int:
    """The copy index an epoch serves: ``epoch mod copies``, so K epochs show each of K copies once."""
    return int(epoch) % copies


def _copy_of(record: Any) -> Any:
    """A serialised record's copy index, parsing that feature alone (the image is neither copied nor decoded)."""
    import tensorflow as tf

    return tf.io.parse_single_example(record, {"copy": tf.io.FixedLenFeature([], tf.int64)})["copy"]


def record_dataset(
    path: str,
    manifest: Manifest,
    identity: Identity | None,
    split: str,
    verify: str,
    shuffle_files: bool,
    seed: int | None,
    epoch: int | None,
) -> Any:
    """The split's serialised records as ``tf.data`` (with a watch, ``(record, "")`` pairs), shards checked as
    ``verify`` says, interleaved, and filtered to one copy per key when ``epoch`` is given."""
    import tensorflow as tf

    files = shard_paths(path, manifest, split, verify)
    watch = FolderWatch(path, identity, manifest, split) if verify != "none" else None
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        lambda file: open_watched(file, watch),
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle_files,
    )
    if epoch is not None:
        wanted = epoch_copy(epoch, manifest.splits[split].counts.copies)
        dataset = dataset.filter(lambda record, *_checked: _copy_of(record) == wanted)
    return dataset


def target_spec(columns: tuple[str, ...], values_dim: int | None) -> dict[str, Any]:
    """The ``tf.io.parse_single_example`` spec of a split's target fields (``records.TARGET_FEATURES``)."""
    import tensorflow as tf

    from pipeline.format.records import MASK_ENCODED

    spec: dict[str, Any] = {}
    if "labels" in columns:
        spec["labels"] = tf.io.RaggedFeature(tf.int64)
    if "values" in columns:
        spec["values"] = tf.io.FixedLenFeature([values_dim or 0], tf.float32)
    if "mask" in columns:
        spec[MASK_ENCODED] = tf.io.FixedLenFeature([], tf.string)
    return spec


def parse_targets(example: dict[str, Any], columns: tuple[str, ...], height: int, width: int) -> dict[str, Any]:
    """A parsed record's targets: ``labels`` int64 [n], ``values`` float32 [D], ``mask`` uint8 [H, W]."""
    import tensorflow as tf

    from pipeline.format.records import MASK_ENCODED

    targets = {"label": example["label"]}
    if "labels" in columns:
        targets["labels"] = example["labels"]
    if "values" in columns:
        targets["values"] = example["values"]
    if "mask" in columns:
        mask = tf.io.decode_png(example[MASK_ENCODED], channels=1, dtype=tf.uint8)
        targets["mask"] = tf.ensure_shape(mask[:, :, 0], [height, width])
    return targets


def load(
    path: str,
    split: str = "train",
    batch_size: int | None = None,
    with_metadata: bool = False,
    expect_model: str | None = None,
    verify: str = DEFAULT_VERIFY,
    shuffle_files: bool = False,
    seed: int | None = None,
    epoch: int | None = None,
    max_objects: int | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(image, label)`` (plus a metadata dict if ``with_metadata``).

    A folder of detection / segmentation / keypoint records (the manifest has ``targets``) gives dicts
    instead (``detection_reader.load_targets``: ``image``, ``boxes``, ``classes``, ...), batched with
    ``padded_batch``; ``max_objects`` pads every record's objects to that many (a record with more fails).
    A split with target columns gives ``(image, targets)`` instead: ``targets`` a dict with ``label`` and,
    as the split has them, ``labels`` (int64 class indices, a ragged ``[B, None]`` once batched: make
    multi-hot with the manifest's ``num_classes``), ``values`` (float32 ``[D]``) and ``mask`` (uint8
    ``[H, W]`` class ids, 255 where ``--resize pad`` padded).

    ``epoch=e`` (see ``epoch_copy``) serves one variant per image: of each key, only the record whose
    copy is ``e mod K``, K the split's copies. A key whose copy ``e mod K`` failed is absent that epoch
    (its error row in ``iter_errors`` says why); no other copy stands in, so every epoch's records are
    known from the index alone. Without ``epoch``, every record.

    ``expect_model`` refuses data made for another preprocessing. ``verify``
    (see ``shard_paths``): ``size``, the default, stats each shard and part
    against the manifest and leaves the records' CRCs to ``tf.data`` as it
    reads (a flipped bit fails that read with ``DataLossError``); ``full``
    also checks every file's sha256 first, reading the whole split before the
    first batch; ``none`` checks nothing. ``augbeam verify`` is the full check.

    With ``size`` or ``full``, every shard file's open (every epoch) also
    checks that the folder still holds this run (``FolderWatch``): data of a
    run that replaced it fails with ``tf.errors.InvalidArgumentError`` saying
    "was replaced by another run while reading", never reaching the model.
    """
    import tensorflow as tf

    from pipeline.format.records import parse_spec
    from transforms import encoding as enc
    from transforms.preprocess import Preprocessing

    check_epoch(epoch)
    identity = manifest_identity(fsutil.normalize(path))  # before the read: a change in between is seen later
    manifest = read_manifest(path)
    preprocessing = Preprocessing.from_description(manifest.preprocessing)
    if expect_model is not None:
        check_expected_model(path, preprocessing, expect_model)
    if manifest.targets is not None:
        from pipeline.format.detection_reader import load_targets

        records = record_dataset(path, manifest, identity, split, verify, shuffle_files, seed, epoch)
        return load_targets(records, manifest, preprocessing, batch_size, max_objects)
    if max_objects is not None:
        raise ReaderError(f"max_objects={max_objects!r}: {path!r} holds classification records, which have no objects")
    dataset = record_dataset(path, manifest, identity, split, verify, shuffle_files, seed, epoch)  # checks the split
    height, width, _ = manifest.image.shape
    encoding = manifest.image.encoding
    columns = manifest.splits[split].columns
    spec = {**parse_spec(), **target_spec(columns, manifest.splits[split].values_dim)}

    def parse(record: Any, *_checked: Any) -> Any:  # with a watch: (record, "") pairs (``open_watched``)
        example = tf.io.parse_single_example(record, spec)
        image = enc.decode(example["image"], encoding, preprocessing, height, width)
        image = tf.ensure_shape(image, [height, width, 3])
        label = parse_targets(example, columns, height, width) if columns else example["label"]
        if with_metadata:
            meta = {"key": example["key"], "copy": example["copy"], "params": example["params"]}
            return image, label, meta
        return image, label

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        # labels differ in length per record: batched as a RaggedTensor
        dataset = dataset.ragged_batch(batch_size) if "labels" in columns else dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
