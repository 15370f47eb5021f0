"""Beam's worker pool (``worker_pool_main``) on loopback, for tests of the EXTERNAL environment.

The pool and every SDK harness it starts live in one process group, watched through /proc (Linux only) and
killed afterwards. Light imports only: test modules import this at collection.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import group_members

POOL_START_TIMEOUT_S = 60.0
HAS_PROC = Path("/proc/self/stat").exists()


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class PoolWatch:
    """Samples the pool's process group while the job runs: which workers it started, and what they loaded."""

    pool_pid: int
    workers: dict[int, str] = field(default_factory=dict)
    loaded_tensorflow: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for pid in group_members(self.pool_pid):
                if pid == self.pool_pid:
                    continue
                self.workers.setdefault(pid, _read(f"/proc/{pid}/cmdline"))
                if "libtensorflow_framework" in _read(f"/proc/{pid}/maps"):
                    self.loaded_tensorflow.add(pid)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class WorkerPool:
    process: subprocess.Popen
    port: int
    stderr: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def started_pool(folder: Path, python_dir: Path, env: dict[str, str] | None = None) -> Iterator[WorkerPool]:
    """A pool run by this Python that starts each harness as ``python -c ...`` with ``python_dir``'s python.

    It runs in ``folder/pool-cwd``, as a pool on a cluster host would: a relative path reaching a worker resolves
    there. ``env`` adds to this process's environment. Afterwards no process of its group is left (asserted).
    """
    port = _free_port()
    stderr = folder / "pool.stderr"
    (folder / "pool-cwd").mkdir()
    path = os.pathsep.join([str(python_dir), os.environ.get("PATH", "")])
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            cwd=folder / "pool-cwd",
            env={**os.environ, **(env or {}), "PATH": path},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: the pool and every worker it starts
        )
    pool = WorkerPool(process, port, stderr)
    try:
        _wait_for_port(pool)
        yield pool
    finally:
        _stop_group(process)
    assert process.poll() is not None, "the worker pool is still running"
    assert group_members(process.pid) == [], "worker processes outlived the pool"


def _wait_for_port(pool: WorkerPool) -> None:
    deadline = time.monotonic() + POOL_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if pool.process.poll() is not None:
            pytest.fail(f"the worker pool exited with {pool.process.returncode}:\n{pool.stderr.read_text()[-4000:]}")
        try:
            socket.create_connection(("127.0.0.1", pool.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(
        f"the worker pool did not accept connections on localhost:{pool.port} within {POOL_START_TIMEOUT_S:.0f} s:\n"
        f"{pool.stderr.read_text()[-4000:]}"
    )


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the pool's group, SIGKILL after 10 s; waits until no live member is left."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + grace
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_members(process.pid):
            return
