"""``augbeam verify DST``: checks an output folder from its files alone, and regenerates a sample.

The work is per shard (``check_shard``): one pass over the shard's records,
its index part and its error part, holding at most one shard's keys. It
checks the three files' sizes and checksums (and the DALI index's); the
TFRecord framing, CRCs and record count; that index row i is record i, with
its bytes' sha256 and the key, copy, label, params and source the record
says; that every (key, copy) sits in the shard its hash names, in hash order,
once; for a folder input, that each label is its key's class folder's; and
that every error row is in the part the routing rules name, in order.
Each shard gives a small ``ShardCheck``; ``Collected`` folds them
(O(shards) + the sample), and ``reconcile`` checks per split, against the
manifest: listed = decoded + failed, decoded x copies = written + failed
records, the index and error rows' counts, and (by sums of hashes, no set of
keys) that each decoded input has each of its copies exactly once, written
or failed. The shards are checked here one after another, or, given Beam
options, as a Beam job (``check_with_beam``) for outputs too big for one
machine: the same checks, merge and report.

Given the source (``--source``, or with ``--sample`` the recorded input) it
lists it again and checks every entry is a record or an error row and
nothing else, and every record has the label the source gives its key; that
comparison holds every key in memory (O(inputs)). With
``--sample N`` it re-reads the N records with the smallest
``stable_hash64(split NUL key NUL copy)`` (the same ones every time), checks
their sources are the files that were used (sha256), and re-renders them
from the stored params: the bytes must be equal (same device kind: see
docs/ops-and-presets.md, Execution).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

from pipeline import fsutil
from pipeline.format.detection_records import REMOVED, ops_params
from pipeline.format.manifest import (
    DUPLICATE,
    INPUT_STAGES,
    ErrorRow,
    IndexRow,
    Manifest,
    ShardInfo,
    errors_name,
    index_name,
    record_order,
    shard_name,
)
from pipeline.format.reader import ReaderError, read_manifest
from pipeline.format.records import iter_records, parse_example, read_records
from pipeline.format.tables import iter_rows, iter_table
from pipeline.job.annotated import STAGE as ANNOTATION_STAGE
from transforms.rng import stable_hash64
from transforms.targets.types import Objects

# Stages whose error row stands for a whole input: the manifest's, and an annotated run's ``annotation`` (an
# annotation that does not fit its decoded image; ``pipeline.job.annotated.STAGE``).
WHOLE_INPUT_STAGES = (*INPUT_STAGES, ANNOTATION_STAGE)  # an annotation that does not fit its decoded image

SHARD_FAILURES = 20  # kept per shard: one broken shard must not flood the report
KEPT_FAILURES = 200  # kept in all (the text shows 50), the first in (split, shard) order
SHOWN_FAILURES = 50
_MASK = (1 << 64) - 1
# The order the report lists what it checked (a Beam job's merge order must not change the text).
CHECKED = (
    "shards",
    "file checksums",
    "records read",
    "index rows",
    "error rows",
    "count rules",
    "splits compared with the source",
    "records regenerated",
)


@dataclasses.dataclass
class Report:
    """What was checked and what failed; ``ok`` when nothing failed."""

    problems: list[str] = dataclasses.field(default_factory=list)
    checked: Counter = dataclasses.field(default_factory=Counter)
    more_problems: int = 0  # found but not kept (the shards' caps)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.more_problems

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def text(self, dst: str) -> str:
        order = {what: i for i, what in enumerate(CHECKED)}
        items = sorted(self.checked.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        done = ", ".join(f"{n} {what}" for what, n in items)
        if self.ok:
            return f"augbeam verify {dst}: OK ({done})"
        total = len(self.problems) + self.more_problems
        lines = [f"augbeam verify {dst}: {total} problem(s)"]
        lines += [f"  - {p}" for p in self.problems[:SHOWN_FAILURES]]
        if total > SHOWN_FAILURES:
            lines.append(f"  ... and {total - SHOWN_FAILURES} more")
        lines.append(f"  checked: {done}")
        return "\n".join(lines)


# --- one shard ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShardCheck:
    """What checking one shard found: what it adds to its split's counts, and its failures (capped).

    Small whatever the shard holds, so a Beam job can collect one per shard.
    """

    split: str
    shard: int
    complete: bool  # its files were all there, unchanged and readable: its counts mean something
    records: int
    index_rows: int
    decoded_inputs: int  # inputs whose copy 0 is here (written, or failed as a record)
    input_rows_by_stage: Mapping[str, int]  # error rows of whole inputs (copy None), by stage
    record_error_rows: int  # error rows of one copy
    error_rows_by_reason: Mapping[str, int]
    slots_expected: int  # sum mod 2**64 of record_order(key, c), c < copies, over the inputs decoded here
    slots_found: int  # the same sum over this shard's index rows and record error rows
    checked: Mapping[str, int]
    failures: tuple[str, ...]
    more_failures: int = 0
    sample: tuple[IndexRow, ...] = ()  # up to K rows with the smallest sample order (``--sample K``)


def sample_order(row: IndexRow) -> tuple[int, str, str, int]:
    """How ``--sample`` picks records: the smallest ``stable_hash64(split NUL key NUL copy)`` first."""
    return (stable_hash64(f"{row.split}\x00{row.key}\x00{row.copy}"), row.split, row.key, row.copy)


def check_shard(root: str, manifest: Manifest, split: str, shard: int, sample: int = 0) -> ShardCheck:
    """Checks shard number ``shard`` of ``split`` with its index and error parts; never raises for what it finds.

    Reads the shard once (hashing and parsing as the bytes pass) and its parts once, a batch at a
    time; holds one shard's (key, copy) pairs, the failed keys of its error part and ``sample`` rows.
    """
    state = _ShardState(fsutil.normalize(root), manifest, split, shard, sample)
    try:
        state.run()
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError) as exc:
        state.fail(f"{state.entry.file}: could not be checked ({type(exc).__name__}: {exc})")
        state.complete = False
    return state.result()


class _HashingReader:
    """A read-only stream that hashes and counts what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 22):
            pass


