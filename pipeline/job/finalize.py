"""Finishing a run: merge the shards' sidecars, reconcile the counts, write the manifest last.

The manifest holds no timestamps, host names or runner details, so the same
input and config give the same manifest bytes on any runner. A folder
without ``manifest.json`` is an unfinished run and readers refuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from pipeline import __version__, fsutil
from pipeline.errors import ErrorRateExceeded, ReconcileError
from pipeline.format.dali_index import write_dali_index
from pipeline.format.manifest import (
    DUPLICATE,
    ERRORS,
    INDEX,
    INPUT_STAGES,
    MANIFEST,
    TEMP_FILE,
    Counts,
    DaliIndexInfo,
    ErrorRow,
    ImageInfo,
    IndexRow,
    InputInfo,
    Manifest,
    ShardInfo,
    ShardSummary,
    Sidecar,
    SplitInfo,
    TableInfo,
    record_order,
    shard_name,
)
from pipeline.format.records import FEATURES, FORMAT_VERSION, TFRecordWriter
from pipeline.job.listing import Listing
from pipeline.job.options import JobConfig
from pipeline.job.shard import WORK_DIR, sidecar_path
from pipeline.job.side_files import write_side_files
from transforms.encoding import stored_dtype, stores_preprocessed

_FLUSH_ROWS = 50_000
# Pillow draws report.html's contact sheets (its font and zlib decide the report's bytes).
PACKAGES = ("tensorflow", "tensorflow-io", "apache-beam", "numpy", "pyarrow", "protobuf", "keras", "pillow")


def _arrow_schema(row: type) -> Any:
    """The parquet schema of a row dataclass: its fields in order, str as string, int as int64 unless marked."""
    import pyarrow as pa

    kinds = {"str": pa.string(), "int": pa.int64(), "int32": pa.int32()}
    return pa.schema(
        [
            (f.name, kinds[f.metadata.get("arrow", str(f.type).removesuffix(" | None"))])
            for f in dataclasses.fields(row)
        ]
    )


def _schemas() -> tuple[Any, Any]:
    return _arrow_schema(IndexRow), _arrow_schema(ErrorRow)


class _ParquetSink:
    """Streams rows to a parquet file through a temporary name; memory stays bounded."""

    def __init__(self, out: str, name: str, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.name, self.path, self.schema = name, fsutil.join(out, name), schema
        self.temp = fsutil.temp_name(self.path)
        self._handle = fsutil.open_write(self.temp)
        self._writer = pq.ParquetWriter(self._handle, schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []
        self.count = 0

    def add(self, row: IndexRow | ErrorRow) -> None:
        self._rows.append(row.to_json())
        self.count += 1
        if len(self._rows) >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def close(self) -> TableInfo:
        self._flush()
        self._writer.close()
        self._handle.close()
        fsutil.commit(self.temp, self.path)
        data = fsutil.read_bytes(self.path)
        return TableInfo(self.name, self.count, len(data), hashlib.sha256(data).hexdigest())


def finalize(config: JobConfig, listing: Listing, shards: dict[str, int]) -> Manifest:
    """Merges sidecars into index/errors parquet, checks counts, writes the manifest."""
    index_schema, error_schema = _schemas()
    out = config.output
    index_sink = _ParquetSink(out, INDEX, index_schema)
    error_sink = _ParquetSink(out, ERRORS, error_schema)
    splits = {
        name: _finalize_split(config, listing, name, count, index_sink, error_sink)
        for name, count in sorted(shards.items())
    }
    index_info = index_sink.close()
    error_info = error_sink.close()
    written = sum(s.counts.written for s in splits.values())
    if index_info.rows != written:
        raise ReconcileError(f"index.parquet has {index_info.rows} rows but shards hold {written} records")
    manifest = _manifest(config, listing, splits, index_info, error_info)
    fsutil.remove_tree(fsutil.join(out, WORK_DIR))
    check_only_listed_files(out, manifest)
    check_error_rate(splits, config.max_error_rate, out)
    # Only a run that passed every check gets its side files (a TFDS reader must not load a failed run),
    # and the manifest after them.
    manifest = manifest.with_side_files(write_side_files(out, manifest))
    data = (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()
    fsutil.write_atomic(fsutil.join(out, MANIFEST), data)
    return manifest


def _finalize_split(
    config: JobConfig, listing: Listing, split: str, num_shards: int, index_sink: _ParquetSink, error_sink: _ParquetSink
) -> SplitInfo:
    """One split's shards: index rows to the index, error rows (one per failed input) to the errors, its counts."""
    out = config.output
    listing_errors = [e for e in listing.errors if e.split == split]
    reasons: Counter[str] = Counter()  # error rows by stage/type, so readers need not scan errors.parquet

    def add_error(row: ErrorRow) -> None:
        reasons[row.reason] += 1
        error_sink.add(row)

    for row in sorted(listing_errors, key=lambda e: (e.key, e.error_type)):
        add_error(row)
    failed: Counter[str] = Counter({"listing": len(listing_errors)})
    input_errors: dict[str, list[ErrorRow]] = {}
    record_errors: list[ErrorRow] = []
    shard_entries = []
    for shard in range(num_shards):
        entry, sidecar = _collect_shard(out, split, shard, num_shards, config.dali_index)
        check_shard_rows(split, shard, num_shards, sidecar.index)
        shard_entries.append(entry)
        for index_row in sidecar.index:
            index_sink.add(index_row)
        for row in sidecar.error_rows:
            if row.stage in INPUT_STAGES:
                input_errors.setdefault(row.key, []).append(row)
            else:
                record_errors.append(row)
    # A key whose file one shard read and another could not (a transient error, a file changed
    # mid-run) has records: its failed copies are record errors, not a failed input.
    partial = _keys_with_records(out, split, num_shards, set(input_errors)) if input_errors else set()
    for key in sorted(input_errors):
        rows = input_errors[key]
        if key in partial:
            record_errors.extend(rows)
            continue
        failed[rows[0].stage] += 1
        add_error(dataclasses.replace(rows[0], copy=None))
    for row in sorted(record_errors, key=lambda e: (e.key, e.copy)):
        add_error(row)
    return _split_info(config, split, listing.listed[split], failed, len(record_errors), shard_entries, reasons)


