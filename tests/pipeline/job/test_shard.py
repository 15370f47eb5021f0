"""The shard worker: the summary as its last write, a window of records in memory, decoding inside the render
call (the usual bytes and errors), its helper thread, a file failing in one shard only, range errors in the errors.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ReconcileError
from pipeline.format.manifest import ErrorRow, IndexRow, record_order
from pipeline.format.tables import iter_rows
from pipeline.job import shard as shard_worker
from pipeline.job.options import JobConfig
from pipeline.job.shard import PlannedRecord, ShardProcessor
from tests.helpers import DATA, PHOTOS, read_errors, run, sample_plan
from tests.helpers import Overflow as _Overflow
from transforms.ops.base import _REGISTRY, register


def test_the_summary_is_the_shard_workers_last_write(tmp_path, monkeypatch):
    """Finalize and --resume trust the summary, then delete the work folder: a write after it could recreate it."""
    from pipeline import fsutil
    from pipeline.job import shard as shard_worker
    from pipeline.job.options import JobConfig

    image = str(DATA / "gray.png")
    config = JobConfig.create(
        input=str(tmp_path), output=str(tmp_path / "out"), image_size=(8, 8), config="light", dali_index=True
    )
    (tmp_path / "out" / shard_worker.WORK_DIR).mkdir(parents=True)
    planned = [shard_worker.PlannedRecord(record_order("gray.png", c), "gray.png", c, image, 0) for c in (0, 1)]
    writes: list[str] = []
    real = fsutil.write_atomic
    monkeypatch.setattr(fsutil, "write_atomic", lambda p, d: (writes.append(p), real(p, d)))
    processor = shard_worker.ShardProcessor(config)
    processor.setup()
    summary = processor.process("train", 0, sample_plan(copies=2), planned, [])
    assert summary.info.records == 2
    progress_file = str(Path(shard_worker.progress_dir(config.output)) / "train-00000.json")
    path = shard_worker.summary_path(config.output, "train", 0, 1)
    assert writes[-1] == path and writes.count(path) == 1
    assert progress_file in writes  # its final numbers, written before the summary
    assert json.loads(Path(progress_file).read_text())["done"] == 2


def test_a_worker_holds_a_window_of_records_not_the_shard(tmp_path):
    """Records are written as soon as those before them are done: memory does not grow with the shard."""
    from pipeline.format.manifest import record_order
    from pipeline.job.options import JobConfig
    from pipeline.job.shard import PlannedRecord, ShardProcessor

    files = sorted(p for p in PHOTOS.rglob("*.png"))
    config = JobConfig.create(
        input=str(PHOTOS), output=str(tmp_path), image_size=(16, 16), batch_size=2, config="light"
    )
    (tmp_path / ".augbeam-work").mkdir()
    planned = [
        PlannedRecord(record_order(str(f.relative_to(PHOTOS)), c), str(f.relative_to(PHOTOS)), c, str(f), 0)
        for f in files
        for c in range(6)
    ]
    processor = ShardProcessor(config)
    processor.setup()
    summary = processor.process("train", 0, sample_plan(copies=6), planned, [])
    assert summary.info.records == len(planned) > 60
    assert processor.peak_in_flight <= 4 * 2 + 1  # the window (4 x batch size), whatever the shard's length


def _shard(
    tmp_path: Path, root: Path, decode_in_render: bool, lie_about: str | None, monkeypatch, threaded: bool = False
) -> dict:
    """Writes one shard of every file under ``root`` (one copy each); returns its bytes, rows and summary."""
    out = tmp_path / ("fused" if decode_in_render else "usual")
    (out / ".augbeam-work").mkdir(parents=True)
    config = JobConfig.create(input=str(root), output=str(out), image_size=(24, 24), batch_size=4, config="standard")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    planned = [
        PlannedRecord(record_order(str(f.relative_to(root)), 0), str(f.relative_to(root)), 0, str(f), 0) for f in files
    ]
    if lie_about is not None:  # a header whose size is not the decoded size: the call fails, the usual path runs
        real = shard_worker.header_shape

        def lying(data: bytes, max_pixels: int) -> tuple[int, int, int] | None:
            found = real(data, max_pixels)
            if found is not None and hashlib.sha256(data).hexdigest() == lie_about:
                return found[0] + 1, found[1], found[2]
            return found

        monkeypatch.setattr(shard_worker, "header_shape", lying)
    processor = ShardProcessor(config, tf_threads=2 if threaded else 1)
    processor.setup()
    assert (processor.render_thread is not None) == threaded  # two TensorFlow threads: calls on a helper thread
    processor.decode_in_render = decode_in_render
    calls = []
    if decode_in_render:  # every file reaches the in-render path: planned as a JPEG window, or plan_encoded
        original = shard_worker._ShardRun.plan_encoded
        monkeypatch.setattr(shard_worker._ShardRun, "plan_encoded", lambda *a: calls.append(1) or original(*a))
        window = shard_worker._ShardRun.start_window

        def counted(*a: Any) -> Any:
            read = window(*a)
            if read is None:
                calls.append(1)
            return read

        monkeypatch.setattr(shard_worker._ShardRun, "start_window", counted)
    summary = processor.process("train", 0, sample_plan(), planned, [])
    written = json.loads(Path(shard_worker.summary_path(str(out), "train", 0, 1)).read_text())
    assert written == summary.to_json()
    return {
        "calls": len(calls),
        "bytes": (out / summary.info.file).read_bytes(),
        "errors": [e.to_json() for e in iter_rows(str(out / summary.info.errors.name), ErrorRow)],
        "index": [r.to_json() for r in iter_rows(str(out / summary.info.index.name), IndexRow)],
        "summary": summary.to_json(),
    }


@pytest.mark.parametrize(("lie", "threaded"), [(False, False), (True, False), (False, True), (True, True)])
def test_a_shard_is_the_same_with_and_without_decoding_in_render(tmp_path, monkeypatch, lie, threaded):
    root = tmp_path / "in"
    shutil.copytree(PHOTOS / "train", root)
    for name in ("truncated_half.jpg", "not_an_image.jpg", "empty.jpg", "rgb16.png", "exif_rotate6.jpg", "rgba.png"):
        shutil.copy(DATA / name, root / "everyday" / name)
    liar = hashlib.sha256((root / "everyday" / "rgba.png").read_bytes()).hexdigest() if lie else None
    usual = _shard(tmp_path, root, False, None, monkeypatch)
    fused = _shard(tmp_path, root, True, liar, monkeypatch, threaded)
    assert fused["calls"] == len(list(root.rglob("*.*"))) and usual["calls"] == 0
    assert fused["bytes"] == usual["bytes"]
    assert fused["errors"] == usual["errors"]
    assert {e["key"].split("/")[-1] for e in usual["errors"]} == {"truncated_half.jpg", "not_an_image.jpg", "empty.jpg"}
    assert fused["index"] == usual["index"]
    assert fused["summary"] == usual["summary"]


@pytest.mark.parametrize(("decode_in_render", "crop_p"), [(True, 1.0), (False, 1.0), (True, 0.5), (False, 0.5)])
def test_a_jpeg_record_is_the_same_whatever_copies_share_its_shard(tmp_path, decode_in_render, crop_p):
    """Each copy decodes its own crop window: six copies in one shard, or one alone, give the same records.

    With the crop applied to some copies only (p 0.5), a copy whose crop ran is still planned on its own even
    when another copy's whole decoded image is at hand.
    """
    root = tmp_path / "in" / "c"
    root.mkdir(parents=True)
    shutil.copy(PHOTOS / "train" / "everyday" / "rocket.jpg", root / "rocket.jpg")
    shutil.copy(DATA / "exif_rotate6.jpg", root / "exif.jpg")
    ops = tmp_path / "ops.yaml"
    ops.write_text(f"ops:\n  - {{op: random_resized_crop, p: {crop_p}}}\n  - {{op: rotation, p: 0.5}}\n")

    def records(name: str, copies: list[int]) -> dict[tuple[str, int], tuple[str, str]]:
        out = tmp_path / name
        (out / ".augbeam-work").mkdir(parents=True)
        config = JobConfig.create(
            config=str(ops), input=str(root.parent), output=str(out), image_size=(24, 24), batch_size=4, copies=6
        )
        planned = [
            PlannedRecord(record_order(f"c/{f.name}", c), f"c/{f.name}", c, str(f), 0)
            for f in sorted(root.iterdir())
            for c in copies
        ]
        processor = ShardProcessor(config, tf_threads=1)
        processor.setup()
        processor.decode_in_render = decode_in_render
        summary = processor.process("train", 0, sample_plan(copies=6), planned, [])
        rows = iter_rows(str(out / summary.info.index.name), IndexRow)
        return {(r.key, r.copy): (r.record_sha256, r.params) for r in rows}

    together = records("together", list(range(6)))
    planned = {pair for pair, (_, params) in together.items() if '"decode_ratio"' in params}
    assert len(together) == 12
    assert len(planned) == 12 if crop_p == 1.0 else 0 < len(planned) < 12
    for copy in range(6):
        alone = records(f"alone{copy}", [copy])
        assert len(alone) == 2
        for pair, record in alone.items():
            assert record == together[pair], pair


def test_a_window_that_cannot_be_decoded_fails_only_its_record(tmp_path, monkeypatch):
    """Another copy's window of the same file may decode: the row names the copy (stage window), not the input."""
    from transforms.decode import DecodeError, Decoder, header_shape
    from transforms.window import add_plan

    root = tmp_path / "in" / "c"
    root.mkdir(parents=True)
    shutil.copy(PHOTOS / "train" / "everyday" / "rocket.jpg", root / "rocket.jpg")
    out = tmp_path / "out"
    (out / ".augbeam-work").mkdir(parents=True)
    config = JobConfig.create(input=str(root.parent), output=str(out), image_size=(24, 24), copies=2)
    real = Decoder.decode_for

    def failing(self: Decoder, data: bytes, sampled: list) -> Any:
        if sampled[0]["params"]["decode_window"] == bad:
            raise DecodeError("CorruptImage", "synthetic")
        return real(self, data, sampled)

    monkeypatch.setattr(Decoder, "decode_for", failing)
    processor = ShardProcessor(config, tf_threads=1)
    processor.setup()
    processor.decode_in_render = False
    path = str(root / "rocket.jpg")
    planned = [PlannedRecord(record_order("c/rocket.jpg", c), "c/rocket.jpg", c, path, 0) for c in (0, 1)]
    height, width, orientation = header_shape((root / "rocket.jpg").read_bytes())
    ops = config.train_ops()
    sampled = processor._augmenters["train"].sample("c/rocket.jpg", 1, (height, width, 3))
    bad = add_plan(ops, sampled, (height, width), orientation)[0]["params"]["decode_window"]
    summary = processor.process("train", 0, sample_plan(copies=2), planned, [])
    errors = [e.to_json() for e in iter_rows(str(out / summary.info.errors.name), ErrorRow)]
    assert summary.info.records == 1
    assert [(e["copy"], e["stage"], e["error_type"]) for e in errors] == [(1, "window", "CorruptImage")]