class _ShardState:
    """The running state of ``check_shard``."""

    def __init__(self, root: str, manifest: Manifest, split: str, shard: int, sample: int) -> None:
        info = manifest.splits[split]
        self.root, self.split, self.shard, self.sample = root, split, shard, sample
        self.num_shards, self.copies = info.num_shards, info.counts.copies
        self.entry: ShardInfo = info.shards[shard]
        self.complete = True
        self.failures: list[str] = []
        self.more_failures = 0
        self.checked: Counter[str] = Counter()
        self.records = self.index_rows = self.decoded = self.record_error_rows = 0
        self.input_rows: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.slots_expected = self.slots_found = 0
        self.candidates: list[tuple[tuple[int, str, str, int], IndexRow]] = []  # (sample order, row), at most 2K
        self.failed_keys: set[str] = set()  # inputs that failed whole (not duplicate listing rows)
        self.failed_pairs: set[tuple[str, int]] = set()  # records that failed
        self.written: set[tuple[str, int]] = set()
        self.previous: tuple[int, str, int] | None = None  # (hash order, key, copy) of the record before
        # A folder input's label is its key's class folder: checked on every record, no listing needed.
        self.classes = (
            {name: label for label, name in enumerate(manifest.classes)} if manifest.input.kind == "folder" else None
        )
        self.content_dropped = 0  # what the records say against the index, past the cap

    def fail(self, message: str) -> None:
        if len(self.failures) < SHARD_FAILURES:
            self.failures.append(message)
        else:
            self.more_failures += 1

    def result(self) -> ShardCheck:
        return ShardCheck(
            split=self.split,
            shard=self.shard,
            complete=self.complete,
            records=self.records,
            index_rows=self.index_rows,
            decoded_inputs=self.decoded,
            input_rows_by_stage=dict(sorted(self.input_rows.items())),
            record_error_rows=self.record_error_rows,
            error_rows_by_reason=dict(sorted(self.reasons.items())),
            slots_expected=self.slots_expected,
            slots_found=self.slots_found,
            checked=dict(self.checked),
            failures=tuple(self.failures),
            more_failures=self.more_failures,
            sample=tuple(row for _, row in sorted(self.candidates)[: self.sample]),
        )

    def run(self) -> None:
        entry, split, shard, n = self.entry, self.split, self.shard, self.num_shards
        self.checked["shards"] += 1
        for got, want in (
            (entry.file, shard_name(split, shard, n)),
            (entry.index.name, index_name(split, shard, n)),
            (entry.errors.name, errors_name(split, shard, n)),
        ):
            if got != want:
                self.fail(f"{got}: the manifest names it as {split!r} shard {shard}'s file, which is {want}")
                self.complete = False
        if entry.dali_index is not None:
            self.digest_ok(entry.dali_index.file, entry.dali_index.bytes, entry.dali_index.sha256)
        index_ok = self.digest_ok(entry.index.name, entry.index.bytes, entry.index.sha256)
        errors_ok = self.digest_ok(entry.errors.name, entry.errors.bytes, entry.errors.sha256)
        if errors_ok:
            self.guarded(entry.errors.name, self.check_errors)
        self.check_records(index_ok)

    def guarded(self, name: str, step: Any) -> None:
        """Runs one reading step; a file that cannot be parsed is a failure of that file, not a crash."""
        try:
            step()
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            self.fail(f"{name}: cannot be read ({type(exc).__name__}: {exc})")
            self.complete = False

    def digest_ok(self, name: str, size: int, sha256: str) -> bool:
        path = fsutil.join(self.root, name)
        try:
            with fsutil.open_read(path) as raw:
                handle = _HashingReader(raw)
                handle.drain()
        except FileNotFoundError:
            self.fail(f"{name}: named by the manifest but missing")
            self.complete = False
            return False
        except OSError as exc:
            self.fail(f"{name}: cannot be read ({exc})")
            self.complete = False
            return False
        self.checked["file checksums"] += 1
        return self.same(name, handle, size, sha256)

    def same(self, name: str, handle: _HashingReader, size: int, sha256: str) -> bool:
        digest = handle.digest.hexdigest()
        if handle.size != size or digest != sha256:
            self.fail(
                f"{name}: {handle.size} bytes, sha256 {digest[:12]}..., but the manifest says "
                f"{size} bytes, {sha256[:12]}...: changed or corrupt"
            )
            self.complete = False
            return False
        return True

    def target(self, key: str, copy: int) -> int:
        return record_order(key, copy) % self.num_shards

    def owns(self, key: str) -> None:
        """A decoded input whose copy 0 is here: each of its copies must be somewhere in the split, once."""
        self.decoded += 1
        for copy in range(self.copies):
            self.slots_expected = (self.slots_expected + record_order(key, copy)) & _MASK

    def check_errors(self) -> None:
        name = self.entry.errors.name
        previous: tuple[str, int, str] | None = None
        rows = 0
        for row in iter_rows(fsutil.join(self.root, name), ErrorRow):
            rows += 1
            where = f"{name}: error row ({row.key!r}, {'input' if row.copy is None else f'copy {row.copy}'})"
            if row.split != self.split:
                self.fail(f"{where} names split {row.split!r}, but is in a part of split {self.split!r}")
            target = self.target(row.key, 0 if row.copy is None else row.copy)
            if target != self.shard:
                self.fail(f"{where}: the routing rules put it in shard {target}, not {self.shard}")
            if previous is not None and row.sort_key < previous:
                self.fail(f"{where}: out of order (rows are sorted by key, copy, stage)")
            previous = row.sort_key
            self.reasons[row.reason] += 1
            if row.copy is None:
                if row.stage not in WHOLE_INPUT_STAGES:
                    self.fail(f"{where}: a whole input's row at stage {row.stage!r} (only {WHOLE_INPUT_STAGES})")
                self.input_rows[row.stage] += 1
                if row.reason != DUPLICATE:  # a duplicate listing row names the entry that was kept
                    self.failed_keys.add(row.key)
                continue
            self.record_error_rows += 1
            if not 0 <= row.copy < self.copies:
                self.fail(f"{where}: copy out of range (the split has {self.copies} copies)")
            pair = (row.key, row.copy)
            if pair in self.failed_pairs:
                self.fail(f"{where}: appears twice")
            self.failed_pairs.add(pair)
            self.slots_found = (self.slots_found + record_order(*pair)) & _MASK
            if row.copy == 0:
                self.owns(row.key)
        self.checked["error rows"] += rows
        if rows != self.entry.errors.rows:
            self.fail(f"{name}: {rows} rows, the manifest says {self.entry.errors.rows}")
        for key in sorted(self.failed_keys & {k for k, _ in self.failed_pairs}):
            self.fail(f"{name}: input {key!r} failed whole and has a failed copy too")

    def check_records(self, with_index: bool) -> None:
        """The shard's bytes, framing and records, with the index part in lockstep when it can be trusted."""
        entry = self.entry
        path = fsutil.join(self.root, entry.file)
        try:
            raw = fsutil.open_read(path)
        except FileNotFoundError:
            self.fail(f"{entry.file}: named by the manifest but missing")
            self.complete = False
            return
        except OSError as exc:
            self.fail(f"{entry.file}: cannot be read ({exc})")
            self.complete = False
            return
        content: list[str] = []  # what the records say against the index: dropped if the shard's bytes changed
        with raw:
            handle = _HashingReader(raw)
            rows: Iterator[IndexRow] | None = None
            if with_index:
                rows = iter_rows(fsutil.join(self.root, entry.index.name), IndexRow)
            try:
                for position, record in enumerate(_framed(handle)):
                    self.records += 1
                    if rows is not None:
                        row = next(rows, None)
                        if row is None:
                            content.append(f"{entry.index.name}: no row for record {position} of {entry.file}")
                            rows = None
                        else:
                            self.check_row(position, record, row, content)
                if rows is not None:
                    extra = sum(1 for _ in rows)
                    if extra:
                        content.append(f"{entry.index.name}: {extra} row(s) past the last record of {entry.file}")
                        self.index_rows += extra
            except _FramingError as exc:  # a length or CRC that does not match
                self.fail(f"{entry.file}: {exc}")
                self.complete = False
            except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:  # the index part's rows
                self.fail(f"{entry.index.name}: cannot be read ({type(exc).__name__}: {exc})")
                self.complete = False
            handle.drain()
        self.checked["file checksums"] += 1
        self.checked["records read"] += self.records
        if not self.same(entry.file, handle, entry.bytes, entry.sha256):
            return  # its records say whatever the change made them say: the change is the finding
        for message in content:
            self.fail(message)
        self.more_failures += self.content_dropped
        if self.records != entry.records:
            self.fail(f"{entry.file}: {self.records} records, the manifest says {entry.records}")
        if with_index and self.index_rows != entry.index.rows:
            self.fail(f"{entry.index.name}: {self.index_rows} rows, the manifest says {entry.index.rows}")
        if not with_index:
            self.complete = False

    def check_row(self, position: int, record: bytes, row: IndexRow, content: list[str]) -> None:
        self.index_rows += 1
        self.checked["index rows"] += 1

        def problem(message: str) -> None:
            if len(content) < SHARD_FAILURES:
                content.append(message)
            else:
                self.content_dropped += 1

        key, copy = row.key, row.copy
        where = f"index row ({key!r}, copy {copy})"
        if (row.split, row.shard, row.position) != (self.split, self.entry.file, position):
            problem(
                f"{where}: says {row.split!r} {row.shard}[{row.position}], "
                f"but is row {position} of {self.entry.index.name}"
            )
        if hashlib.sha256(record).hexdigest() != row.record_sha256:
            problem(f"{where}: the record at {self.entry.file}[{position}] does not have the bytes the index hashes")
        else:
            try:
                said = _record_fields(record)
            except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, a missing feature: the record's fault
                problem(f"{where}: the record at {self.entry.file}[{position}] is not a valid Example ({exc})")
            else:
                if said != (key, copy, row.label, row.params, row.source_sha256):
                    problem(
                        f"{where}: the record at {self.entry.file}[{position}] says otherwise "
                        "(key, copy, label, params or source)"
                    )
                elif self.classes is not None:  # the record and its row agree: is the label the key's class?
                    self.check_class(position, row, problem)
        order = record_order(key, copy)
        if order % self.num_shards != self.shard:
            problem(f"{where}: in {self.entry.file}, but its hash names another shard")
        if self.previous is not None and (order, key, copy) < self.previous:
            problem(
                f"{where}: out of hash order in {self.entry.file}: record {position} sorts before record "
                f"{position - 1} ({self.previous[1]!r}, copy {self.previous[2]}); the job writes records in "
                "the order of the hash of (key, copy)"
            )
        self.previous = (order, key, copy)
        if not 0 <= copy < self.copies:
            problem(f"{where}: copy out of range (the split has {self.copies} copies)")
        pair = (key, copy)
        if pair in self.written:
            problem(f"{where}: appears twice in split {self.split!r}")
        self.written.add(pair)
        if pair in self.failed_pairs:
            problem(f"record ({key!r}, copy {copy}) is both failed and written")
        if key in self.failed_keys:
            problem(f"input {key!r} is both failed and written")
        self.slots_found = (self.slots_found + order) & _MASK
        if copy == 0:
            self.owns(key)
        if self.sample:
            self.candidates.append((sample_order(row), row))  # the orders are distinct: rows are never compared
            if len(self.candidates) >= 2 * self.sample:
                self.candidates = sorted(self.candidates)[: self.sample]

    def check_class(self, position: int, row: IndexRow, problem: Callable[[str], None]) -> None:
        """A folder input's record: its label must be the index of its key's class folder."""
        from pipeline.job.listing import class_folder_of  # imported once, then found in sys.modules

        assert self.classes is not None
        folder = class_folder_of(row.key)
        expected = self.classes.get(folder) if folder is not None else None
        if row.label != expected:
            said = f"class folder {folder!r}" + (
                ", which is not one of the classes" if expected is None else f" (label {expected})"
            )
            problem(
                f"{self.entry.file}[{position}] ({row.key!r}, copy {row.copy}): label {row.label}, "
                f"but its key is in {said}"
            )


