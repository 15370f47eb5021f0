"""The Beam graph: two small named PTransforms.

``PlanRecords`` turns each listed input into one small element per output
record, keyed by its shard. ``WriteShards`` groups those keys per shard and
lets one worker per shard read, augment and write it. No pixels cross the
shuffle.

Counters in namespace ``augbeam`` (total and ``/<split>``): ``listed``,
``planned``, ``decoded``, ``written``, ``bytes``, ``records_failed``,
``duplicates`` (listing rows naming a file already listed: kept once, not a
failure, as in the error-rate check); and ``failed/<stage>/<ErrorType>``
(listing, read, decode: inputs; augment, range: records).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.format.manifest import ErrorRow, record_order
from pipeline.job.listing import InputItem
from pipeline.job.options import JobConfig
from pipeline.job.shard import PlannedRecord, ShardProcessor

ShardKey = tuple[str, int]
NAMESPACE = "augbeam"
DUPLICATE = "DuplicateInput"  # a listing row naming a file already listed: kept once, not a failure


def count(name: str, n: int, split: str | None = None) -> None:
    """Adds ``n`` to the counter ``name`` and, given a split, to ``name/split``.

    Counters are for runner UIs (Dataflow, Flink) while the job runs. Their
    attempted values include retried and replayed bundles, so the manifest's
    counts come from the written data instead.
    """
    Metrics.counter(NAMESPACE, name).inc(n)
    if split is not None:
        Metrics.counter(NAMESPACE, f"{name}/{split}").inc(n)


class CountListingErrors(beam.PTransform):
    """Counts the listing's refused rows as ``listed`` and ``failed/listing/<type>``, duplicates as ``duplicates``."""

    def __init__(self, errors: list[ErrorRow]) -> None:
        super().__init__()
        self.reasons = [(e.split, e.error_type) for e in errors]

    def expand(self, root: beam.pvalue.PBegin) -> beam.PCollection:
        # reshuffle=False: counting needs no shuffle (each one is a stage of its own, 40-60 ms on every worker)
        return (
            root
            | "ListingErrors" >> beam.Create(self.reasons, reshuffle=False)
            | "Count" >> beam.Map(_count_listing_error)
        )


def _count_listing_error(reason: tuple[str, str]) -> None:
    """One refused listing row; a duplicate is not counted under ``failed/``.

    Its file is written once, under its first row, and neither the error-rate
    check nor the summary counts it as a failure; runner UIs should not either.
    """
    split, error_type = reason
    count("listed", 1, split)
    if error_type == DUPLICATE:
        count("duplicates", 1, split)
    else:
        count(f"failed/listing/{error_type}", 1)


class PlanRecords(beam.PTransform):
    """InputItem -> ((split, shard), PlannedRecord) for each of the split's copies."""

    def __init__(self, copies: dict[str, int], shards: dict[str, int]) -> None:
        super().__init__()
        self.copies = dict(copies)
        self.shards = dict(shards)

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        return items | "AssignShards" >> beam.FlatMap(_plan, self.copies, self.shards)


def _plan(item: InputItem, copies: dict[str, int], shards: dict[str, int]) -> Iterator[tuple[ShardKey, PlannedRecord]]:
    count("listed", 1, item.split)
    count("planned", copies[item.split], item.split)
    for copy in range(copies[item.split]):
        order = record_order(item.key, copy)
        yield (item.split, order % shards[item.split]), PlannedRecord(order, item.key, copy, item.path, item.label)


class WriteShards(beam.PTransform):
    """((split, shard), PlannedRecord) -> one summary dict per written shard."""

    def __init__(self, config: JobConfig, shards: dict[str, int], tf_threads: int = 0) -> None:
        super().__init__()
        self.config = config
        self.shards = dict(shards)
        self.tf_threads = tf_threads

    def expand(self, planned: beam.PCollection) -> beam.PCollection:
        return (
            planned
            | "GroupByShard" >> beam.GroupByKey()
            | "RenderAndWrite" >> beam.ParDo(_WriteShardFn(self.config, self.shards, self.tf_threads))
        )


class _WriteShardFn(beam.DoFn):
    """Holds only the config; TensorFlow is imported and traced in ``setup`` on the worker."""

    def __init__(self, config: JobConfig, shards: dict[str, int], tf_threads: int) -> None:
        self.config = config
        self.shards = shards
        self.tf_threads = tf_threads

    def setup(self) -> None:
        self.processor = ShardProcessor(self.config, self.tf_threads)
        self.processor.setup()

    def teardown(self) -> None:
        processor = getattr(self, "processor", None)
        if processor is not None:
            processor.close()

    def process(self, element: tuple[ShardKey, Iterable[PlannedRecord]]) -> Iterator[dict[str, Any]]:
        """Writes one shard and counts its outcomes; yields its summary as plain JSON (small, needs no coder)."""
        (split, shard), planned = element
        summary = self.processor.process(split, shard, self.shards[split], list(planned))
        count("written", summary.records, split)
        count("bytes", summary.bytes, split)
        count("records_failed", summary.errors, split)  # records not written, whatever the reason
        count("decoded", summary.decoded_inputs, split)
        for reason, n in {**summary.failed_inputs_by_reason, **summary.failed_records_by_reason}.items():
            count(f"failed/{reason}", n)
        yield summary.to_json()


def counters(result: Any) -> dict[str, int]:
    """This job's ``augbeam`` counters from a ``PipelineResult``, by name, summed over steps.

    Committed values where the runner has them (Dataflow does not commit a
    failed attempt's), else attempted ones.
    """
    from apache_beam.metrics.metric import MetricsFilter

    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + int(value or 0)
    return dict(sorted(totals.items()))
