"""The watchdog: a job whose workers never start fails in one line within the bound, and leaves nothing running.

The real case: an EXTERNAL worker pool whose ``python`` lacks Beam, so every harness it starts exits at once and
Beam's embedded job service waits for it for ever (its cancel only sets the state).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from pipeline.errors import UserError
from pipeline.runtime import watchdog
from pipeline.runtime.watchdog import BOUND_ENV, mark_started, marker_path, run_watched, start_bound, start_hint
from tests.worker_pool import HAS_PROC, started_pool

ROOT = Path(__file__).resolve().parents[3]
HINT = "the pool lacks augbeam; install it there"


def non_daemon_threads() -> set[threading.Thread]:
    """What would keep the process from exiting."""
    return {t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()}


class FakeResult:
    """A job that runs until ``finish_after_s`` (never: None), marking ``marker_dir`` after ``mark_after_s``."""

    def __init__(self, marker_dir: str, mark_after_s: float | None = None, finish_after_s: float | None = None):
        self.started = time.monotonic()
        self.marker_dir, self.mark_after_s, self.finish_after_s = marker_dir, mark_after_s, finish_after_s
        self.cancelled = False
        self.waited = False
        self.error: Exception | None = None

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def state(self) -> str:
        if self.mark_after_s is not None and self._elapsed() >= self.mark_after_s:
            mark_started(self.marker_dir)  # what a worker's DoFn.setup does
        if self.cancelled:
            return PipelineState.CANCELLED
        if self.finish_after_s is not None and self._elapsed() >= self.finish_after_s:
            return PipelineState.FAILED if self.error else PipelineState.DONE
        return PipelineState.RUNNING

    def cancel(self) -> None:
        self.cancelled = True

    def wait_until_finish(self) -> str:
        self.waited = True
        assert self.finish_after_s is not None, "waited on a job that never ends"
        while self.state == PipelineState.RUNNING:
            time.sleep(0.05)
        if self.error:
            raise self.error
        return self.state


class FakePipeline:
    def __init__(self, result: FakeResult):
        self.result = result

    def run(self) -> FakeResult:
        self.result.started = time.monotonic()
        return self.result


def test_no_worker_within_the_bound_cancels_and_fails_in_one_line(tmp_path):
    before = non_daemon_threads()
    result = FakeResult(str(tmp_path))
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        run_watched(FakePipeline(result), str(tmp_path), 0.5, HINT)
    assert time.monotonic() - started < 2.0
    message = str(caught.value)
    assert "\n" not in message and "within 0.5 s" in message and HINT in message and BOUND_ENV in message
    assert result.cancelled and not result.waited
    assert non_daemon_threads() <= before


def test_a_marker_lifts_the_bound(tmp_path):
    """A job that starts in time runs on past the bound until its end."""
    result = FakeResult(str(tmp_path), mark_after_s=0.1, finish_after_s=1.0)
    assert run_watched(FakePipeline(result), str(tmp_path), 0.4, HINT) is result
    assert result.waited and not result.cancelled
    assert Path(marker_path(str(tmp_path))).is_file()


def test_an_earlier_runs_marker_does_not_disarm_the_watch(tmp_path):
    mark_started(str(tmp_path))
    assert Path(marker_path(str(tmp_path))).is_file()
    with pytest.raises(UserError):
        run_watched(FakePipeline(FakeResult(str(tmp_path))), str(tmp_path), 0.3, HINT)


def test_the_pipelines_errors_propagate_unchanged(tmp_path):
    """A job that fails before any worker marks (the harness lacks augbeam: ModuleNotFoundError) is Beam's error."""
    result = FakeResult(str(tmp_path), finish_after_s=0.2)
    result.error = RuntimeError("ModuleNotFoundError: No module named 'pipeline'")
    with pytest.raises(RuntimeError) as caught:
        run_watched(FakePipeline(result), str(tmp_path), 30.0, HINT)
    assert caught.value is result.error and not result.cancelled

    class Refused(FakePipeline):
        def run(self) -> FakeResult:
            raise ValueError("bad graph")

    with pytest.raises(ValueError, match="bad graph"):
        run_watched(Refused(result), str(tmp_path), 30.0, HINT)


def test_no_bound_no_watch(tmp_path):
    result = FakeResult(str(tmp_path), finish_after_s=0.0)
    assert run_watched(FakePipeline(result), str(tmp_path / "never-made"), None, HINT) is result
    assert result.waited and not (tmp_path / "never-made").exists()


