"""The output folder's typed seams: manifest, split info, shard entries, index and error rows, shard summaries.

Every reader and writer of these goes through the dataclasses here, never through dicts read by string
keys. ``to_json()`` gives exactly the JSON the format has always had (same keys, same values), so
manifests and sidecars keep their bytes; ``from_json()`` reads it back and says in one line what is
missing. The free-form parts (the resolved config, the preprocessing description, the producer's
versions, the feature table) stay plain JSON objects: they are recorded, not interpreted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

from transforms.rng import stable_hash64
from transforms.targets.types import MASK_IGNORE, KeypointSpec, TargetRules

MANIFEST = "manifest.json"
FORMAT_NAME = "augbeam"
# Stages at which a failure is the input's (every copy of it), not one record's.
INPUT_STAGES = ("listing", "read", "decode")
DUPLICATE = "listing/DuplicateInput"  # an error row kept once: not a failure
TEMP_FILE = re.compile(r"\.tmp-[0-9a-f]{32}$")  # fsutil.temp_name's suffix: a write that never committed

JSON = dict[str, Any]


class SchemaError(ValueError):
    """A manifest or sidecar lacks a field or has one of the wrong kind."""


def _get(data: Mapping[str, Any], name: str, where: str) -> Any:
    try:
        return data[name]
    except (KeyError, TypeError):
        raise SchemaError(f"{where} has no {name!r}") from None


class _Flat:
    """JSON for a record whose fields are plain JSON values: one mechanism instead of a hand copy per class."""

    WHAT: ClassVar[str] = "an entry"  # how a missing field's message names the record

    def to_json(self) -> JSON:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        return cast(Any, cls)(**{f.name: _get(data, f.name, cls.WHAT) for f in fields})


@dataclasses.dataclass(frozen=True)
class FileInfo(_Flat):
    """A file the manifest names, with its size and checksum (``name`` for index/errors, ``file`` for shards)."""

    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class TableInfo(_Flat):
    """``index.parquet`` or ``errors.parquet``: name, rows, size, checksum."""

    WHAT = "a table entry"

    name: str
    rows: int
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class DaliIndexInfo(_Flat):
    """A shard's DALI index file (``--dali-index``)."""

    WHAT = "a dali_index entry"

    file: str
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard file as the manifest lists it, with its parts of the index and of the error table.

    Each shard's worker writes its own index and error rows beside it
    (``index-<shard name>.parquet``, ``errors-<shard name>.parquet``), so no
    process ever holds every row and readers open only the parts they need.
    """

    file: str
    records: int
    bytes: int
    sha256: str
    index: TableInfo
    errors: TableInfo
    dali_index: DaliIndexInfo | None = None

    def to_json(self) -> JSON:
        out: JSON = {
            "file": self.file,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "index": self.index.to_json(),
            "errors": self.errors.to_json(),
        }
        if self.dali_index is not None:
            out["dali_index"] = self.dali_index.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardInfo:
        w = "a shard entry"
        dali = data.get("dali_index")
        return cls(
            _get(data, "file", w),
            _get(data, "records", w),
            _get(data, "bytes", w),
            _get(data, "sha256", w),
            TableInfo.from_json(_get(data, "index", w)),
            TableInfo.from_json(_get(data, "errors", w)),
            DaliIndexInfo.from_json(dali) if dali is not None else None,
        )


# The copy column is int32 in the parquet files (a record's copy index is small); other ints are int64.
_INT32 = {"arrow": "int32"}


@dataclasses.dataclass(frozen=True)
class IndexRow(_Flat):
    """One written record: a row of ``index.parquet`` (its fields, in order, are the file's columns)."""

    WHAT = "an index row"

    key: str
    copy: int = dataclasses.field(metadata=_INT32)
    split: str
    shard: str
    position: int
    label: int
    params: str
    record_sha256: str
    source_sha256: str


@dataclasses.dataclass(frozen=True)
class ErrorRow(_Flat):
    """One input or record that was not written, and why: a row of ``errors.parquet`` (fields = columns).

    ``copy`` is None where the whole input failed (every copy of it).
    """

    WHAT = "an error row"

    key: str
    copy: int | None = dataclasses.field(metadata=_INT32)
    split: str
    stage: str
    error_type: str
    message: str

    @property
    def reason(self) -> str:
        return f"{self.stage}/{self.error_type}"

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.key, -1 if self.copy is None else self.copy, self.stage)


