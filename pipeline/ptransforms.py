"""The Beam graph: two small named PTransforms.

``PlanRecords`` turns each listed input into one small element per output
record, keyed by its shard. ``WriteShards`` groups those keys per shard and
lets one worker per shard read, augment and write it. No pixels cross the
shuffle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.listing import InputItem
from pipeline.options import JobConfig
from pipeline.shard_worker import PlannedRecord, ShardProcessor, record_order

ShardKey = tuple[str, int]


class PlanRecords(beam.PTransform):
    """InputItem -> ((split, shard), PlannedRecord) for each of the split's copies."""

    def __init__(self, copies: dict[str, int], shards: dict[str, int]) -> None:
        super().__init__()
        self.copies = dict(copies)
        self.shards = dict(shards)

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        return items | "AssignShards" >> beam.FlatMap(_plan, self.copies, self.shards)


def _plan(item: InputItem, copies: dict[str, int], shards: dict[str, int]) -> Iterator[tuple[ShardKey, PlannedRecord]]:
    for copy in range(copies[item.split]):
        order = record_order(item.key, copy)
        yield (item.split, order % shards[item.split]), PlannedRecord(order, item.key, copy, item.path, item.label)


class WriteShards(beam.PTransform):
    """((split, shard), PlannedRecord) -> one summary dict per written shard."""

    def __init__(self, config: JobConfig, shards: dict[str, int]) -> None:
        super().__init__()
        self.config = config
        self.shards = dict(shards)

    def expand(self, planned: beam.PCollection) -> beam.PCollection:
        return (
            planned
            | "GroupByShard" >> beam.GroupByKey()
            | "RenderAndWrite" >> beam.ParDo(_WriteShardFn(self.config, self.shards))
        )


class _WriteShardFn(beam.DoFn):
    """Holds only the config; TensorFlow is imported and traced in ``setup`` on the worker."""

    def __init__(self, config: JobConfig, shards: dict[str, int]) -> None:
        self.config = config
        self.shards = shards
        self.records = Metrics.counter("augbeam", "records_written")
        self.failed = Metrics.counter("augbeam", "records_failed")
        self.written_bytes = Metrics.counter("augbeam", "bytes_written")

    def setup(self) -> None:
        self.processor = ShardProcessor(self.config)
        self.processor.setup()

    def process(self, element: tuple[ShardKey, Iterable[PlannedRecord]]) -> Iterator[dict[str, Any]]:
        (split, shard), planned = element
        summary = self.processor.process(split, shard, self.shards[split], list(planned))
        self.records.inc(summary["records"])
        self.failed.inc(summary["errors"])
        self.written_bytes.inc(summary["bytes"])
        yield summary
