"""``augbeam verify DST``: checks an output folder from its files alone, and regenerates a sample.

What it checks: the manifest is readable; every file in the folder is one
the manifest names and none is missing; shards, index.parquet and
errors.parquet match their sizes and checksums; every shard's TFRecord
framing and CRCs are sound and its record count matches; index rows point
at records whose bytes they hash, no (key, copy) appears twice and each
sits in the shard its hash names; per split, listed = decoded + failed,
decoded x copies = written + failed records, and the error rows say the
same. Given the source (``--source``, or with ``--sample`` the recorded
input) it lists it again and checks every entry is a record or an error row
and nothing else. With ``--sample N`` it re-reads N source images (from ``--source``,
else the input recorded in the manifest), checks they are the files that
were used (sha256), and re-renders their records from the stored params:
the bytes must be equal (same device kind: see docs/ops-and-presets.md, Execution).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from typing import Any

from pipeline import fsutil
from pipeline.format.manifest import ERRORS, INDEX, INPUT_STAGES, ErrorRow, IndexRow, Manifest, record_order
from pipeline.format.reader import ReaderError, read_manifest
from pipeline.format.records import iter_records
from transforms.rng import stable_hash64


@dataclasses.dataclass
class Report:
    """What was checked and what failed; ``ok`` when nothing failed."""

    problems: list[str] = dataclasses.field(default_factory=list)
    checked: Counter = dataclasses.field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def text(self, dst: str) -> str:
        done = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        if self.ok:
            return f"augbeam verify {dst}: OK ({done})"
        lines = [f"augbeam verify {dst}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more")
        lines.append(f"  checked: {done}")
        return "\n".join(lines)


def verify(dst: str, sample: int = 0, source: str | None = None) -> Report:
    """Runs every check on the output folder ``dst``; never raises for what it finds."""
    report = Report()
    root = fsutil.normalize(dst)
    try:
        manifest = read_manifest(dst)
    except ReaderError as exc:
        report.fail(str(exc))
        return report
    try:
        _check_files(root, manifest, report)
        if not report.ok:
            return report  # missing or changed files: the rest would only repeat it
        import pyarrow.parquet as pq

        index = [IndexRow.from_json(row) for row in pq.read_table(fsutil.join(root, INDEX)).to_pylist()]
        errors = [ErrorRow.from_json(row) for row in pq.read_table(fsutil.join(root, ERRORS)).to_pylist()]
        records = _check_shards(root, manifest, report)
        _check_index(manifest, index, records, report)
        _check_counts(manifest, index, errors, report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        report.fail(f"the manifest or an index file is malformed ({type(exc).__name__}: {exc})")
        return report
    if (sample > 0 or source) and report.ok:
        _check_against_listing(manifest, index, errors, source, report)
    if sample > 0 and report.ok:
        _regenerate(root, manifest, index, sample, source, report)
    return report


def _check_against_listing(
    manifest: Manifest,
    index: list[IndexRow],
    errors: list[ErrorRow],
    source: str | None,
    report: Report,
) -> None:
    """Lists the input again: every entry must be a record or an error row, and nothing else (per split)."""
    from pipeline.errors import UserError
    from pipeline.job.listing import list_inputs

    recorded, kind = manifest.input.root, manifest.input.kind
    where = (
        recorded if not source else (source if kind == "folder" else fsutil.join(source, recorded.rsplit("/", 1)[-1]))
    )
    classes = manifest.config.get("classes")
    try:
        listing = list_inputs(where, tuple(classes) if classes else None)
    except UserError as exc:
        report.fail(f"cannot list the source again to compare ({exc}); give --source")
        return
    listed: dict[str, set[str]] = {}
    for item in listing.items:
        listed.setdefault(item.split, set()).add(item.key)
    for error in listing.errors:
        listed.setdefault(error.split, set()).add(error.key)
    accounted: dict[str, set[str]] = {}
    for split, key in [(r.split, r.key) for r in index] + [(e.split, e.key) for e in errors]:
        accounted.setdefault(split, set()).add(key)
    for split in sorted(set(listed) | set(accounted)):
        missing = sorted(listed.get(split, set()) - accounted.get(split, set()))
        extra = sorted(accounted.get(split, set()) - listed.get(split, set()))
        if missing:
            report.fail(
                f"split {split!r}: {len(missing)} listed input(s) have no record and no error row, e.g. {missing[0]!r}"
            )
        if extra:
            report.fail(f"split {split!r}: {len(extra)} key(s) are not in the source listing, e.g. {extra[0]!r}")
        info = manifest.splits.get(split)
        count = info.counts.listed if info is not None else None
        if count is not None and count != listing.listed.get(split, 0):
            report.fail(
                f"split {split!r}: the manifest says {count} listed, the source lists "
                f"{listing.listed.get(split, 0)} now"
            )
        report.checked["splits compared with the source"] += 1


def _check_files(root: str, manifest: Manifest, report: Report) -> None:
    expected = manifest.expected_files()
    present = {_relative(root, p) for p, _ in fsutil.list_files(root)}
    for name in sorted(present - set(expected)):
        report.fail(f"{name}: in the folder but not in the manifest (left over, or written by something else)")
    for name in sorted(set(expected) - present):
        report.fail(f"{name}: named by the manifest but missing")
    for name, info in expected.items():
        if info is None or name not in present:
            continue
        data_sha, size = _digest(fsutil.join(root, name))
        if size != info.bytes or data_sha != info.sha256:
            report.fail(
                f"{name}: {size} bytes, sha256 {data_sha[:12]}..., but the manifest says "
                f"{info.bytes} bytes, {info.sha256[:12]}...: changed or corrupt"
            )
        report.checked["file checksums"] += 1


def _check_shards(root: str, manifest: Manifest, report: Report) -> dict[tuple[str, str], list[tuple]]:
    """Per (split, shard file): each record's (sha256, key, copy, label, params, source sha256).

    Reads each shard's framing and CRCs, and each record's own fields, so the
    index can be checked against what the records say, not only their hashes.
    """
    import tensorflow as tf

    out: dict[tuple[str, str], list[tuple]] = {}
    for split, info in sorted(manifest.splits.items()):
        for shard in info.shards:
            hashes = []
            try:
                for record in iter_records(fsutil.join(root, shard.file)):
                    f = tf.train.Example.FromString(record).features.feature
                    hashes.append(
                        (
                            hashlib.sha256(record).hexdigest(),
                            f["key"].bytes_list.value[0].decode(),
                            int(f["copy"].int64_list.value[0]),
                            int(f["label"].int64_list.value[0]),
                            f["params"].bytes_list.value[0].decode(),
                            f["source_sha256"].bytes_list.value[0].decode(),
                        )
                    )
            except ValueError as exc:
                report.fail(f"{shard.file}: {exc}")
            if len(hashes) != shard.records:
                report.fail(f"{shard.file}: {len(hashes)} records, the manifest says {shard.records}")
            out[(split, shard.file)] = hashes
            report.checked["records read"] += len(hashes)
    return out


def _check_index(
    manifest: Manifest, index: list[IndexRow], records: dict[tuple[str, str], list[tuple]], report: Report
) -> None:
    seen: set[tuple[str, str, int]] = set()
    positions: dict[tuple[str, str], set[int]] = {}
    shard_number = {
        (split, s.file): i for split, info in manifest.splits.items() for i, s in enumerate(info.shards)
    }
    for row in index:
        split, name, key, copy = row.split, row.shard, row.key, row.copy
        where = f"index row ({key!r}, copy {copy})"
        if (split, key, copy) in seen:
            report.fail(f"{where}: appears twice in split {split!r}")
        seen.add((split, key, copy))
        hashes = records.get((split, name))
        if hashes is None:
            report.fail(f"{where}: points at {name}, not a shard of split {split!r}")
            continue
        num_shards = manifest.splits[split].num_shards
        if record_order(key, copy) % num_shards != shard_number[(split, name)]:
            report.fail(f"{where}: in {name}, but its hash names another shard")
        pos = row.position
        fields = (row.record_sha256, key, copy, row.label, row.params, row.source_sha256)
        if not 0 <= pos < len(hashes) or hashes[pos][0] != row.record_sha256:
            report.fail(f"{where}: the record at {name}[{pos}] does not have the bytes the index hashes")
        elif hashes[pos] != fields:
            report.fail(f"{where}: the record at {name}[{pos}] says otherwise (key, copy, label, params or source)")
        positions.setdefault((split, name), set()).add(pos)
        report.checked["index rows"] += 1
    for (split, name), hashes in records.items():
        if positions.get((split, name), set()) != set(range(len(hashes))):
            report.fail(f"{name}: some records have no index row, or two rows share one")


def _check_counts(
    manifest: Manifest, index: list[IndexRow], errors: list[ErrorRow], report: Report
) -> None:
    written_rows = Counter(row.split for row in index)
    input_rows = Counter((e.split, e.stage) for e in errors if e.copy is None)
    record_rows = Counter(e.split for e in errors if e.copy is not None)
    # A duplicate listing row is reported under the key of the entry that was kept: not a failed input.
    failed_keys = {(e.split, e.key) for e in errors if e.copy is None and e.error_type != "DuplicateInput"}
    written_keys = {(row.split, row.key) for row in index}
    written_pairs = {(row.split, row.key, row.copy) for row in index}
    for e in errors:
        if e.split not in manifest.splits:
            report.fail(f"error row for {e.key!r} names split {e.split!r}, which the manifest does not have")
        elif e.copy is not None and (e.split, e.key, e.copy) in written_pairs:
            report.fail(f"record ({e.key!r}, copy {e.copy}) is both failed and written")
    for split in sorted(set(written_rows) - set(manifest.splits)):
        report.fail(f"index rows name split {split!r}, which the manifest does not have")
    for split, info in sorted(manifest.splits.items()):
        c = info.counts
        checks = [
            (c.listed == c.decoded + c.failed_inputs, "listed = decoded + failed inputs"),
            (c.decoded * c.copies == c.written + c.failed_records, "decoded x copies = written + failed"),
            (sum(s.records for s in info.shards) == c.written, "shard records sum to written"),
            (written_rows[split] == c.written, "index rows = written"),
            (sum(n for (s, _), n in input_rows.items() if s == split) == c.failed_inputs, "input error rows"),
            (record_rows[split] == c.failed_records, "record error rows = failed records"),
        ]
        reasons = Counter(e.reason for e in errors if e.split == split)
        checks.append((dict(reasons) == info.error_rows_by_reason, "error rows by reason match the manifest"))
        for stage in INPUT_STAGES:
            got = input_rows[(split, stage)]
            want = c.failed_inputs_by_stage.get(stage, 0)
            checks.append((got == want, f"{stage} error rows ({got}) = failed at {stage} ({want})"))
        for ok, what in checks:
            report.checked["count rules"] += 1
            if not ok:
                report.fail(f"split {split!r}: counts do not reconcile: {what} ({c})")
    both = sorted(failed_keys & written_keys)
    if both:
        report.fail(f"{len(both)} input(s) are both failed and written, e.g. {both[0][1]!r}")


def _regenerate(
    root: str, manifest: Manifest, index: list[IndexRow], sample: int, source: str | None, report: Report
) -> None:
    """Re-renders ``sample`` records (chosen by a hash of key and copy, so the same ones every time)."""
    from transforms.augment import Renderer
    from transforms.decode import DecodeError, Decoder

    config = config_from_manifest(manifest, root)
    recorded = manifest.input.root
    # keys are relative to the input folder, or to the folder that holds a listing file
    base = source or (recorded if manifest.input.kind == "folder" else recorded.rsplit("/", 1)[0])
    decoder = Decoder(alpha_fill=config.alpha_fill, max_pixels=config.max_pixels, depth=config.high_bit_depth)
    renderers: dict[str, Renderer] = {}
    chosen = sorted(index, key=lambda r: stable_hash64(f"{r.split}\x00{r.key}\x00{r.copy}"))[:sample]
    for row in chosen:
        where = f"record ({row.key!r}, copy {row.copy})"
        path = row.key if "://" in row.key or row.key.startswith("/") else fsutil.join(base, row.key)
        try:
            data = fsutil.read_bytes(path)
        except Exception as exc:
            report.fail(f"{where}: cannot read its source {path!r}: {exc} (give --source)")
            continue
        if hashlib.sha256(data).hexdigest() != row.source_sha256:
            report.fail(f"{where}: its source {path!r} is not the file that was used (sha256 differs)")
            continue
        split = row.split
        if split not in renderers:
            renderers[split] = Renderer(
                config.ops_for(split),
                tuple(config.image_size),
                config.resize_mode,
                config.preprocessing,
                config.encoding,
                config.jpeg_quality,
                device=config.device,
            )
        try:
            payload = renderers[split].render(decoder(data), json.loads(row.params))
        except (DecodeError, ValueError) as exc:
            report.fail(f"{where}: could not be regenerated: {exc}")
            continue
        stored = _record_image(fsutil.join(root, row.shard), row.position)
        if payload != stored:
            report.fail(f"{where}: regenerated pixels differ from the stored ones")
        report.checked["records regenerated"] += 1


def config_from_manifest(manifest: Manifest, output: str) -> Any:
    """The job's JobConfig, rebuilt from the manifest's resolved config."""
    from pipeline.job.options import JobConfig

    data = dict(manifest.config)
    data.pop("eval_ops", None)
    data["image_size"] = tuple(data["image_size"])
    data["ops"] = tuple(data["ops"])
    for name in ("mean", "std", "classes"):
        if data.get(name) is not None:
            data[name] = tuple(data[name])
    fields = {f.name for f in dataclasses.fields(JobConfig)}
    return JobConfig(output=output, **{k: v for k, v in data.items() if k in fields and k != "output"})


def _record_image(shard: str, position: int) -> bytes:
    import tensorflow as tf

    for i, record in enumerate(iter_records(shard)):
        if i == position:
            return tf.train.Example.FromString(record).features.feature["image"].bytes_list.value[0]
    raise ValueError(f"{shard} has no record {position}")


def _digest(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") if fsutil.is_local(path) else fsutil.FileSystems.open(path) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _relative(root: str, path: str) -> str:
    return path[len(root.rstrip("/")) + 1 :] if path.startswith(root.rstrip("/") + "/") else path