@dataclasses.dataclass(frozen=True)
class ShardSummary:
    """What a shard's worker writes to the work folder last: its manifest entry and its counts.

    Finalize builds the manifest from these alone (O(shards), never O(records)); ``--resume`` keeps
    a shard whose summary names the same run and whose files still have the bytes it names.

    An input's outcome belongs to the shard that holds its copy 0: that shard writes the one error
    row of an input that could not be read or decoded. Other copies of such an input fail too; they
    are counted (with a sum of their keys' hashes) so finalize can check, without any rows, that
    every shard saw the same inputs fail.
    """

    split: str
    shard: int
    num_shards: int
    run: str  # the run's fingerprint (resolved config, listing, format): a summary of another run is not kept
    info: ShardInfo
    planned: int  # records routed to this shard
    owned_inputs: int  # listed inputs whose copy 0 is in this shard
    listing_errors_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)
    failed_inputs_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)  # owned inputs, read/decode
    failed_records_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)  # augment/range
    other_copies_failed: int = 0  # records of copy >= 1 whose input failed at read/decode (no row of their own)
    other_copies_hash: int = 0  # sum mod 2**64 of stable_hash64(key) over those records
    owned_failed_hash: int = 0  # sum mod 2**64 of stable_hash64(key) x (copies - 1) over owned failed inputs
    removed_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)  # objects the rules removed

    @property
    def decoded_inputs(self) -> int:
        return self.owned_inputs - sum(self.failed_inputs_by_reason.values())

    def to_json(self) -> JSON:
        return {
            "split": self.split,
            "shard": self.shard,
            "num_shards": self.num_shards,
            "run": self.run,
            "info": self.info.to_json(),
            "planned": self.planned,
            "owned_inputs": self.owned_inputs,
            "listing_errors_by_reason": dict(self.listing_errors_by_reason),
            "failed_inputs_by_reason": dict(self.failed_inputs_by_reason),
            "failed_records_by_reason": dict(self.failed_records_by_reason),
            "other_copies_failed": self.other_copies_failed,
            "other_copies_hash": self.other_copies_hash,
            "owned_failed_hash": self.owned_failed_hash,
            **({"removed_by_reason": dict(self.removed_by_reason)} if self.removed_by_reason else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardSummary:
        w = "a shard summary"
        return cls(
            split=_get(data, "split", w),
            shard=_get(data, "shard", w),
            num_shards=_get(data, "num_shards", w),
            run=_get(data, "run", w),
            info=ShardInfo.from_json(_get(data, "info", w)),
            planned=_get(data, "planned", w),
            owned_inputs=_get(data, "owned_inputs", w),
            listing_errors_by_reason=dict(_get(data, "listing_errors_by_reason", w)),
            failed_inputs_by_reason=dict(_get(data, "failed_inputs_by_reason", w)),
            failed_records_by_reason=dict(_get(data, "failed_records_by_reason", w)),
            other_copies_failed=_get(data, "other_copies_failed", w),
            other_copies_hash=_get(data, "other_copies_hash", w),
            owned_failed_hash=_get(data, "owned_failed_hash", w),
            removed_by_reason=dict(data.get("removed_by_reason", {})),
        )


@dataclasses.dataclass(frozen=True)
class Counts(_Flat):
    """A split's reconciliation: listed = decoded + failed inputs; decoded x copies = written + failed records."""

    listed: int
    failed_inputs: int
    failed_inputs_by_stage: Mapping[str, int]
    decoded: int
    copies: int
    expected_records: int
    written: int
    failed_records: int

    WHAT = "a split's counts"


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split: its shards, its counts, its error rows by reason (``stage/error_type``), and the listing's
    target columns its records hold (``labels``, ``mask``, ``values``; ``values_dim`` numbers each)."""

    augmented: bool
    shards: tuple[ShardInfo, ...]
    counts: Counts
    error_rows_by_reason: Mapping[str, int]
    columns: tuple[str, ...] = ()
    values_dim: int | None = None
    # Detection records: objects the removal rules took out of the split's records, by reason (None: not such a run).
    removed_objects: Mapping[str, int] | None = None

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    def to_json(self) -> JSON:
        return {
            "augmented": self.augmented,
            "num_shards": self.num_shards,
            "shards": [s.to_json() for s in self.shards],
            "counts": self.counts.to_json(),
            "error_rows_by_reason": dict(self.error_rows_by_reason),
            # only where the listing has target columns: a split without keeps the manifest it had before them
            **({"columns": list(self.columns), "values_dim": self.values_dim} if self.columns else {}),
            **({"removed_objects": dict(self.removed_objects)} if self.removed_objects is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitInfo:
        w = "a split"
        return cls(
            augmented=_get(data, "augmented", w),
            shards=tuple(ShardInfo.from_json(s) for s in _get(data, "shards", w)),
            counts=Counts.from_json(_get(data, "counts", w)),
            error_rows_by_reason=dict(data.get("error_rows_by_reason", {})),  # absent in the earliest manifests
            columns=tuple(data.get("columns", ())),
            values_dim=data.get("values_dim"),
            removed_objects=dict(data["removed_objects"]) if data.get("removed_objects") is not None else None,
        )


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """The stored image: ``[height, width, 3]``, the encoding and the dtype it decodes to."""

    shape: tuple[int, int, int]
    encoding: str
    stored_dtype: str
    pixel_range_before_preprocessing: tuple[int, int] = (0, 255)

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    def to_json(self) -> JSON:
        return {
            "shape": list(self.shape),
            "encoding": self.encoding,
            "stored_dtype": self.stored_dtype,
            "pixel_range_before_preprocessing": list(self.pixel_range_before_preprocessing),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageInfo:
        w = "the image entry"
        h, w_, c = _get(data, "shape", w)
        low, high = data.get("pixel_range_before_preprocessing", (0, 255))
        return cls((h, w_, c), _get(data, "encoding", w), _get(data, "stored_dtype", w), (low, high))


@dataclasses.dataclass(frozen=True)
class InputInfo(_Flat):
    """Where the inputs came from: the root (folder or listing file) and its kind."""

    WHAT = "the input entry"

    root: str
    kind: str


# What a split's records may hold besides the image (``TargetsInfo.tasks``), in this order.
TASKS = ("detection", "instance_segmentation", "keypoints", "semantic_segmentation")
# ``image/object/class/label`` = class index + LABEL_OFFSET: the TF Object Detection API's label maps are
# 1-based (0 is its background); ``augbeam.load``, TFDS's ``objects/label`` and the manifest's lists are 0-based.
LABEL_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class TargetsInfo:
    """What the records hold besides the image (the manifest's ``targets`` section; absent for classification).

    ``classes`` are the object classes (index = the reader's class id; the records' OD API label is the
    index + ``label_offset``); ``keypoints`` the keypoints' names, flip pairs and skeleton; ``rules`` how
    objects were clipped and removed after the ops; ``mask_ignore`` the semantic masks' "no class" value.
    """

    tasks: tuple[str, ...]
    classes: tuple[str, ...]
    rules: TargetRules
    keypoints: KeypointSpec | None = None
    mask_ignore: int = MASK_IGNORE
    label_offset: int = LABEL_OFFSET
    source_format: str = ""  # coco, voc, yolo: where the annotations came from

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise SchemaError(f"the targets entry has tasks {list(self.tasks)}; known: {', '.join(TASKS)}")
        if ("keypoints" in self.tasks) != (self.keypoints is not None):
            raise SchemaError("the targets entry has keypoints without a keypoint spec, or a spec without them")

    def has(self, task: str) -> bool:
        return task in self.tasks

    def to_json(self) -> JSON:
        spec = self.keypoints
        return {
            "tasks": list(self.tasks),
            "classes": list(self.classes),
            "label_offset": self.label_offset,
            "keypoints": None
            if spec is None
            else {
                "names": list(spec.names),
                "flip_pairs": [list(p) for p in spec.flip_pairs],
                "skeleton": [list(p) for p in spec.skeleton],
            },
            "rules": dataclasses.asdict(self.rules),
            "mask_ignore": self.mask_ignore,
            "source_format": self.source_format,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetsInfo:
        w = "the targets entry"
        spec = _get(data, "keypoints", w)
        rules = _get(data, "rules", w)
        return cls(
            tasks=tuple(_get(data, "tasks", w)),
            classes=tuple(_get(data, "classes", w)),
            rules=TargetRules(**{f.name: _get(rules, f.name, w + "'s rules") for f in dataclasses.fields(TargetRules)}),
            keypoints=None
            if spec is None
            else KeypointSpec(
                names=tuple(_get(spec, "names", w)),
                flip_pairs=tuple((int(a), int(b)) for a, b in _get(spec, "flip_pairs", w)),
                skeleton=tuple((int(a), int(b)) for a, b in _get(spec, "skeleton", w)),
            ),
            mask_ignore=_get(data, "mask_ignore", w),
            label_offset=_get(data, "label_offset", w),
            source_format=_get(data, "source_format", w),
        )


@dataclasses.dataclass(frozen=True)
class Manifest:
    """``manifest.json``: written last, so a folder with one is a finished, reconciled run."""

    format_version: int
    producer: JSON
    config: JSON
    input: InputInfo
    classes: tuple[str, ...]
    image: ImageInfo
    preprocessing: JSON
    features: JSON
    seeding: JSON
    sharding: str
    splits: Mapping[str, SplitInfo]
    side_files: Mapping[str, FileInfo] | None = None  # None in the draft the side-file makers see
    # The run's fingerprint (config, input listing, shard counts, format, version): the same input and config
    # give the same id, and the same bytes, so a reader tells another run's data from this one's by it.
    # None in manifests written before it was recorded.
    run: str | None = None
    # Detection, segmentation and keypoint records: what they hold. None for classification (no key written).
    targets: TargetsInfo | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> JSON:
        files: JSON = {}
        if self.side_files is not None:
            files["side"] = {name: info.to_json() for name, info in self.side_files.items()}
        run: JSON = {} if self.run is None else {"run": self.run}
        targets: JSON = {} if self.targets is None else {"targets": self.targets.to_json()}
        return {
            **run,
            **targets,
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "producer": self.producer,
            "config": self.config,
            "input": self.input.to_json(),
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "image": self.image.to_json(),
            "preprocessing": self.preprocessing,
            "features": self.features,
            "seeding": self.seeding,
            "sharding": self.sharding,
            "splits": {name: info.to_json() for name, info in self.splits.items()},
            "files": files,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        w = "the manifest"
        files = _get(data, "files", w)
        side = files.get("side")
        return cls(
            format_version=_get(data, "format_version", w),
            producer=_get(data, "producer", w),
            config=_get(data, "config", w),
            input=InputInfo.from_json(_get(data, "input", w)),
            classes=tuple(_get(data, "classes", w)),
            image=ImageInfo.from_json(_get(data, "image", w)),
            preprocessing=_get(data, "preprocessing", w),
            features=_get(data, "features", w),
            seeding=_get(data, "seeding", w),
            sharding=_get(data, "sharding", w),
            splits={name: SplitInfo.from_json(s) for name, s in _get(data, "splits", w).items()},
            side_files=({name: FileInfo.from_json(info) for name, info in side.items()} if side is not None else None),
            run=data.get("run"),
            targets=TargetsInfo.from_json(data["targets"]) if data.get("targets") is not None else None,
        )

    def with_side_files(self, side: Mapping[str, FileInfo]) -> Manifest:
        return dataclasses.replace(self, side_files=dict(side))

    def split(self, name: str) -> SplitInfo:
        return self.splits[name]

    def iter_shards(self) -> Iterator[tuple[str, ShardInfo]]:
        """Every (split, shard) in split order as written."""
        for name, info in self.splits.items():
            for shard in info.shards:
                yield name, shard

    def index_tables(self, split: str | None = None) -> list[TableInfo]:
        """The index's parts (one per shard, rows in the shard's order), of one split or all."""
        return [shard.index for name, shard in self.iter_shards() if split in (None, name)]

    def error_tables(self, split: str | None = None) -> list[TableInfo]:
        """The error table's parts (one per shard), of one split or all."""
        return [shard.errors for name, shard in self.iter_shards() if split in (None, name)]

    @property
    def index_rows(self) -> int:
        return sum(t.rows for t in self.index_tables())

    @property
    def error_rows(self) -> int:
        return sum(t.rows for t in self.error_tables())

    def expected_files(self) -> dict[str, FileInfo | None]:
        """Every file the manifest names, with its size and checksum (None for the manifest itself)."""
        files: dict[str, FileInfo | None] = {MANIFEST: None}
        for _split, shard in self.iter_shards():
            files[shard.file] = FileInfo(shard.bytes, shard.sha256)
            for table in (shard.index, shard.errors):
                files[table.name] = FileInfo(table.bytes, table.sha256)
            if shard.dali_index is not None:
                files[shard.dali_index.file] = FileInfo(shard.dali_index.bytes, shard.dali_index.sha256)
        files.update(self.side_files or {})
        return files


def record_order(key: str, copy: int) -> int:
    """The stable hash of (key, copy) that picks the shard and the place within it."""
    return stable_hash64(f"{key}\x00{copy}")


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def index_name(split: str, shard: int, num_shards: int) -> str:
    """The shard's part of the index: its rows in the shard's order."""
    return f"index-{split}-{shard:05d}-of-{num_shards:05d}.parquet"


def errors_name(split: str, shard: int, num_shards: int) -> str:
    """The shard's part of the error table: the listing rows, failed inputs and failed records routed to it."""
    return f"errors-{split}-{shard:05d}-of-{num_shards:05d}.parquet"
