"""pipeline/job/finalize.py's cross-shard checks on their own (the whole finalize runs in every job test), and its
refusal of work that is not its run's, on a real run's folder as finalize found it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline.errors import ErrorRateExceeded, OutputTaken, ReconcileError
from pipeline.format.manifest import IndexRow, record_order
from pipeline.job.finalize import check_error_rate, check_only_listed_files, finalize
from pipeline.job.output_lock import LOCK_FILE
from pipeline.job.shard import WORK_DIR, check_shard_rows
from tests.helpers import IN_PROCESS, sample_manifest

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


# --- finalize writes a manifest only over its own run's work (the run's lock and run.json's token) ---------------


@pytest.fixture(scope="module")
def before_finalize(small_input, tmp_path_factory) -> tuple[Path, Path]:
    """A real run's folder as finalize found it (copied when the Beam job had ended), and the finished folder."""
    import shutil

    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    root = tmp_path_factory.mktemp("finalize")
    out, snapshot = root / "out", root / "snapshot"
    config = JobConfig.create(
        input=str(small_input), output=str(out), image_size=(16, 16), num_shards=2, max_error_rate=0.5
    )
    keep = shutil.ignore_patterns(LOCK_FILE)  # the run's own lock: each test takes one of its own
    run_job(config, IN_PROCESS, on_result=lambda _result: shutil.copytree(out, snapshot, ignore=keep))
    return snapshot, out


def _ours(before_finalize, tmp_path: Path, token_of_lock: bool = True):
    """A copy of the folder before finalize, this test's lock on it, and (unless told) its token in run.json."""
    import shutil

    from pipeline.job.options import JobConfig
    from pipeline.job.output_lock import OutputLock
    from pipeline.job.prepare import run_file

    snapshot, finished = before_finalize
    out = tmp_path / "out"
    shutil.copytree(snapshot, out)
    lock = OutputLock.take(str(out))
    if token_of_lock:
        plan = Path(run_file(str(out)))
        plan.write_text(json.dumps({**json.loads(plan.read_text()), "token": lock.token}))
    manifest = json.loads((finished / "manifest.json").read_text())
    config = JobConfig.create(input=manifest["input"]["root"], output=str(out), image_size=(16, 16), num_shards=2)
    return out, dataclasses.replace(config, max_error_rate=0.5), lock


def test_finalize_refuses_the_plan_of_another_run(before_finalize, tmp_path):
    out, config, lock = _ours(before_finalize, tmp_path, token_of_lock=False)  # run.json: the first run's token
    with lock, pytest.raises(OutputTaken, match="the plan in .augbeam-work/run.json is another run's") as caught:
        finalize(config, lock)
    assert "\n" not in str(caught.value) and not (out / "manifest.json").exists()


def test_finalize_refuses_a_shard_summary_of_another_run(before_finalize, tmp_path):
    out, config, lock = _ours(before_finalize, tmp_path)
    summary = sorted((out / WORK_DIR / "summaries").glob("*.json"))[0]
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "run": "f" * 32}))
    with lock, pytest.raises(OutputTaken, match="was written by another run \\(run ffffffffffff, this run's is"):
        finalize(config, lock)
    assert not (out / "manifest.json").exists()


def test_finalize_refuses_once_its_lock_was_taken_over(before_finalize, tmp_path):
    out, config, lock = _ours(before_finalize, tmp_path)
    other = {"host": "elsewhere", "pid": 7, "started": "then", "token": "0" * 32}
    (out / LOCK_FILE).write_text(json.dumps(other))
    with lock, pytest.raises(OutputTaken, match="was taken over by another run \\(host elsewhere, pid 7"):
        finalize(config, lock)
    assert not (out / "manifest.json").exists()


def test_finalize_of_its_own_work_gives_the_runs_manifest_with_its_run_id(before_finalize, tmp_path):
    out, config, lock = _ours(before_finalize, tmp_path)
    run_id = json.loads((out / WORK_DIR / "run.json").read_text())["plan"]["run"]
    with lock:
        manifest = finalize(config, lock)
    assert manifest.run == run_id
    finished = before_finalize[1]
    assert (out / "manifest.json").read_bytes() == (finished / "manifest.json").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in finished.iterdir())  # lock given back
