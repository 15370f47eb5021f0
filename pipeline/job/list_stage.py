"""Listing on the workers: the input's units fanned out, labels and duplicates settled, the plan summed up.

``ListInputs`` turns the driver's ``Source`` (O(classes) units) into three
PCollections: packed chunks of ``InputItem``, lists of listing ``ErrorRow``,
and a singleton ``Plan``. Only packed chunks and small counters cross stage
boundaries: on the DirectRunner whatever crosses a stage is held by the
driver process (see ``chunks``).

A user's mistake found here (a split that is not a name, two files with one
key, an input inside the output folder) fails the job with its one line
(``WorkerRefusal``), before the output folder is touched.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam import pvalue

from pipeline import fsutil
from pipeline.errors import UserError, WorkerRefusal
from pipeline.format.manifest import ErrorRow
from pipeline.job import annotated
from pipeline.job.chunks import Packed, SpilledPart, keep, pack, spill, stored, unpack
from pipeline.job.listing import (
    DUPLICATE,
    Candidate,
    FolderEntry,
    InputItem,
    Source,
    Unit,
    chunks,
    class_names_of,
    item_max_label,
    label_folder_entry,
    list_folder_unit,
    numbered_classes,
    read_table_unit,
    resolve_row,
    row_values_count,
    settle_key,
    table_classes,
    table_units,
)
from pipeline.job.options import JobConfig
from pipeline.job.plan import ListingStats, Plan, plan_from
from pipeline.job.shard import work_dir
from pipeline.job.target_columns import values_dim
from pipeline.runtime.watchdog import mark_started
from transforms.rng import stable_hash64

CHUNK = 4096  # rows per element between listing stages
BUCKETS = 1024  # listing rows are grouped by key into this many buckets to settle duplicates
# With spilled parts (the DirectRunner: a few local workers) each reference costs the driver about 100 bytes:
# 1,024 per chunk of 4,096 rows would be 25 a row. 16 buckets keep every local worker busy.
SPILLED_BUCKETS = 16
ERRORS = "errors"
DECLARED = "declared"  # an annotated run: (split, what its annotation source declares)

F = TypeVar("F", bound=Callable[..., Any])


def refusing(fn: F) -> F:
    """Wraps a FlatMap's function: a ``UserError`` leaves the worker marked, so the driver prints its one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from fn(*args, **kwargs)
        except UserError as exc:
            raise WorkerRefusal(str(exc)) from None

    return wrapper  # type: ignore[return-value]


