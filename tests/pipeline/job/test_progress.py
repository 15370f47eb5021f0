"""The progress display: pure formatting, the monitor on a fake progress folder and on a fake object store, and
how it ends when the run fails.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from pipeline.job import progress as pg
from pipeline.job.progress import Progress, ProgressMonitor
from tests.helpers import in_process


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Stream(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def write_progress(folder: Path, name: str, done: int, failed: int = 0, inputs: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"done": done, "records": 50, "written": done - failed, "failed_records": failed, "failed_inputs": inputs}
    (folder / f"{name}.json").write_text(json.dumps(data))


# --- pure formatting -------------------------------------------------------------------------------------------


def test_durations_rates_bytes_and_percent():
    assert [pg.format_duration(s) for s in (None, float("inf"), 0, 59.4, 61, 3600 + 62)] == [
        "?",
        "?",
        "00:00",
        "00:59",
        "01:01",
        "1:01:02",
    ]  # tqdm's format_interval, as in the bar
    assert [pg.format_rate(r) for r in (None, 0.0, 3.14, 123.6)] == ["?", "0.0", "3.1", "124"]
    assert [pg.format_bytes(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**40)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 TiB",
    ]
    # 100% only when really done; an empty job is done.
    assert [pg.percent(d, 200) for d in (0, 1, 199, 200, 201)] == [0, 0, 99, 100, 100]
    assert pg.percent(0, 0) == 100


def test_rate_uses_a_recent_window_and_eta_follows():
    assert pg.recent_rate([]) is None
    assert pg.recent_rate([(0.0, 0)]) is None
    assert pg.recent_rate([(5.0, 3), (5.0, 4)]) is None  # no time has passed
    # A slow start (worker start-up), then 10 records/s: the window sees only the steady part.
    samples = [(0.0, 0), (60.0, 0)] + [(60.0 + t, 10 * t) for t in range(1, 41)]
    assert pg.recent_rate(samples, window_s=30.0) == pytest.approx(10.0)
    assert pg.recent_rate(samples, window_s=1000.0) == pytest.approx(400 / 100)
    assert pg.recent_rate([(0.0, 5), (10.0, 5)]) == 0.0  # stalled
    assert pg.eta_seconds(10, 100, 3.0) == pytest.approx(30.0)
    assert pg.eta_seconds(10, 100, None) is None
    assert pg.eta_seconds(10, 100, 0.0) is None
    assert pg.eta_seconds(100, 100, None) == 0.0


def test_bar_line_and_final_text():
    p = Progress(done=12, total=48, failed=3, failed_inputs=1)
    # tqdm's meter: percent, bar, done/total, [elapsed<ETA at the given rate, rate, failures]
    assert pg.bar_text(p, 3.14, 3.0, width=8) == " 25%|##      | 12/48 [00:03<00:11,  3.14 rec/s, 3 failed (1 input)]"
    assert pg.bar_text(Progress(0, 5), None, 2.0, width=4) == "  0%|    | 0/5 [00:02<?, ? rec/s]"  # no rate yet
    assert pg.bar_text(Progress(4, 5), None, 2.0, width=4).endswith("<?, ? rec/s]")  # not tqdm's run average
    assert pg.bar_text(Progress(5, 5, 2, 2), 1.0, 5.0, width=4).endswith(", 2 failed (2 inputs)]")
    assert pg.bar_text(Progress(5, 5, 2, 0), 1.0, 5.0, width=4).endswith(", 2 failed]")  # range errors only
    assert pg.bar_text(Progress(199, 200), 1.0, 5.0, width=4).startswith(" 99%|###9| 199/200")  # never 100% early
    assert (
        pg.line_text(p, 3.14, 11.6, 65.0)
        == "augbeam: 12/48 records (25%), 3 failed (1 input), 3.1 records/s, ETA 00:12, 01:05 elapsed"
    )
    assert pg.final_text(Progress(48, 48, 3, 1), 8.0, ok=True) == (
        "augbeam: processed 48/48 records (100%), 3 failed (1 input), in 00:08 (6.0 records/s)"
    )
    assert pg.final_text(Progress(4, 48), 2.0, ok=False).startswith("augbeam: stopped at 4/48 records (8%), 0 failed")


def test_auto_mode_is_a_bar_on_a_terminal_only():
    assert pg.resolve_mode("auto", Stream(tty=True)) == "bar"
    assert pg.resolve_mode("auto", Stream(tty=False)) == "lines"
    assert pg.resolve_mode("auto", object()) == "lines"  # a stream without isatty
    assert pg.resolve_mode("none", Stream(tty=True)) == "none"
    with pytest.raises(ValueError, match="choose one of"):
        pg.resolve_mode("fancy", Stream())


# --- the monitor, on a fake progress folder --------------------------------------------------------------------


def test_lines_every_interval_and_a_final_line(tmp_path):
    folder, clock, out = tmp_path / "progress", FakeClock(), Stream()
    monitor = ProgressMonitor(str(folder), total=100, mode="lines", stream=out, clock=clock, line_every_s=10.0)
    monitor.tick()  # no folder yet: nothing to say before the interval
    for second in range(1, 26):
        clock.now += 1
        write_progress(folder, "train-00000", done=min(2 * second, 48))  # of 50: finished only below
        monitor.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # at 10 s and 20 s
    assert lines[0].startswith("augbeam: 20/100 records (20%), 0 failed, 2.0 records/s, ETA 00:40, 00:10 elapsed")
    assert lines[1].startswith("augbeam: 40/100 records (40%)")
    write_progress(folder, "train-00000", done=50, failed=4, inputs=2)
    write_progress(folder, "train-00001", done=50)
    clock.now += 5
    monitor.stop()
    assert out.getvalue().splitlines()[-1] == (
        "augbeam: processed 100/100 records (100%), 4 failed (2 inputs), in 00:30 (3.3 records/s)"
    )
    monitor.stop()  # idempotent: no second final line
    assert len(out.getvalue().splitlines()) == 3


def test_bar_redraws_one_line_and_a_retry_never_goes_back(tmp_path):
    folder, clock, out = tmp_path / "progress", FakeClock(), Stream(tty=True)
    monitor = ProgressMonitor(str(folder), total=60, mode="auto", stream=out, clock=clock)
    assert monitor.mode == "bar"
    write_progress(folder, "train-00000", done=30)
    clock.now += 1
    monitor.tick()
    write_progress(folder, "train-00000", done=5)  # the shard's bundle is retried from the start
    (folder / "train-00001.json.tmp-0123456789abcdef0123456789abcdef").write_text("{half")  # a write in flight
    (folder / "train-00002.json").write_text("{half")  # not JSON (a filesystem without atomic rename)
    clock.now += 1
    monitor.tick()
    assert monitor.progress.done == 30
    write_progress(folder, "train-00000", done=60)
    clock.now += 1
    monitor.stop()
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert frames[0] == " 50%|" + "#" * 12 + " " * 12 + "| 30/60 [00:01<?, ? rec/s]"  # one sample: no rate yet
    assert frames[1].startswith(" 50%|" + "#" * 12 + " " * 12 + "| 30/60 [00:02<")  # the retry did not go back
    assert frames[2].startswith("100%|" + "#" * 24 + "| 60/60 [00:03<00:00, 20.00 rec/s]")  # the run's average
    assert text.endswith("\naugbeam: processed 60/60 records (100%), 0 failed, in 00:03 (20.0 records/s)\n")


def test_monitor_thread_stops_cleanly_when_the_run_raises(tmp_path):
    out = Stream()
    monitor = ProgressMonitor(str(tmp_path / "missing"), total=10, mode="lines", stream=out, poll_s=0.01)
    with pytest.raises(RuntimeError, match="pipeline failed"):
        with monitor:
            assert monitor._thread is not None and monitor._thread.is_alive()
            threading.Event().wait(0.05)  # a few polls of a folder that does not exist
            raise RuntimeError("pipeline failed")
    assert not monitor._thread.is_alive()
    assert out.getvalue() == ""  # failed before any record: the error alone says it, no "stopped at 0/10"


def test_a_failed_run_keeps_its_final_line_when_work_was_done_and_clears_an_empty_bar(tmp_path):
    folder, clock = tmp_path / "progress", FakeClock()
    out = Stream()
    monitor = ProgressMonitor(str(folder), total=10, mode="lines", stream=out, clock=clock)
    write_progress(folder, "train-00000", done=4, failed=1, inputs=1)
    clock.now += 2
    monitor.stop(ok=False)
    assert out.getvalue() == "augbeam: stopped at 4/10 records (40%), 1 failed (1 input), in 00:02 (2.0 records/s)\n"

    bar = Stream(tty=True)
    monitor = ProgressMonitor(str(tmp_path / "none"), total=10, mode="bar", stream=bar, clock=clock)
    monitor.tick()
    monitor.stop(ok=False)
    drawn = "  0%|" + " " * pg.BAR_WIDTH + "| 0/10 [00:00<?, ? rec/s]"
    assert bar.getvalue() == "\r" + drawn + "\r" + " " * len(drawn) + "\r"  # the error starts on a clean line


def test_a_failure_in_the_pipeline_before_any_record_prints_only_the_error(small_input, tmp_path, capsys, monkeypatch):
    from pipeline.cli import main
    from pipeline.errors import UserError
    from pipeline.job import shard as shard_worker

    def no_gpu(self: object) -> None:
        raise UserError("--device gpu: no GPU on this worker")

    monkeypatch.setattr(shard_worker.ShardProcessor, "setup", no_gpu)
    args = ["run", "--input", str(small_input), "--output", str(tmp_path / "out"), "--max-error-rate", "0.5"]
    assert main(in_process([*args, "--progress", "lines"])) == 2  # the monkeypatch reaches in-process workers only
    (line,) = capsys.readouterr().err.strip().splitlines()  # no "augbeam: stopped at 0/11" before it
    assert line.startswith("augbeam: error: --device gpu: no GPU on this worker")  # Beam adds the step's name


def test_a_broken_stream_never_fails_the_run(tmp_path):
    class Closed(Stream):
        writes = 0

        def write(self, text: str) -> int:
            Closed.writes += 1
            raise OSError("stderr is closed")

    write_progress(tmp_path, "train-00000", done=3)
    before = threading.active_count()
    with ProgressMonitor(str(tmp_path), total=3, mode="bar", stream=Closed(), poll_s=0.01):
        threading.Event().wait(0.05)  # the thread's redraws fail too
    # The display tried to draw (and failed), the block exited without raising, and its thread is gone.
    assert Closed.writes > 0
    assert threading.active_count() == before


def test_mode_none_prints_nothing_and_starts_no_thread(tmp_path):
    out = Stream(tty=True)
    write_progress(tmp_path, "train-00000", done=3)
    with ProgressMonitor(str(tmp_path), total=3, mode="none", stream=out) as monitor:
        assert monitor._thread is None
    assert out.getvalue() == ""


# --- a remote progress folder of many shards, on a fake object store --------------------------------------------


class FakeStore:
    """An object store folder: listing gives each object's size and update time; reads are counted."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.updated = 0.0
        self.reads: list[str] = []
        self.on_read = lambda path: None

    def put(self, name: str, done: int, records: int = 10, failed: int = 0) -> None:
        self.updated += 1.0  # every rewrite is a new generation with a new update time
        data = {"done": done, "records": records, "written": done - failed, "failed_records": failed}
        self.objects[f"{self.folder}/{name}"] = (json.dumps(data).encode(), self.updated)

    def match(self, patterns: list[str], limits: object = None) -> list:
        from apache_beam.io.filesystem import FileMetadata, MatchResult

        assert patterns == [f"{self.folder}/*"]
        metas = [FileMetadata(path, len(data), updated) for path, (data, updated) in sorted(self.objects.items())]
        return [MatchResult(patterns[0], metas)]

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        self.on_read(path)
        return self.objects[path][0]