class _FramingError(Exception):
    """The shard's TFRecord framing is broken (``read_records``' ValueError, kept apart from the index's)."""


def _framed(handle: _HashingReader) -> Iterator[bytes]:
    try:
        yield from read_records(handle)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _FramingError(str(exc)) from None


def _record_fields(record: bytes) -> tuple[str, int, int, str, str]:
    """(key, copy, label, params, source sha256) as the record itself says."""
    f = parse_example(record)
    return (
        bytes(f["key"][0]).decode(),  # type: ignore[arg-type]
        int(f["copy"][0]),
        int(f["label"][0]) if "label" in f else -1,  # a detection record has objects, not a label
        bytes(f["params"][0]).decode(),  # type: ignore[arg-type]
        bytes(f["source_sha256"][0]).decode(),  # type: ignore[arg-type]
    )


# --- every shard, folded -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SplitTotals:
    """One split's sums over its shards' checks."""

    shards: set[int] = dataclasses.field(default_factory=set)
    complete: bool = True
    records: int = 0
    index_rows: int = 0
    decoded_inputs: int = 0
    record_error_rows: int = 0
    input_rows_by_stage: Counter = dataclasses.field(default_factory=Counter)
    error_rows_by_reason: Counter = dataclasses.field(default_factory=Counter)
    slots_expected: int = 0
    slots_found: int = 0

    def merge(self, other: SplitTotals) -> None:
        self.complete = self.complete and other.complete and not (self.shards & other.shards)
        self.shards |= other.shards
        for name in ("records", "index_rows", "decoded_inputs", "record_error_rows"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.input_rows_by_stage.update(other.input_rows_by_stage)
        self.error_rows_by_reason.update(other.error_rows_by_reason)
        self.slots_expected = (self.slots_expected + other.slots_expected) & _MASK
        self.slots_found = (self.slots_found + other.slots_found) & _MASK

    @classmethod
    def of(cls, check: ShardCheck) -> SplitTotals:
        return cls(
            {check.shard},
            check.complete,
            check.records,
            check.index_rows,
            check.decoded_inputs,
            check.record_error_rows,
            Counter(check.input_rows_by_stage),
            Counter(check.error_rows_by_reason),
            check.slots_expected,
            check.slots_found,
        )

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["shards"] = sorted(self.shards)
        out["input_rows_by_stage"] = dict(self.input_rows_by_stage)
        out["error_rows_by_reason"] = dict(self.error_rows_by_reason)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitTotals:
        values = dict(data)
        values["shards"] = set(values["shards"])
        values["input_rows_by_stage"] = Counter(values["input_rows_by_stage"])
        values["error_rows_by_reason"] = Counter(values["error_rows_by_reason"])
        return cls(**values)


@dataclasses.dataclass
class Collected:
    """``ShardCheck``s folded together, in any order, to the same result; O(shards) plus the sample.

    What ``reconcile`` needs: per-split sums, what was checked, the first failures in (split, shard)
    order, and the ``sample`` index rows with the smallest ``sample_order``.
    """

    sample: int = 0
    splits: dict[str, SplitTotals] = dataclasses.field(default_factory=dict)
    checked: Counter = dataclasses.field(default_factory=Counter)
    failures: list[tuple[str, int, int, str]] = dataclasses.field(default_factory=list)  # (split, shard, n, text)
    more_failures: int = 0
    candidates: list[IndexRow] = dataclasses.field(default_factory=list)

    def add(self, check: ShardCheck) -> Collected:
        one = Collected(
            self.sample,
            {check.split: SplitTotals.of(check)},
            Counter(check.checked),
            [(check.split, check.shard, i, text) for i, text in enumerate(check.failures)],
            check.more_failures,
            list(check.sample),
        )
        return self.merge(one)

    def merge(self, other: Collected) -> Collected:
        for split, totals in other.splits.items():
            if split in self.splits:
                self.splits[split].merge(totals)
            else:
                self.splits[split] = SplitTotals.from_json(totals.to_json())
        self.checked.update(other.checked)
        self.failures += other.failures
        self.more_failures += other.more_failures
        self.candidates += other.candidates
        if len(self.failures) > 2 * KEPT_FAILURES:
            self.failures.sort()
            self.more_failures += len(self.failures) - KEPT_FAILURES
            del self.failures[KEPT_FAILURES:]
        if len(self.candidates) > 2 * self.sample:
            self.candidates = self.chosen()
        return self

    def chosen(self) -> list[IndexRow]:
        """The sample: the ``sample`` rows with the smallest ``sample_order``, in that order."""
        return sorted(self.candidates, key=sample_order)[: self.sample]

    def kept_failures(self) -> tuple[list[str], int]:
        """The first ``KEPT_FAILURES`` failures in (split, shard) order, and how many more there were."""
        ordered = sorted(self.failures)
        return [text for *_, text in ordered[:KEPT_FAILURES]], self.more_failures + max(0, len(ordered) - KEPT_FAILURES)

    def to_json(self) -> dict[str, Any]:
        return {
            "sample": self.sample,
            "splits": {name: totals.to_json() for name, totals in self.splits.items()},
            "checked": dict(self.checked),
            "failures": [list(f) for f in self.failures],
            "more_failures": self.more_failures,
            "candidates": [row.to_json() for row in self.candidates],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Collected:
        return cls(
            data["sample"],
            {name: SplitTotals.from_json(t) for name, t in data["splits"].items()},
            Counter(data["checked"]),
            [(f[0], f[1], f[2], f[3]) for f in data["failures"]],
            data["more_failures"],
            [IndexRow.from_json(row) for row in data["candidates"]],
        )


def check_locally(root: str, manifest: Manifest, sample: int = 0) -> Collected:
    """Every shard checked here, one after another: memory stays that of one shard."""
    collected = Collected(sample)
    for split, info in sorted(manifest.splits.items()):
        for shard in range(info.num_shards):
            collected.add(check_shard(root, manifest, split, shard, sample))
    return collected


def reconcile(manifest: Manifest, collected: Collected, report: Report) -> None:
    """The shards' failures into ``report``, then each split's sums against its manifest counts."""
    failures, more = collected.kept_failures()
    report.problems += failures
    report.more_problems += more
    report.checked.update(collected.checked)
    for split, info in sorted(manifest.splits.items()):
        totals = collected.splits.get(split, SplitTotals())
        missing = sorted(set(range(info.num_shards)) - totals.shards)
        if missing:
            first = info.shards[missing[0]].file
            report.fail(f"split {split!r}: {len(missing)} shard(s) were not checked, e.g. {first}")
            continue
        if not totals.complete:
            continue  # a file changed, missing or unreadable: its counts would only repeat that
        c = info.counts
        found_reasons = {k: v for k, v in totals.error_rows_by_reason.items() if v}
        checks = [
            (c.listed == c.decoded + c.failed_inputs, "listed = decoded + failed inputs"),
            (c.decoded * c.copies == c.written + c.failed_records, "decoded x copies = written + failed"),
            (sum(s.records for s in info.shards) == c.written, "shard records sum to written"),
            (totals.index_rows == c.written, f"index rows ({totals.index_rows}) = written"),
            (
                sum(totals.input_rows_by_stage.values()) == c.failed_inputs,
                f"input error rows ({sum(totals.input_rows_by_stage.values())}) = failed inputs",
            ),
            (
                totals.record_error_rows == c.failed_records,
                f"record error rows ({totals.record_error_rows}) = failed records",
            ),
            (
                totals.decoded_inputs == c.decoded,
                f"inputs with a copy 0 written or failed ({totals.decoded_inputs}) = decoded",
            ),
            (
                found_reasons == {k: v for k, v in info.error_rows_by_reason.items() if v},
                "error rows by reason match the manifest",
            ),
            (
                totals.slots_expected == totals.slots_found,
                "each decoded input has each copy exactly once, written or failed (a copy is missing or extra, "
                "or an input that failed has records)",
            ),
        ]
        for stage in WHOLE_INPUT_STAGES:
            got = totals.input_rows_by_stage.get(stage, 0)
            want = c.failed_inputs_by_stage.get(stage, 0)
            checks.append((got == want, f"{stage} error rows ({got}) = failed at {stage} ({want})"))
        for ok, what in checks:
            report.checked["count rules"] += 1
            if not ok:
                report.fail(f"split {split!r}: counts do not reconcile: {what} ({c})")


# --- the command ---------------------------------------------------------------------------------------------------


def verify(dst: str, sample: int = 0, source: str | None = None, beam_args: list[str] | None = None) -> Report:
    """Runs every check on the output folder ``dst``; never raises for what it finds.

    ``beam_args`` (a list, even empty): check the shards as a Beam job with these options
    (``check_with_beam``) instead of here; the report is the same.
    """
    report = Report()
    root = fsutil.normalize(dst)
    try:
        manifest = read_manifest(dst)
    except ReaderError as exc:
        report.fail(str(exc))
        return report
    _check_folder(root, manifest, report)
    if beam_args is None:
        collected = check_locally(root, manifest, sample)
    else:
        collected = check_with_beam(root, manifest, sample, beam_args)
    reconcile(manifest, collected, report)
    if (sample > 0 or source) and report.ok:
        _check_against_listing(root, manifest, source, report)
    if sample > 0 and report.ok:
        _regenerate(root, manifest, collected.chosen(), source, report)
    return report


def _check_folder(root: str, manifest: Manifest, report: Report) -> None:
    """No file the manifest does not name; the side files' checksums (the shards' files are ``check_shard``'s).

    The lock file of a run writing the folder (or of one killed after its manifest) is no part of the output.
    """
    from pipeline.job.output_lock import LOCK_FILE

    expected = manifest.expected_files()
    present = {_relative(root, p) for p, _ in fsutil.list_files(root)} - {LOCK_FILE}
    for name in sorted(present - set(expected)):
        report.fail(f"{name}: in the folder but not in the manifest (left over, or written by something else)")
    for name, info in sorted((manifest.side_files or {}).items()):
        if name not in present:
            report.fail(f"{name}: named by the manifest but missing")
            continue
        data_sha, size = _digest(fsutil.join(root, name))
        if size != info.bytes or data_sha != info.sha256:
            report.fail(
                f"{name}: {size} bytes, sha256 {data_sha[:12]}..., but the manifest says "
                f"{info.bytes} bytes, {info.sha256[:12]}...: changed or corrupt"
            )
        report.checked["file checksums"] += 1


# --- as a Beam job -------------------------------------------------------------------------------------------------


def check_with_beam(root: str, manifest: Manifest, sample: int, beam_args: list[str]) -> Collected:
    """The shards checked as a Beam job: shard numbers, ``check_shard`` on each, one ``Collected`` back.

    The graph holds only the splits' names and shard counts (never the manifest's entries: workers read
    the manifest themselves); the merged result (O(shards) + the sample) comes back through one JSON
    file in a temporary folder here, or under ``--temp_location`` for a remote runner.
    """
    import apache_beam as beam

    from pipeline.errors import UserError
    from pipeline.job.run import pipeline_options
    from pipeline.runtime.runners import fn_api_runner, runs_remotely

    options = pipeline_options(beam_args)
    remote = runs_remotely(beam_args)
    if remote and fsutil.is_local(root):
        raise UserError(
            f"{root!r} is a local folder, which a remote runner's workers cannot read; "
            "verify it without Beam options, or give its shared URL (gs://, s3://...)"
        )
    folder, made = _result_folder(options, remote)
    result = fsutil.join(folder, f"augbeam-verify-{uuid.uuid4().hex}.json")
    splits = [(split, info.num_shards) for split, info in sorted(manifest.splits.items())]
    try:
        with beam.Pipeline(runner=fn_api_runner(options), options=options) as p:
            _ = (
                p
                | "Splits" >> beam.Create(splits)
                | "Shards" >> beam.FlatMap(_shard_numbers)
                | "Spread" >> beam.Reshuffle()
                | "CheckShards" >> beam.ParDo(_CheckShardFn(root, sample))
                | "Collect" >> beam.CombineGlobally(_CollectFn(sample))
                | "Write" >> beam.Map(_write_collected, result)
            )
        return Collected.from_json(json.loads(fsutil.read_bytes(result)))
    finally:
        if fsutil.exists(result):
            fsutil.delete(result)
        if made:
            os.rmdir(folder)


def _result_folder(options: Any, remote: bool) -> tuple[str, bool]:
    """Where the job leaves its result: a new local temporary folder (True: remove it), or ``--temp_location``."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from pipeline.errors import UserError

    temp = options.view_as(GoogleCloudOptions).temp_location
    if temp:
        return temp, False
    if remote:
        raise UserError(
            "a remote runner's workers need a folder to leave verify's result in: "
            "add --temp_location=URL (gs://, s3://...) after '--'"
        )
    return tempfile.mkdtemp(prefix="augbeam-verify-"), True


def _shard_numbers(split_shards: tuple[str, int]) -> Iterator[tuple[str, int]]:
    split, num_shards = split_shards
    for shard in range(num_shards):
        yield split, shard


def _write_collected(collected: Collected, path: str) -> None:
    fsutil.write_atomic(path, json.dumps(collected.to_json()).encode())


def _beam_classes() -> tuple[type, type]:
    """The DoFn and CombineFn, defined when Beam is imported (the local check never imports it)."""
    import apache_beam as beam

    class CheckShardFn(beam.DoFn):
        """``check_shard`` on a worker; the manifest is read once per worker, not shipped in the graph."""

        def __init__(self, root: str, sample: int) -> None:
            self.root, self.sample = root, sample
            self.manifest: Manifest | None = None

        def setup(self) -> None:
            self.manifest = read_manifest(self.root)

        def process(self, element: tuple[str, int]) -> Iterator[ShardCheck]:
            assert self.manifest is not None
            split, shard = element
            yield check_shard(self.root, self.manifest, split, shard, self.sample)

    class CollectFn(beam.CombineFn):
        """Folds ``ShardCheck``s into one ``Collected``."""

        def __init__(self, sample: int) -> None:
            self.sample = sample

        def create_accumulator(self) -> Collected:
            return Collected(self.sample)

        def add_input(self, accumulator: Collected, check: ShardCheck) -> Collected:
            return accumulator.add(check)

        def merge_accumulators(self, accumulators: Iterable[Collected]) -> Collected:
            merged = Collected(self.sample)
            for accumulator in accumulators:
                merged.merge(accumulator)
            return merged

        def extract_output(self, accumulator: Collected) -> Collected:
            return accumulator

    return CheckShardFn, CollectFn


def _CheckShardFn(root: str, sample: int) -> Any:  # noqa: N802 - builds the DoFn
    return _beam_classes()[0](root, sample)


def _CollectFn(sample: int) -> Any:  # noqa: N802 - builds the CombineFn
    return _beam_classes()[1](sample)


# --- against the source --------------------------------------------------------------------------------------------


def _check_against_listing(root: str, manifest: Manifest, source: str | None, report: Report) -> None:
    """Lists the input again: every entry must be a record or an error row, and nothing else (per split).

    Holds every listed key (the listing itself does): the one check here that is O(inputs) in memory.
    """
    from pipeline.errors import UserError
    from pipeline.job.listing import list_inputs

    recorded, kind = manifest.input.root, manifest.input.kind
    where = (
        recorded
        if not source
        else (source if kind in ("folder", "annotations") else fsutil.join(source, recorded.rsplit("/", 1)[-1]))
    )
    classes = manifest.config.get("classes")
    try:
        if kind == "annotations":  # an annotated run's inputs are what its annotation sources list
            from pipeline.job.annotated import list_annotated

            listing = list_annotated(dataclasses.replace(config_from_manifest(manifest, root), input=where))
        else:
            listing = list_inputs(where, tuple(classes) if classes else None)
    except UserError as exc:
        report.fail(f"cannot list the source again to compare ({exc}); give --source")
        return
    accounted: dict[str, dict[str, bool]] = {}  # split -> listed key -> has a record or an error row
    labels: dict[str, dict[str, int]] = {}  # split -> listed input -> its label now
    for item in listing.items:
        accounted.setdefault(item.split, {})[item.key] = False
        labels.setdefault(item.split, {})[item.key] = item.label
    for error in listing.errors:
        accounted.setdefault(error.split, {})[error.key] = False
    relabelled: list[str] = []  # the first few records whose label is not the source's
    more = 0
    extra: dict[str, set[str]] = {}
    tables: tuple[Iterable[IndexRow | ErrorRow], ...] = (
        iter_table(root, manifest.index_tables(), IndexRow),
        iter_table(root, manifest.error_tables(), ErrorRow),
    )
    for rows in tables:
        for row in rows:
            keys = accounted.get(row.split)
            if keys is not None and row.key in keys:
                keys[row.key] = True
            else:
                extra.setdefault(row.split, set()).add(row.key)
            if not isinstance(row, IndexRow):
                continue
            listed = labels.get(row.split, {}).get(row.key)
            if listed is not None and listed != row.label:
                if len(relabelled) < SHARD_FAILURES:
                    relabelled.append(
                        f"{row.shard}[{row.position}] ({row.key!r}, copy {row.copy}): label {row.label}, "
                        f"but the source lists it with {listed}"
                    )
                else:
                    more += 1
    report.problems += relabelled
    report.more_problems += more
    for split in sorted(set(accounted) | set(extra)):
        missing = sorted(key for key, seen in accounted.get(split, {}).items() if not seen)
        if missing:
            report.fail(
                f"split {split!r}: {len(missing)} listed input(s) have no record and no error row, e.g. {missing[0]!r}"
            )
        if extra.get(split):
            report.fail(
                f"split {split!r}: {len(extra[split])} key(s) are not in the source listing, e.g. {min(extra[split])!r}"
            )
        info = manifest.splits.get(split)
        count = info.counts.listed if info is not None else None
        if count is not None and count != listing.listed.get(split, 0):
            report.fail(
                f"split {split!r}: the manifest says {count} listed, the source lists "
                f"{listing.listed.get(split, 0)} now"
            )
        report.checked["splits compared with the source"] += 1


def _regenerate(root: str, manifest: Manifest, chosen: list[IndexRow], source: str | None, report: Report) -> None:
    """Re-renders the chosen records (the smallest ``sample_order``: the same ones every time)."""
    from transforms.augment import Renderer
    from transforms.decode import DecodeError, Decoder

    config = config_from_manifest(manifest, root)
    recorded = manifest.input.root
    # keys are relative to the input folder, or to the folder that holds a listing file
    base = source or (recorded if manifest.input.kind in ("folder", "annotations") else recorded.rsplit("/", 1)[0])
    targets = _RecordTargets(config, manifest, base) if manifest.targets is not None else None
    masks = (
        _ListingMasks(manifest, source, chosen) if any("mask" in s.columns for s in manifest.splits.values()) else None
    )
    decoder = Decoder(config.alpha_fill, config.max_pixels, config.high_bit_depth, config.max_image_bytes)
    renderers: dict[str, Renderer] = {}
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
            sampled = ops_params(json.loads(row.params))
            # the image its params apply to: the planned JPEG window where they record one, else the whole image
            payload = renderers[split].render(decoder.decode_for(data, sampled), sampled)
        except (DecodeError, ValueError) as exc:
            report.fail(f"{where}: could not be regenerated: {exc}")
            continue
        record = _record_bytes(fsutil.join(root, row.shard), row.position)
        if payload != _record_image(record):
            report.fail(f"{where}: regenerated pixels differ from the stored ones")
        report.checked["records regenerated"] += 1
        if targets is not None:
            problem = targets.check(row, data, renderers[split].ops, sampled, record, decoder)
            if problem:
                report.fail(f"{where}: {problem}")
            report.checked["records' targets regenerated"] += 1
        if masks is not None and masks.has(row):
            problem = masks.check(row, data, renderers[split].ops, sampled, record, decoder, config)
            if problem:
                report.fail(f"{where}: {problem}")
            report.checked["records' semantic masks regenerated"] += 1


class _RecordTargets:
    """Regenerates a detection record's targets from its source annotation and params, and compares them."""

    def __init__(self, config: Any, manifest: Manifest, base: str) -> None:
        from pipeline.job.annotated import RunTargets

        assert manifest.targets is not None
        info = manifest.targets
        self.config = config
        self.base = base
        self.targets = RunTargets(info.source_format, info.classes, info.keypoints, info.has("instance_segmentation"))
        self.annotations: dict[str, dict[str, str]] = {}  # split -> key -> annotation JSON, read once per split

    def annotation(self, split: str, key: str) -> str | None:
        from pipeline.job.annotated import read_unit

        if split not in self.annotations:
            found: dict[str, str] = {}
            for name, path in self.config.annotations:
                if name == split:
                    _, rows = read_unit(self.config, self.base, split, path)
                    found = {r.file: r.to_json() for r in rows if not isinstance(r, ErrorRow)}
            self.annotations[split] = found
        return self.annotations[split].get(key)

    def check(self, row: IndexRow, data: bytes, ops: Any, sampled: list[Any], record: bytes, decoder: Any) -> str:
        """'' when the record's boxes, classes, masks, keypoints and removal counts are the regenerated ones."""
        import numpy as np

        from pipeline.format.detection_records import parse_detection_example, removed_counts
        from pipeline.job.annotated import image_objects, record_targets, removed_entry

        annotation = self.annotation(row.split, row.key)
        if annotation is None:
            return "its annotation is no longer in the annotation source"
        shape = decoder(data).shape  # the upright image the params were sampled for
        objects = image_objects(annotation, shape, self.targets)
        if not isinstance(objects, Objects):
            return f"its annotation no longer fits its image: {objects.message}"
        carried, removed = record_targets(objects, ops, sampled, shape, self.config, self.targets.keypoints)
        stored = parse_detection_example(record)
        if removed_counts(json.loads(row.params)) != removed_entry(removed)[REMOVED]:
            return "its removal counts differ from the regenerated ones"
        if stored.classes.tolist() != carried.classes.tolist() or stored.ids.tolist() != carried.ids.tolist():
            return "its objects' classes or ids differ from the regenerated ones"
        if not np.allclose(stored.boxes, carried.boxes, atol=1e-3):
            return "its boxes differ from the regenerated ones"
        if not _same(stored.masks, carried.masks, exact=True):
            return "its instance masks differ from the regenerated ones"
        if not _same(stored.keypoints, carried.keypoints, exact=False):
            return "its keypoints differ from the regenerated ones"
        return ""


class _ListingMasks:
    """Regenerates the semantic mask of a listing's ``mask`` column from its mask file and the record's params."""

    def __init__(self, manifest: Manifest, source: str | None, chosen: list[IndexRow]) -> None:
        from pipeline.errors import UserError
        from pipeline.job.listing import list_inputs

        recorded = manifest.input.root
        where = recorded if not source else fsutil.join(source, recorded.rsplit("/", 1)[-1])
        classes = manifest.config.get("classes")
        wanted = {(row.split, row.key) for row in chosen}
        self.paths: dict[tuple[str, str], str] = {}  # (split, key) -> its mask file, for the chosen records only
        self.problem = ""
        try:
            listing = list_inputs(where, tuple(classes) if classes else None)
        except (UserError, OSError) as exc:  # said for each sampled record, as an unreadable source is
            self.problem = f"its mask cannot be regenerated: the listing {where!r} cannot be read ({exc})"
            return
        for item in listing.items:
            if item.mask is not None and (item.split, item.key) in wanted:
                self.paths[(item.split, item.key)] = item.mask

    def has(self, row: IndexRow) -> bool:
        return bool(self.problem) or (row.split, row.key) in self.paths

    def check(
        self, row: IndexRow, data: bytes, ops: Any, sampled: list[Any], record: bytes, decoder: Any, config: Any
    ) -> str:
        """'' when the record's stored mask is its mask file carried through its params, as the job carries it."""
        import numpy as np

        from pipeline.format.detection_records import decode_png
        from pipeline.format.records import MASK_ENCODED
        from pipeline.job.mask_carry import check_mask_size, read_mask
        from transforms.targets.carry import carry_semantic_mask

        if self.problem:
            return self.problem
        path = self.paths[(row.split, row.key)]
        try:
            mask = read_mask(fsutil.read_bytes(path))
        except OSError as exc:
            return f"cannot read its mask {path!r}: {exc}"
        shape = tuple(decoder(data).shape)  # the upright image the params were sampled for
        bad = mask if isinstance(mask, tuple) else check_mask_size(mask, shape)
        if bad is not None or isinstance(mask, tuple):
            return f"its mask {path!r} no longer fits: {(bad or mask)[1]}"
        size = (int(config.image_size[0]), int(config.image_size[1]))
        carried = carry_semantic_mask(mask, ops, sampled, (shape[0], shape[1], 3), size, config.resize_mode)
        stored = parse_example(record).get(MASK_ENCODED)
        if not stored or not np.array_equal(decode_png(bytes(stored[0])), carried):  # type: ignore[arg-type]
            return f"its semantic mask differs from {path!r} carried through its params"
        return ""


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
    if data.get("annotations"):
        data["annotations"] = tuple((str(split), str(path)) for split, path in data["annotations"])
    fields = {f.name for f in dataclasses.fields(JobConfig)}
    # The manifest does not record --batch-size (it never changes the bytes); records are regenerated one at a
    # time, and a batch of one passes the worker-memory bound whatever --image-size the run was allowed.
    data["batch_size"] = 1
    return JobConfig(output=output, **{k: v for k, v in data.items() if k in fields and k != "output"})


def _same(stored: Any, regenerated: Any, exact: bool) -> bool:
    """Both absent, or equal arrays (``exact``), or equal within float32's rounding of what was written."""
    import numpy as np

    if stored is None or regenerated is None:
        return stored is None and regenerated is None
    if np.shape(stored) != np.shape(regenerated):
        return False
    return bool(np.array_equal(stored, regenerated) if exact else np.allclose(stored, regenerated, atol=1e-3))


def _record_bytes(shard: str, position: int) -> bytes:
    for i, record in enumerate(iter_records(shard)):
        if i == position:
            return bytes(record)
    raise ValueError(f"{shard} has no record {position}")


def _record_image(record: bytes) -> bytes:
    """The stored image's bytes (a detection record keeps a JPEG or PNG under ``image/encoded``)."""
    f = parse_example(record)
    return bytes((f["image"] if "image" in f else f["image/encoded"])[0])  # type: ignore[arg-type]


def _digest(path: str) -> tuple[str, int]:
    with fsutil.open_read(path) as raw:
        handle = _HashingReader(raw)
        handle.drain()
    return handle.digest.hexdigest(), handle.size


def _relative(root: str, path: str) -> str:
    return path[len(root.rstrip("/")) + 1 :] if path.startswith(root.rstrip("/") + "/") else path
