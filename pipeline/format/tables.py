"""The index and error tables' parts: one Parquet file per shard, written and read a batch at a time.

The columns are the fields of ``IndexRow`` / ``ErrorRow`` in order (str as
string, int as int64, ``copy`` as int32), so the dataclass is the one place
the schema is declared. Readers stream: no caller needs a whole part, let
alone the whole table, in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from pipeline import fsutil
from pipeline.format.manifest import ErrorRow, IndexRow, TableInfo

Row = TypeVar("Row", IndexRow, ErrorRow)
BATCH_ROWS = 8192  # rows per row group written and per batch read: bounded memory, few groups per part


def arrow_schema(row: type) -> Any:
    """The parquet schema of a row dataclass: its fields in order, str as string, int as int64 unless marked."""
    import pyarrow as pa

    kinds = {"str": pa.string(), "int": pa.int64(), "int32": pa.int32()}
    return pa.schema(
        [(f.name, kinds[f.metadata.get("arrow", str(f.type).removesuffix(" | None"))]) for f in dataclasses.fields(row)]
    )


def write_table(out: str, name: str, rows: Iterable[IndexRow] | Iterable[ErrorRow], row_type: type) -> TableInfo:
    """Writes ``rows`` to ``out/name`` through a temporary name; returns its manifest entry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(row_type)
    count = 0
    digest = hashlib.sha256()
    with fsutil.atomic_file(fsutil.join(out, name)) as raw:
        handle = _Hashing(raw, digest)
        with pq.ParquetWriter(handle, schema, compression="zstd") as writer:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row.to_json())
                count += 1
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        size = handle.size
    return TableInfo(name, count, size, digest.hexdigest())


def iter_rows(path: str, row_type: type[Row]) -> Iterator[Row]:
    """The rows of one part, a batch at a time."""
    import pyarrow.parquet as pq

    with fsutil.open_read(path) as handle:
        parquet = pq.ParquetFile(handle)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                yield row_type.from_json(row)


def iter_table(root: str, tables: Iterable[TableInfo], row_type: type[Row]) -> Iterator[Row]:
    """The rows of several parts in turn (a split's or the whole table), streamed."""
    for table in tables:
        yield from iter_rows(fsutil.join(root, table.name), row_type)


class _Hashing:
    """A write-only file object that hashes and counts what passes through (no second read of the file)."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest, self.size = raw, digest, 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        self.raw.write(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False