def test_mark_started_writes_once_per_process(tmp_path):
    folder = str(tmp_path / "work")
    (tmp_path / "work").mkdir()
    mark_started(folder)
    marker = Path(marker_path(folder))
    assert marker.is_file() and marker.read_bytes() == b""
    marker.unlink()
    mark_started(folder)  # the process already marked: no second write (nor read) for each DoFn.setup
    assert not marker.exists()
    assert list((tmp_path / "work").iterdir()) == []  # no temporary file left either


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], None),  # DirectRunner: workers are this Python
        (["--runner=PrismRunner"], None),
        (["--runner=FlinkRunner"], None),  # LOOPBACK without a cluster
        (["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"], None),
        (["--runner=PortableRunner", "--environment_type=EXTERNAL", "--environment_config=h:5"], 300.0),
        (["--runner=FlinkRunner", "--flink_master=f:8081", "--environment_type=EXTERNAL"], 300.0),
        (["--runner=FlinkRunner", "--flink_master=f:8081", "--environment_config=registry/augbeam:1"], 3600.0),
        (["--runner=DataflowRunner", "--project=p", "--region=r"], 3600.0),
    ],
)
def test_default_bound(monkeypatch, args, expected):
    monkeypatch.delenv(BOUND_ENV, raising=False)
    assert start_bound(PipelineOptions(args)) == expected


def test_the_bound_can_be_overridden(monkeypatch):
    options = PipelineOptions(["--runner=DataflowRunner"])
    monkeypatch.setenv(BOUND_ENV, "90")
    assert start_bound(options) == 90.0
    assert start_bound(PipelineOptions([])) == 90.0  # even on a local runner, when asked
    monkeypatch.setenv(BOUND_ENV, "0")
    assert start_bound(options) is None
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(BOUND_ENV, bad)
        with pytest.raises(UserError, match=BOUND_ENV):
            start_bound(options)


def test_hints_name_the_runners_fix():
    external = start_hint(PipelineOptions(["--environment_type=EXTERNAL", "--environment_config=localhost:5"]))
    assert "worker pool at localhost:5" in external and "pip install -e" in external
    assert "--sdk_container_image" in start_hint(PipelineOptions(["--runner=DataflowRunner"]))
    assert "--environment_type=DOCKER" in start_hint(PipelineOptions(["--runner=FlinkRunner"]))


# --- the real thing: Beam's embedded job service and a worker pool on loopback ---


def marking_job(port: int, marker_dir: str) -> tuple[Any, PipelineOptions]:
    """A tiny job whose one step marks, as the job's first stage will."""
    import apache_beam as beam

    def mark(x: int, folder: str) -> int:  # a local function: pickled by value, the workers need only the watchdog
        mark_started(folder)
        return x

    options = PipelineOptions(
        [
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}",
        ]
    )
    p = beam.Pipeline(options=options)
    _ = p | beam.Create([1, 2, 3]) | beam.Map(mark, marker_dir)
    return p, options


@pytest.mark.skipif(not HAS_PROC, reason="watches worker processes in /proc")
def test_a_pool_whose_python_lacks_beam_fails_in_one_line_and_leaves_nothing(tmp_path):
    # `python` on the pool's PATH is a Python without site-packages: no Beam, no augbeam.
    bare = tmp_path / "bare-python"
    bare.mkdir()
    (bare / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    (bare / "python").chmod(0o755)
    before = non_daemon_threads()
    with started_pool(tmp_path, bare) as pool:  # asserts on exit that no pool or harness process is left
        p, options = marking_job(pool.port, str(tmp_path / "marks"))
        started = time.monotonic()
        with pytest.raises(UserError) as caught:
            run_watched(p, str(tmp_path / "marks"), 8.0, start_hint(options))
        took = time.monotonic() - started
        log = pool.stderr.read_text()
    message = str(caught.value)
    assert "\n" not in message and f"worker pool at localhost:{pool.port}" in message, message
    assert "No module named 'apache_beam'" in log, log[-2000:]  # the harness started, and exited at once
    assert 8.0 <= took < 8.0 + watchdog.EMBEDDED_STOP_S
    assert non_daemon_threads() <= before, "Beam's job thread outlived the cancel: the process could not exit"
    assert not (tmp_path / "marks" / watchdog.MARKER).exists()


@pytest.mark.skipif(not HAS_PROC, reason="watches worker processes in /proc")
def test_a_healthy_pool_marks_and_the_job_runs_to_its_end(tmp_path):
    # The workers import this checkout's pipeline.runtime.watchdog, as the driver does.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with started_pool(tmp_path, Path(sys.executable).parent, env) as pool:
        p, options = marking_job(pool.port, str(tmp_path / "marks"))
        result = run_watched(p, str(tmp_path / "marks"), 60.0, start_hint(options))
    assert result.state == PipelineState.DONE
    assert (tmp_path / "marks" / watchdog.MARKER).is_file()