@pytest.fixture
def store(monkeypatch) -> FakeStore:
    fake = FakeStore("gs://bucket/out/.augbeam-work/progress")
    monkeypatch.setattr(pg.FileSystems, "match", fake.match)
    monkeypatch.setattr(pg.fsutil, "read_bytes", fake.read)
    return fake


def test_a_remote_poll_reads_only_changed_unfinished_files_and_at_most_max_reads(store):
    shards = 10_000
    for i in range(shards):
        store.put(f"train-{i:05d}.json", done=0)
    clock = FakeClock()
    monitor = ProgressMonitor(store.folder, total=10 * shards, mode="lines", stream=Stream(), clock=clock)
    assert (monitor.poll_s, monitor.max_reads) == (pg.REMOTE_POLL_S, pg.REMOTE_MAX_READS)

    def polls_reads() -> int:
        before = len(store.reads)
        monitor.poll()
        return len(store.reads) - before

    assert polls_reads() == pg.REMOTE_MAX_READS  # not 10,000 reads in one poll
    for _ in range(shards // pg.REMOTE_MAX_READS - 1):
        assert polls_reads() == pg.REMOTE_MAX_READS
    assert len(set(store.reads)) == shards  # every file read once, stalest first
    assert polls_reads() == 0  # nothing changed: nothing read

    store.put("train-00007.json", done=4)
    store.put("train-00008.json", done=10, failed=2)  # finished
    store.put("train-09999.json", done=10)  # finished
    assert polls_reads() == 3
    assert monitor.progress == Progress(done=24, total=10 * shards, failed=2)
    store.put("train-00008.json", done=3)  # a retry of a finished shard: never read again
    store.put("train-09999.json", done=10)
    store.put("train-00007.json", done=6)
    assert polls_reads() == 1 and store.reads[-1].endswith("train-00007.json")
    assert monitor.progress.done == 26

    store.objects[f"{store.folder}/train-00009.json"] = (b"{half", store.updated + 1)  # not readable yet
    assert polls_reads() == 1
    assert polls_reads() == 1  # read again, as its numbers are unknown
    store.put("train-00009.json", done=1)
    assert polls_reads() == 1 and monitor.progress.done == 27
    assert polls_reads() == 0


def test_a_remote_poll_stops_reading_at_half_the_interval(store):
    for i in range(50):
        store.put(f"train-{i:05d}.json", done=1)
    clock = FakeClock()
    monitor = ProgressMonitor(store.folder, total=500, mode="lines", stream=Stream(), clock=clock)

    def slow(path: str) -> None:
        clock.now += 1.0  # one second per read

    store.on_read = slow
    monitor.poll()
    assert len(store.reads) == 6  # reads started at 0..5 s of a 10 s interval; the rest wait for the next poll
    monitor.poll()
    assert len(set(store.reads)) == 12


def test_stop_prints_the_final_line_without_waiting_for_a_slow_poll(store, monkeypatch):
    for i in range(2000):
        store.put(f"train-{i:05d}.json", done=10)
    monkeypatch.setattr(pg, "FINAL_POLL_S", 0.3)
    out = Stream()
    monitor = ProgressMonitor(store.folder, total=20_000, mode="lines", stream=out, poll_s=0.01, max_reads=2000)
    reading = threading.Event()

    def slow(path: str) -> None:
        assert not monitor._lock.locked()  # no file I/O under the lock
        reading.set()
        threading.Event().wait(0.02)  # a full poll of 2000 files would take 40 s

    store.on_read = slow
    with monitor:
        assert reading.wait(5)
        started = time.monotonic()
    assert time.monotonic() - started < pg.STOP_JOIN_S + 1.5
    final = out.getvalue().splitlines()[-1]
    # The run succeeded, so every planned record was done, however few files were read by then.
    assert final.startswith("augbeam: processed 20000/20000 records (100%), 0 failed, in ")
    assert len(store.reads) < 1000