def check_shard_rows(split: str, shard: int, num_shards: int, rows: Sequence[IndexRow]) -> None:
    """No (key, copy) twice, each in the shard its hash names: so none twice in the split either."""
    seen: set[tuple[str, int]] = set()
    for row in rows:
        pair = (row.key, row.copy)
        if pair in seen:
            raise ReconcileError(f"{split} shard {shard}: record ({pair[0]!r}, copy {pair[1]}) written twice")
        seen.add(pair)
        if record_order(*pair) % num_shards != shard:
            raise ReconcileError(f"{split} shard {shard}: record ({pair[0]!r}, copy {pair[1]}) is in the wrong shard")


def check_only_listed_files(out: str, manifest: Manifest) -> None:
    """Every file in the output folder is one the manifest names; temp files of failed attempts go."""
    expected = set(manifest.expected_files())
    root = fsutil.normalize(out).rstrip("/") + "/"
    for path, _size in fsutil.list_files(out):
        name = path[len(root) :] if path.startswith(root) else path
        if name in expected:
            continue
        if TEMP_FILE.search(name):
            fsutil.delete(path)  # a bundle that died while writing; its retry wrote the real file
            continue
        raise ReconcileError(f"{name!r} appeared in the output folder during the run; it is not part of the output")


def check_error_rate(splits: Mapping[str, SplitInfo], max_rate: float, out: str) -> None:
    """Fails the job, with a summary of reasons, when more inputs or records failed than allowed.

    The parquet files stay for inspection; no manifest is written, so the
    folder reads as unfinished.
    """
    reasons: Counter[str] = Counter()
    for info in splits.values():
        reasons.update(info.error_rows_by_reason)
    duplicates = reasons.pop(DUPLICATE, 0)  # kept once: not a failure
    listed = sum(s.counts.listed for s in splits.values())
    failed = sum(s.counts.failed_inputs for s in splits.values()) - duplicates
    expected = sum(s.counts.expected_records for s in splits.values())
    failed_records = sum(s.counts.failed_records for s in splits.values())
    input_rate = failed / listed if listed else 0.0
    record_rate = failed_records / expected if expected else 0.0
    if max(input_rate, record_rate) <= max_rate:
        return
    top = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(6))
    raise ErrorRateExceeded(
        f"{failed} of {listed} inputs ({input_rate:.1%}) and {failed_records} of {expected} records "
        f"({record_rate:.1%}) failed, over --max-error-rate {max_rate:g}: {top}. "
        f"See {fsutil.join(out, ERRORS)}; the folder has no manifest (unfinished). "
        "Fix the inputs, or raise --max-error-rate to accept them."
    )