class ListInputs(beam.PTransform):
    """The source's units -> (the listing's work, plan singleton).

    The work is what ``expand_work`` turns into inputs and listing errors once
    the plan is known. A folder is listed twice, by the workers: once for the
    plan's totals (only a few counters per class folder cross a stage), then
    again per class folder where the records are planned, so no per-file
    element is held between stages (on the DirectRunner, in the driver). A
    listing file must be settled (duplicates) across all its rows first: its
    work is packed chunks of inputs and lists of error rows.
    """

    def __init__(
        self, config: JobConfig, source: Source, refuse_local: bool = False, spill_dir: str | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.source = source
        self.refuse_local = refuse_local  # workers on other machines cannot read this machine's files
        # On the DirectRunner a listing file's rows go through files in this folder (see ``chunks.SpilledPart``):
        # it must outlive the prepare step, which clears the output folder, so it is not in the work folder.
        self.spill_dir = spill_dir

    def expand(self, root: pvalue.PBegin) -> tuple[Any, Any]:
        source = self.source
        units = root | "Units" >> beam.Create(list(source.units))  # O(classes); Create spreads them over workers
        if source.kind == annotated.KIND:
            return self._annotations(units)
        if not source.is_table:
            stats = (
                units
                | "CountFolders" >> beam.ParDo(_FolderStats(source, self.config.output))
                | "SumFolderStats" >> beam.CombineGlobally(_merge_stats)
            )
            plan = stats | "Plan" >> beam.Map(_plan, self.config, source, None)
            return units, plan
        items, errors, classes = self._tables(units)
        stats = _listing_stats(items, errors, source.prefix)
        plan = stats | "Plan" >> beam.Map(_plan, self.config, source, pvalue.AsSingleton(classes))
        return (items, errors) | "TableWork" >> beam.Flatten(), plan

    def _annotations(self, units: Any) -> tuple[Any, Any]:
        """``--annotations``: each split's source read whole by one worker into packed inputs and error rows."""
        source = self.source
        read = units | "ReadAnnotations" >> beam.ParDo(
            _ReadAnnotations(source, self.config, self.spill_dir)
        ).with_outputs(ERRORS, DECLARED, main="items")
        items, errors = read.items, read[ERRORS]
        declared = read[DECLARED] | "Declared" >> beam.combiners.ToDict()
        stats = _listing_stats(items, errors, source.prefix)
        plan = stats | "Plan" >> beam.Map(_annotated_plan, self.config, source, pvalue.AsSingleton(declared))
        return (items, errors) | "AnnotatedWork" >> beam.Flatten(), plan

    def _tables(self, units: Any) -> tuple[Any, Any, Any]:
        source, spill_dir = self.source, self.spill_dir
        rows = (
            units
            | "RowGroups" >> beam.FlatMap(refusing(lambda unit: table_units(source)))
            | "SpreadRowGroups" >> beam.Reshuffle()
            | "ReadRows" >> beam.FlatMap(refusing(_read_rows), source, spill_dir)
        )
        names = (
            rows
            | "TableClassNames" >> beam.Map(_row_class_names)
            | "TableClassNamesUnion" >> beam.CombineGlobally(_union_names, source.fixed_classes)
        )
        dim = (
            rows
            | "ValuesCounts" >> beam.Map(_values_counts)
            | "ValuesCountsSum" >> beam.CombineGlobally(_sum_counts)
            | "ValuesDim" >> beam.Map(values_dim)
        )
        resolved = rows | "Resolve" >> beam.ParDo(
            _ResolveRows(source, self.config, self.refuse_local, spill_dir),
            pvalue.AsSingleton(names),
            pvalue.AsSingleton(dim),
        ).with_outputs(ERRORS, main="candidates")
        settled = (
            resolved.candidates
            | "ByKey" >> beam.GroupByKey()
            | "Settle" >> beam.ParDo(_SettleKeys(source, spill_dir)).with_outputs(ERRORS, main="items")
        )
        items = settled.items
        errors = (resolved[ERRORS], settled[ERRORS]) | "ListingErrors" >> beam.Flatten()
        max_label = (
            items
            | "MaxLabel"
            >> beam.Map(lambda part, prefix: max(map(item_max_label, unpack(stored(part), prefix))), source.prefix)
            | "MaxLabelAll" >> beam.CombineGlobally(lambda labels: max(labels, default=-1))
        )
        classes = names | "NumberedClasses" >> beam.Map(
            lambda found, top: numbered_classes(found, top), pvalue.AsSingleton(max_label)
        )
        return items, errors, classes


class _ReadAnnotations(beam.DoFn):
    """One split's annotation source -> packed inputs carrying their annotation, error rows, and what it declares."""

    def __init__(self, source: Source, config: JobConfig, spill_dir: str | None) -> None:
        self.source = source
        self.config = config
        self.spill_dir = spill_dir

    def setup(self) -> None:
        mark_started(work_dir(self.config.output))

    def process(self, unit: Unit) -> Iterator[Any]:
        root, prefix = self.source.root, self.source.prefix
        try:
            declared, items, errors, _listed = annotated.unit_inputs(self.config, root, unit.split, unit.path)
        except UserError as exc:
            raise WorkerRefusal(str(exc)) from None
        for part in chunks(items, CHUNK):
            yield keep(self.spill_dir, pack("item", part, prefix))
        for rows_part in chunks(errors, CHUNK):
            yield pvalue.TaggedOutput(ERRORS, rows_part)
        yield pvalue.TaggedOutput(DECLARED, (unit.split, annotated.dataset_json(declared)))


def _annotated_plan(stats: ListingStats, config: JobConfig, source: Source, declared: dict[str, str]) -> Plan:
    """An annotated run's plan: the classes its sources declare (the same for every split)."""
    try:
        text = annotated.agreed(declared)
    except UserError as exc:
        raise WorkerRefusal(str(exc)) from None
    classes = annotated.RunTargets.from_json(text, stats.masks).classes
    return plan_from(config, source.root, source.kind, classes, stats, targets=text)


def _listing_stats(items: Any, errors: Any, prefix: str) -> Any:
    """The listing's totals from its packed inputs and error rows (a few counters cross the stage)."""
    return (
        (
            items | "ItemStats" >> beam.Map(_item_stats, prefix),
            errors | "ErrorStats" >> beam.Map(_error_stats),
        )
        | "AllStats" >> beam.Flatten()
        | "SumStats" >> beam.CombineGlobally(_merge_stats)
    )


class _FolderStats(beam.DoFn):
    """One folder unit -> its listing's totals: counts, class names, refused rows, the fingerprint's share."""

    def __init__(self, source: Source, output: str) -> None:
        self.source = source
        self.output = output

    def setup(self) -> None:
        mark_started(work_dir(self.output))

    def process(self, unit: Unit) -> Iterator[ListingStats]:
        fixed = self.source.fixed_classes
        stats = ListingStats()
        try:
            for found in list_folder_unit(self.source, unit):
                if isinstance(found, FolderEntry) and fixed is not None:
                    found = label_folder_entry(found, fixed)  # type: ignore[assignment]  # UnknownLabel, or an item
                if isinstance(found, ErrorRow):
                    stats.add_error(found)
                    _count_refused(found)
                elif isinstance(found, FolderEntry):
                    stats.add_entry(found.key, found.path, found.cls, found.split)
                else:
                    stats.add_entry(found.key, found.path, fixed[found.label], found.split)
        except UserError as exc:
            raise WorkerRefusal(str(exc)) from None
        yield stats


def expand_work(
    element: Unit | Packed | SpilledPart | list[ErrorRow], source: Source, plan: Plan
) -> Iterator[InputItem | ErrorRow]:
    """A piece of the listing's work -> its inputs and listing errors, now that the plan has the class names.

    A folder unit is listed again (the same files as for the plan: if the
    folder changed in between, finalize's counts say so).
    """
    if isinstance(element, Unit):
        for found in list_folder_unit(source, element):
            yield label_folder_entry(found, plan.classes) if isinstance(found, FolderEntry) else found
    elif isinstance(element, Packed | SpilledPart):
        yield from unpack(stored(element), source.prefix)
    else:
        yield from element


def _read_rows(unit: Unit, source: Source, spill_dir: str | None) -> Iterator[Packed | SpilledPart]:
    for chunk in read_table_unit(source, unit, CHUNK):
        yield keep(spill_dir, pack("table_row", chunk))


def _row_class_names(chunk: Packed | SpilledPart) -> set[str]:
    return {n for r in unpack(stored(chunk)) for n in class_names_of(r)}


def _values_counts(chunk: Packed | SpilledPart) -> Counter[int]:
    """How many rows of the chunk hold each count of ``values`` (empty: no values column)."""
    return Counter(n for r in unpack(stored(chunk)) if (n := row_values_count(r)) is not None)


def _sum_counts(counts: Iterable[Counter[int]]) -> Counter[int]:
    """Counters added up (its own output goes in again: Beam's combiner trees)."""
    total: Counter[int] = Counter()
    for part in counts:
        total.update(part)
    return total


def _union_names(chunks_: Iterable[set[str] | tuple[str, ...]], fixed: tuple[str, ...] | None) -> tuple[str, ...]:
    found: set[str] = set()
    for names in chunks_:
        found.update(names)
    return table_classes(found, fixed)


class _LabelFolderEntries(beam.DoFn):
    """Entries get their labels from the class names; listing errors go out on their own."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def process(self, chunk: Packed, classes: tuple[str, ...]) -> Iterator[Any]:
        items: list[InputItem] = []
        errors: list[ErrorRow] = []
        for entry in unpack(chunk, self.prefix):
            labelled = label_folder_entry(entry, classes)
            (errors if isinstance(labelled, ErrorRow) else items).append(labelled)  # type: ignore[arg-type]
        if items:
            yield pack("item", items, self.prefix)
        if errors:
            yield pvalue.TaggedOutput(ERRORS, errors)


class _ResolveRows(beam.DoFn):
    """Listing rows -> packed candidates by key bucket (to settle duplicates), or their listing errors."""

    def __init__(self, source: Source, config: JobConfig, refuse_local: bool, spill_dir: str | None) -> None:
        self.source = source
        self.config = config
        self.output = config.output
        self.refuse_local = refuse_local
        self.spill_dir = spill_dir
        self.buckets = SPILLED_BUCKETS if spill_dir is not None else BUCKETS

    def setup(self) -> None:
        mark_started(work_dir(self.output))

    def process(self, chunk: Packed | SpilledPart, classes: tuple[str, ...], dim: int | None) -> Iterator[Any]:
        try:
            buckets: dict[int, list[Candidate]] = {}
            errors: list[ErrorRow] = []
            rows = unpack(stored(chunk))
            for row in rows:
                found = resolve_row(self.source, row, classes, dim)
                if isinstance(found, ErrorRow):
                    errors.append(found)
                    continue
                refuse_inside_output(self.output, found.path)
                if self.refuse_local and fsutil.is_local(found.path):
                    raise UserError(
                        f"--input {self.source.root!r} lists {found.path!r}, a file on this machine, which remote "
                        "workers cannot read; use a shared filesystem URL (gs://, s3://...) or a local runner "
                        "(or pass --shared-mount if every worker mounts this path)"
                    )
                buckets.setdefault(stable_hash64(found.key) % self.buckets, []).append(found)
        except UserError as exc:
            raise WorkerRefusal(str(exc)) from None
        packed = [(bucket, pack("candidate", found, self.source.prefix)) for bucket, found in buckets.items()]
        yield from spill(self.spill_dir, packed) if self.spill_dir is not None else packed
        if errors:
            yield pvalue.TaggedOutput(ERRORS, errors)


class _SettleKeys(beam.DoFn):
    """One bucket of candidates: each key kept once, the other rows naming it reported."""

    def __init__(self, source: Source, spill_dir: str | None) -> None:
        self.source = source
        self.spill_dir = spill_dir

    def process(self, element: tuple[int, Iterable[Packed | SpilledPart]]) -> Iterator[Any]:
        by_key: dict[str, list[Candidate]] = {}
        for chunk in element[1]:
            for candidate in unpack(stored(chunk), self.source.prefix):
                by_key.setdefault(candidate.key, []).append(candidate)
        items: list[InputItem] = []
        errors: list[ErrorRow] = []
        try:
            for key in sorted(by_key):
                item, dups = settle_key(self.source, by_key[key])
                items.append(item)
                errors.extend(dups)
        except UserError as exc:
            raise WorkerRefusal(str(exc)) from None
        for part in chunks(items, CHUNK):
            yield keep(self.spill_dir, pack("item", part, self.source.prefix))
        if errors:
            yield pvalue.TaggedOutput(ERRORS, errors)


def refuse_inside_output(output: str, path: str) -> None:
    """An input inside the output folder would be deleted by --overwrite: refused before anything is touched."""
    if fsutil.is_local(output) != fsutil.is_local(path):
        return
    if fsutil.is_local(output):
        out = os.path.abspath(output)
        inside = os.path.commonpath([os.path.abspath(path), out]) == out
    else:
        inside = path.startswith(output.rstrip("/") + "/")
    if inside:
        raise UserError(f"--output {output!r} holds inputs of the listing; choose a folder that holds none")


def _max_label(chunk: Packed | SpilledPart, prefix: str) -> int:
    return max(item.label for item in unpack(stored(chunk), prefix))


def _item_stats(chunk: Packed | SpilledPart, prefix: str) -> ListingStats:
    stats = ListingStats()
    for item in unpack(stored(chunk), prefix):
        stats.add_item(item)
    return stats


def _error_stats(chunk: list[ErrorRow]) -> ListingStats:
    stats = ListingStats()
    for row in chunk:
        stats.add_error(row)
        _count_refused(row)
    return stats


def _count_refused(row: ErrorRow) -> None:
    from pipeline.job.graph import count

    if row.error_type == DUPLICATE:
        count("duplicates", 1, row.split)
    else:
        count(f"failed/listing/{row.error_type}", 1)


def _merge_stats(parts: Iterable[ListingStats]) -> ListingStats:
    total = ListingStats()
    for part in parts:
        total = total.merge(part)
    return total


def _plan(stats: ListingStats, config: JobConfig, source: Source, classes: tuple[str, ...] | None) -> Plan:
    """The plan; a folder's class names come with its totals (``--classes``, else every class folder found)."""
    if classes is None:
        classes = source.fixed_classes or tuple(sorted(stats.names))
    return plan_from(config, source.root, source.kind, tuple(classes), stats)
