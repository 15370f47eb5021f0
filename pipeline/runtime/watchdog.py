"""A job whose workers never start fails with one line; it does not hang.

With ``--environment_type=EXTERNAL``, Beam's worker pool starts each SDK harness as ``python -c ...`` with the
``python`` first on the pool's PATH. When that Python lacks Apache Beam (say the pool was started as
``/venv/bin/python -m apache_beam.runners.worker.worker_pool_main`` with another Python on PATH), the harness
exits at once and nothing tells the job (Beam 2.77): the pool neither restarts nor reports it, the job service
logs nothing, the job stays RUNNING for ever, and ``cancel()`` on the embedded job service (``--job_endpoint=embed``)
only changes the state: its run thread, not a daemon, keeps waiting for the worker's data, so the process
cannot even exit. A harness that has Beam but not augbeam needs no watchdog: it fails the job at once
(ModuleNotFoundError when it unpickles a DoFn).

Workers call ``mark_started`` from the setup of a DoFn in the job's first stage; ``run_watched`` submits the job
and, if no marker appears within a bound (``start_bound``), cancels it and raises a one-line ``UserError``.
Once a marker is seen it waits for the end with no limit: jobs may run for days.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserError
from pipeline.runtime.runners import (
    DEFAULT_RUNNER,
    PROJECT_ROOT,
    container_flag,
    environment_type,
    is_dataflow,
    is_local,
)

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

MARKER = "worker-started"
BOUND_ENV = "AUGBEAM_WORKER_START_TIMEOUT"
# A running pool starts a harness in about a second, and the harness imports TensorFlow in 8-15 s when cold on
# 2 busy cores: 5 minutes is 20 times that, with room for a cluster's scheduling, and still an error a user sees.
SELF_STARTED_BOUND_S = 300.0
# Dataflow provisions machines in minutes, then an image pull and, with --setup_file, a pip install of the
# project and TensorFlow: an hour is far past a slow but healthy start.
REMOTE_BOUND_S = 3600.0
EMBEDDED_STOP_S = 15.0  # how long a cancelled embedded job gets to end its run thread
_JOB_LOGGER = "apache_beam.runners.portability.local_job_service"

_marked: set[str] = set()
_mark_lock = threading.Lock()
_log = logging.getLogger(__name__)


def marker_path(marker_dir: str) -> str:
    from pipeline import fsutil  # imports Beam's filesystems: not at this module's import

    return fsutil.join(marker_dir, MARKER)


def mark_started(marker_dir: str) -> None:
    """Says a worker runs augbeam: one small file in ``marker_dir``, written once per process.

    Called from DoFn.setup, so only a worker that could import the project gets here. A worker that finds the
    marker writes nothing (many workers rewriting one gs:// object would hit its write-rate limit); a write
    that races another worker's is fine once the marker exists.
    """
    if marker_dir in _marked:
        return
    from pipeline import fsutil

    with _mark_lock:
        if marker_dir in _marked:
            return
        path = marker_path(marker_dir)
        try:
            if not fsutil.exists(path):
                if fsutil.is_local(path):
                    fsutil.write_atomic(path, b"")
                else:  # one object write is atomic; fsutil.commit's delete and rename would race other workers
                    with fsutil.open_write(path) as handle:
                        handle.write(b"")
        except Exception as exc:  # the marker only feeds the watchdog: the job's own writes report a bad output
            _log.warning("augbeam: could not write %s (%s)", path, exc)
        _marked.add(marker_dir)


def start_bound(options: PipelineOptions) -> float | None:
    """Seconds ``run_watched`` gives the first worker, or None for no limit.

    - Local runners and LOOPBACK: None. Their workers are this Python, which has just imported augbeam; a
      broken one fails the job rather than hang, and the FnApiRunner's ``run()`` returns only at the end.
    - EXTERNAL: ``SELF_STARTED_BOUND_S`` (5 min); the pool is already running.
    - Any other environment (DOCKER, PROCESS, Dataflow): ``REMOTE_BOUND_S`` (1 h): machines, images and
      installs come first.

    ``AUGBEAM_WORKER_START_TIMEOUT`` (seconds, 0 for no limit) overrides it, for a cluster slower than that.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    raw = os.environ.get(BOUND_ENV, "").strip()
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:  # also refuses nan
            raise UserError(f"{BOUND_ENV}={raw!r}: give the seconds to wait for a first worker, or 0 for no limit")
        return seconds or None
    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    environment = environment_type(options)
    if is_local(runner) or "LOOPBACK" in environment:
        return None
    return SELF_STARTED_BOUND_S if "EXTERNAL" in environment else REMOTE_BOUND_S


def start_hint(options: PipelineOptions) -> str:
    """The likely cause and its fix, for the runner and environment in ``options``."""
    from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    if is_dataflow(runner):
        return (
            "see the job's worker logs in the Dataflow console (image pull, pip install of the --setup_file sdist); "
            "a container built from the repository's Dockerfile (--sdk_container_image=IMAGE) skips the install"
        )
    if "EXTERNAL" in environment_type(options):
        pool = options.view_as(PortableOptions).environment_config or "--environment_config"
        return (
            f"the worker pool at {pool} starts each worker with the `python` first on its PATH, which must import "
            f"apache_beam and augbeam: run `pip install -e {PROJECT_ROOT}` in that Python, and start the pool "
            "with its bin folder first on PATH (an activated virtualenv)"
        )
    return (
        f"see the {runner} workers' logs (image pull, pip install of --setup_file); a container built from the "
        f"repository's Dockerfile ({container_flag(runner)}) skips the install"
    )


def run_watched(pipeline: Any, marker_dir: str, bound_s: float | None, hint: str) -> Any:
    """Runs ``pipeline`` to its end and returns Beam's PipelineResult; fails if no worker starts in time.

    The clock starts when ``pipeline.run()`` returns (the job is submitted): staging and a job server's start
    do not count. Until a marker from ``mark_started`` appears, the job's state and the marker are polled; past
    ``bound_s`` the job is cancelled, an embedded job service's run thread is ended, and a one-line UserError
    names ``hint``. A job that ends before any marker (failed, or one with no marking DoFn) is waited on as
    usual. Exceptions from Beam propagate unchanged. ``bound_s`` None: no watch.
    """
    from apache_beam.runners.runner import PipelineState

    from pipeline import fsutil

    if bound_s is None:
        result = pipeline.run()
        result.wait_until_finish()
        return result
    marker = marker_path(marker_dir)
    if fsutil.exists(marker):  # an earlier run's marker would disarm the watch
        fsutil.delete(marker)
    _marked.discard(marker_dir)  # in-process workers (LOOPBACK, a DirectRunner) write it again
    fsutil.make_dirs(marker_dir)
    result = pipeline.run()
    deadline = time.monotonic() + bound_s
    poll_s = min(10.0, max(0.2, bound_s / 30))  # a few calls a minute to a remote runner's API at most
    while not fsutil.exists(marker) and not _ended(result, PipelineState):
        left = deadline - time.monotonic()
        if left <= 0:
            _abandon(result)
            raise UserError(
                f"no worker ran augbeam within {bound_s:g} s, so the job was cancelled: {hint} "
                f"(if the workers only start slowly, set {BOUND_ENV} to more seconds)"
            )
        time.sleep(min(poll_s, left))
    result.wait_until_finish()
    return result


def _ended(result: Any, states: Any) -> bool:
    """Whether the job is in a terminal state; a failed state query reads as not yet."""
    try:
        return bool(states.is_terminal(result.state))
    except Exception:  # a remote runner's API hiccup must not end a healthy job's watch
        _log.debug("could not read the job's state", exc_info=True)
        return False


def _abandon(result: Any) -> None:
    """Cancels the job, then ends what an embedded job service keeps running."""
    try:
        result.cancel()
    except Exception:  # the job may have ended meanwhile, or the runner cannot cancel
        _log.debug("cancel failed", exc_info=True)
    _stop_embedded_job(result)


def _stop_embedded_job(result: Any, timeout_s: float = EMBEDDED_STOP_S) -> None:
    """Ends the run thread of a job on Beam's embedded job service; nothing for other runners.

    That service's cancel only sets the state (local_job_service.py: "TODO(robertwb): Actually cancel"): its
    FnApiRunner keeps waiting for the worker's first response, in a thread that is not a daemon. Aborting
    the workers' control futures and closing their data channels makes those waits raise within a second;
    Beam's own cleanup then stops its gRPC servers. Its log of that expected error is dropped.
    """
    jobs = getattr(getattr(result, "_job_service", None), "_jobs", None)
    job = jobs.get(getattr(result, "_job_id", None)) if isinstance(jobs, dict) else None
    thread = getattr(job, "_run_thread", None)
    if not isinstance(thread, threading.Thread) or not thread.is_alive():
        return
    error = RuntimeError("cancelled: no worker started")
    deadline = time.monotonic() + timeout_s
    with _silenced(_JOB_LOGGER):
        while thread.is_alive() and time.monotonic() < deadline:
            for manager in _worker_managers(thread):  # again each time: a handler may be created meanwhile
                for handler in list(getattr(manager, "_workers_by_id", {}).values()):
                    with contextlib.suppress(AttributeError):
                        handler.control_conn.abort(error)
                    with contextlib.suppress(AttributeError):
                        handler.data_conn._closed = True  # its input_elements wait raises "Channel closed"
            thread.join(0.5)
    if thread.is_alive():
        _log.warning("Beam's embedded job thread did not end within %.0f s of its cancel", timeout_s)


def _worker_managers(thread: threading.Thread) -> list[Any]:
    """The FnApiRunner's WorkerHandlerManager(s) on the thread's stack (local variables of run_stages)."""
    from apache_beam.runners.portability.fn_api_runner.worker_handlers import WorkerHandlerManager

    frame = sys._current_frames().get(thread.ident or -1)
    found: dict[int, Any] = {}
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, WorkerHandlerManager):
                found[id(value)] = value
        frame = frame.f_back
    return list(found.values())


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _silenced(name: str) -> Iterator[None]:
    """Drops a logger's records for the block: the expected traceback of a job we cancelled is noise."""
    logger, drop = logging.getLogger(name), _DropAll()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