def _keys_with_records(out: str, split: str, num_shards: int, keys: set[str]) -> set[str]:
    """Which of ``keys`` have at least one written record in the split (reads the sidecars again)."""
    found: set[str] = set()
    for shard in range(num_shards):
        side = sidecar_path(out, split, shard)
        if fsutil.exists(side):
            sidecar = Sidecar.from_json(json.loads(fsutil.read_bytes(side)))
            found.update(row.key for row in sidecar.index if row.key in keys)
    return found


def _collect_shard(out: str, split: str, shard: int, num_shards: int, dali_index: bool) -> tuple[ShardInfo, Sidecar]:
    """A shard's manifest entry and its sidecar; a shard no record went to is written empty."""
    side = sidecar_path(out, split, shard)
    name = shard_name(split, shard, num_shards)
    if not fsutil.exists(side):
        temp = fsutil.temp_name(fsutil.join(out, name))
        with fsutil.open_write(temp) as handle:
            writer = TFRecordWriter(handle)
        fsutil.commit(temp, fsutil.join(out, name))
        dali = DaliIndexInfo.from_json(write_dali_index(out, name, [])) if dali_index else None
        entry = ShardInfo(name, 0, 0, writer.sha256.hexdigest(), dali)
        summary = ShardSummary(split, shard, num_shards, name, 0, 0, entry.sha256, 0, dali_index=dali)
        return entry, Sidecar(summary, (), ())
    sidecar = Sidecar.from_json(json.loads(fsutil.read_bytes(side)))
    if not fsutil.exists(fsutil.join(out, name)):
        raise ReconcileError(f"shard {name} has a sidecar but no file")
    return sidecar.summary.info, sidecar


def _split_info(
    config: JobConfig,
    split: str,
    listed: int,
    failed: Counter[str],
    failed_records: int,
    shards: list[ShardInfo],
    reasons: Counter[str],
) -> SplitInfo:
    failed_inputs = sum(failed.values())
    decoded = listed - failed_inputs
    copies = config.copies_for(split)
    written = sum(s.records for s in shards)
    counts = Counts(
        listed=listed,
        failed_inputs=failed_inputs,
        failed_inputs_by_stage={stage: failed[stage] for stage in INPUT_STAGES},
        decoded=decoded,
        copies=copies,
        expected_records=decoded * copies,
        written=written,
        failed_records=failed_records,
    )
    if decoded < 0 or written + failed_records != decoded * copies:
        raise ReconcileError(
            f"split {split!r} does not reconcile: listed {listed} = decoded {decoded} + failed {failed_inputs}; "
            f"decoded x copies = {decoded * copies} but written {written} + failed {failed_records}"
        )
    return SplitInfo(
        augmented=bool(config.ops_for(split)),
        shards=tuple(shards),
        counts=counts,
        error_rows_by_reason=dict(sorted(reasons.items())),
    )


def _manifest(
    config: JobConfig, listing: Listing, splits: dict[str, SplitInfo], index_info: TableInfo, error_info: TableInfo
) -> Manifest:
    pre = config.preprocessing
    h, w = config.image_size
    preprocessing = dict(pre.describe())
    preprocessing["applied"] = "in_records" if stores_preprocessed(config.encoding) else "by_reader"
    preprocessing["output_dtype"] = "float32"
    return Manifest(
        format_version=FORMAT_VERSION,
        producer={"augbeam": __version__, "python": platform.python_version(), "packages": _versions()},
        config=config.resolved(),
        input=InputInfo(listing.root, listing.kind),
        classes=tuple(listing.classes),
        image=ImageInfo((h, w, 3), config.encoding, stored_dtype(config.encoding)),
        preprocessing=preprocessing,
        features=FEATURES,
        seeding={
            "generator": "numpy Philox4x64, raw 64-bit words",
            "key": "[seed, first 8 bytes of sha256(utf-8 key) as little-endian uint64]",
            "counter": "[0, 0, copy, op_index]",
        },
        sharding="shard = H mod num_shards, records sorted by H; H = sha256(key + NUL + copy)[:8] little-endian",
        splits=splits,
        index=index_info,
        errors=error_info,
    )


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
