"""pipeline/job/finalize.py's cross-shard checks on their own (the whole finalize runs in every job test)."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.errors import ErrorRateExceeded, ReconcileError
from pipeline.format.manifest import IndexRow, record_order
from pipeline.job.finalize import check_error_rate, check_only_listed_files
from pipeline.job.shard import check_shard_rows
from tests.helpers import sample_manifest

TEMP = ".tmp-" + "0" * 32


def _row(key: str, copy: int, num_shards: int = 1) -> IndexRow:
    return IndexRow(key, copy, "train", f"train-00000-of-{num_shards:05d}.tfrecord", 0, 0, "[]", "", "")


def _in_shard(shard: int, num_shards: int, start: int = 0) -> str:
    """A key whose copy 0 the hash sends to ``shard``."""
    return next(f"k{i}" for i in range(start, 10_000) if record_order(f"k{i}", 0) % num_shards == shard)


def test_a_pair_written_twice_or_in_the_wrong_shard_fails_the_run():
    key = _in_shard(0, 2)
    check_shard_rows("train", 0, 2, [_row(key, 0, 2)])  # where its hash names: fine
    with pytest.raises(ReconcileError, match=r"copy 0\) written twice"):
        check_shard_rows("train", 0, 2, [_row(key, 0, 2), _row(key, 0, 2)])
    other = _in_shard(1, 2)
    with pytest.raises(ReconcileError, match="is in the wrong shard"):
        check_shard_rows("train", 0, 2, [_row(other, 0, 2)])


def test_only_listed_files_may_be_in_the_output_and_dead_temp_files_go(tmp_path):
    manifest = sample_manifest({})
    for name in manifest.expected_files():
        (tmp_path / name).write_bytes(b"")
    dead = tmp_path / f"train-00000-of-00001.tfrecord{TEMP}"
    dead.write_bytes(b"a bundle that died while writing")
    check_only_listed_files(str(tmp_path), manifest)
    assert not dead.exists()
    (tmp_path / "notes.txt").write_text("written by something else")
    with pytest.raises(ReconcileError, match="'notes.txt' appeared in the output folder"):
        check_only_listed_files(str(tmp_path), manifest)


def test_the_error_rate_counts_inputs_and_records_and_not_duplicates():
    split = next(iter(sample_manifest({}).splits.values()))
    counts = dataclasses.replace(split.counts, listed=10, failed_inputs=3, decoded=7, copies=1, expected_records=7)
    reasons = {"decode/CorruptImage": 1, "listing/DuplicateInput": 2}
    info = dataclasses.replace(split, counts=counts, error_rows_by_reason=reasons)
    check_error_rate({"train": info}, 0.1, "out")  # 1 real failure in 10 inputs: at the line, not over
    with pytest.raises(ErrorRateExceeded) as caught:
        check_error_rate({"train": info}, 0.05, "out")
    message = str(caught.value)
    assert "1 of 10 inputs (10.0%)" in message and "1 decode/CorruptImage" in message
    assert "DuplicateInput" not in message and "--max-error-rate" in message and "\n" not in message
