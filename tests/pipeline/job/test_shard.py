"""The shard worker: the summary as its last write, a window of records in memory, decoding inside the render
call (the usual bytes and errors), its helper thread, a file failing in one shard only, range errors in the errors.
"""

from __future__ import annotations

import dataclasses
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
from transforms.decode import HeaderInfo
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
        real = shard_worker.header_info

        def lying(data: bytes, max_pixels: int, max_bytes: int) -> HeaderInfo | None:
            found = real(data, max_pixels, max_bytes)
            if found is not None and hashlib.sha256(data).hexdigest() == lie_about:
                return dataclasses.replace(found, height=found.height + 1)
            return found

        monkeypatch.setattr(shard_worker, "header_info", lying)
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


def _budget_inputs(root: Path) -> list[tuple[str, int]]:
    """Small real images of several sizes and formats, one over a 40 kB budget and a deflate bomb; (key, copies)."""
    import numpy as np
    from PIL import Image

    from tests.data.make_fixtures import deflated_dicom, png16_bytes

    rng = np.random.default_rng(3)
    (root / "c").mkdir(parents=True)
    keys = []
    for i in range(6):  # planned as JPEG windows, or decoded whole in the render call
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(root / "c" / f"j{i}.jpg", quality=90)
        keys.append((f"c/j{i}.jpg", 1))
    for i in range(4):  # two copies in the shard: decoded once, cached, batched by size
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8)).save(root / "c" / f"p{i}.png")
        keys.append((f"c/p{i}.png", 2))
    (root / "c" / "deep.png").write_bytes(png16_bytes(rng.integers(0, 65535, (30, 20, 3))))  # decoded, then batched
    keys.append(("c/deep.png", 1))
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), np.uint8)).save(root / "c" / "big.png")  # 120 kB decoded
    keys.append(("c/big.png", 1))
    (root / "c" / "bomb.dcm").write_bytes(deflated_dicom(np.zeros((12, 16), np.uint16), padding=1 << 30))  # 1 GiB
    keys.append(("c/bomb.dcm", 1))
    return keys


def test_a_batch_never_holds_more_decoded_bytes_than_the_budget(tmp_path, monkeypatch):
    """--max-image-bytes 40000: every render call holds at most that (decoded images and 16x16 float32 outputs),
    two calls rendering at once too; the image over it is a TooLarge row; the records equal an unbounded run's.

    Both ways of rendering run: JPEGs decoded inside their render call (on the helper thread), and images decoded
    first (the cached PNGs with two copies, the 16-bit PNG) in same-size batches."""
    import threading

    root = tmp_path / "in"
    keys = _budget_inputs(root)
    planned = [
        PlannedRecord(record_order(key, c), key, c, str(root / key), 0) for key, copies in keys for c in range(copies)
    ]
    calls: list[tuple[str, int, int]] = []  # (path, records, bytes held)
    lock, flight, peak = threading.Lock(), [0], [0]
    render_batch, call_encoded = shard_worker._ShardRun.render_batch, shard_worker._ShardRun.call_encoded

    def batch_spy(self, items):
        calls.append(("batch", len(items), sum(it.image.numpy().nbytes + 16 * 16 * 3 * 4 for it in items)))
        return render_batch(self, items)

    def encoded_spy(self, items):  # on the helper thread when threaded
        cost = sum(it.cost for it in items)
        with lock:
            flight[0] += cost
            peak[0] = max(peak[0], flight[0])
        calls.append(("encoded", len(items), cost))
        try:
            return call_encoded(self, items)
        finally:
            with lock:
                flight[0] -= cost

    def shard(name: str, budget: int) -> dict:
        out = tmp_path / name
        (out / ".augbeam-work").mkdir(parents=True)
        config = JobConfig.create(
            input=str(root), output=str(out), image_size=(16, 16), batch_size=8, copies=2, max_image_bytes=budget
        )
        processor = ShardProcessor(config, tf_threads=2)
        processor.setup()
        assert processor.decode_in_render and processor.render_thread is not None
        summary = processor.process("train", 0, sample_plan(copies=2), planned, [])
        processor.close()
        index = iter_rows(str(out / summary.info.index.name), IndexRow)
        return {
            "records": {(r.key, r.copy): r.record_sha256 for r in index},
            "errors": [e.to_json() for e in iter_rows(str(out / summary.info.errors.name), ErrorRow)],
        }

    unbounded = shard("unbounded", 2**40)
    monkeypatch.setattr(shard_worker._ShardRun, "render_batch", batch_spy)
    monkeypatch.setattr(shard_worker._ShardRun, "call_encoded", encoded_spy)
    bounded = shard("bounded", 40_000)
    assert len(bounded["records"]) == len(planned) - 2  # every input but the big one and the bomb, every copy
    errors = {e["key"]: e for e in bounded["errors"]}
    assert {key: (e["stage"], e["error_type"]) for key, e in errors.items()} == {
        "c/big.png": ("decode", "TooLarge"),
        "c/bomb.dcm": ("decode", "CorruptImage"),
    }
    assert "200x200 x 3 channels x 1 byte = 120000 bytes" in errors["c/big.png"]["message"]
    assert "over --max-image-bytes 40000" in errors["c/big.png"]["message"]
    assert "deflated DICOM data set inflates past" in errors["c/bomb.dcm"]["message"]
    assert [e["key"] for e in unbounded["errors"]] == ["c/bomb.dcm"]
    assert len(unbounded["records"]) == len(planned) - 1
    # batching by bytes changed the calls, not one record's bytes
    assert bounded["records"] == {pair: sha for pair, sha in unbounded["records"].items() if pair[0] != "c/big.png"}
    assert len(unbounded["records"]) == len(bounded["records"]) + 1
    assert all(held <= 40_000 for _, _, held in calls), calls
    assert max(n for _, n, _ in calls) >= 2  # still batched, only smaller
    assert {path for path, _, _ in calls} == {"encoded", "batch"}
    assert peak[0] <= 40_000