def test_close_stops_the_helper_thread(tmp_path):
    import threading

    config = JobConfig.create(input=str(PHOTOS), output=str(tmp_path), image_size=(8, 8))
    processor = ShardProcessor(config, tf_threads=2)
    processor.setup()
    future = processor.render_thread.submit(threading.current_thread)
    helper = future.result()
    assert helper.name.startswith("augbeam-render") and helper.is_alive()
    processor.close()
    helper.join(timeout=5)
    assert processor.render_thread is None and not helper.is_alive()
    processor.close()  # twice is harmless (a DoFn's teardown may follow a failed setup)


def test_a_file_failing_in_one_shard_only_fails_the_run_in_one_line(tmp_path, monkeypatch):
    """Copies of a key in two shards: the first read works, the second finds the file gone.

    No shard sees another's rows, so finalize compares counts and key hashes of the failed copies across
    shards: a file that changed between two shards' reads cannot be accounted for, and the run says so.
    """
    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    shutil.copy(DATA / "rocket_small.jpg", src / "a.jpg")
    shutil.copy(DATA / "gray.png", src / "b.png")
    shards = {record_order("cls/a.jpg", c) % 3 for c in range(3)}
    assert len(shards) >= 2, "the test needs a.jpg's copies in more than one shard"
    original, reads = shard_worker.fsutil.read_bytes, []

    def read_once(path):
        if path.endswith("a.jpg"):
            reads.append(path)
            if len(reads) > 1:
                (src / "a.jpg").unlink(missing_ok=True)
        return original(path)

    monkeypatch.setattr(shard_worker.fsutil, "read_bytes", read_once)
    with pytest.raises(ReconcileError, match="changed or vanished while the job ran"):
        run(tmp_path / "src", tmp_path / "out", copies=3, num_shards=3)
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.fixture
def overflow_registered():
    """The broken op by name, for one test only (other tests see the registry as shipped)."""
    register(_Overflow)
    yield
    _REGISTRY.pop(_Overflow.name)


def test_range_guard_in_the_job_lands_in_errors(tmp_path, overflow_registered):
    config = tmp_path / "bad.yaml"
    config.write_text("ops: [{op: test_overflow}]\n")
    out = tmp_path / "o"
    manifest = run(PHOTOS, out, config=str(config), copies=4, num_shards=2)
    counts = manifest.splits["train"].counts
    errors = [r for r in read_errors(out) if r["stage"] == "range"]
    assert counts.failed_records == len(errors) > 0 and counts.written > 0
    assert counts.written + counts.failed_records == counts.decoded * 4
    assert all(r["error_type"] == "RangeError" and "outside [0, 255]" in r["message"] for r in errors)
