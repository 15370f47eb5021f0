"""Local ``multi_processing`` workers that start with TensorFlow already imported (driver side).

The DirectRunner starts each ``multi_processing`` worker as a new Python that
imports Beam and TensorFlow before its first image; on 2 cores that was most
of a small job's time. ``WarmWorkers`` starts ``pipeline.fork_server`` before
the driver imports Beam, and runs the job on Beam's FnApiRunner (the runner
the DirectRunner picks for this batch job when Prism is not available) with
the worker command replaced by ``pipeline.worker_shim``, which gets its
worker forked from that server. Anything going wrong on the way (the server
cannot start or import, or dies) leaves a shim to start Beam's own worker
command, so the job runs as it would have. The bytes written are the same:
the workers run the same code; only their start differs.

Used only where it applies: the DirectRunner (or no ``--runner``) in
``multi_processing`` mode with more than one worker, not streaming, on
Linux. ``AUGBEAM_WARM_WORKERS=0`` turns it off.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any

from pipeline.runners import DEFAULT_RUNNER, fn_api_runner, is_direct
from pipeline.worker_shim import BEAM_WORKER_MAIN

DISABLE_ENV = "AUGBEAM_WARM_WORKERS"


def wanted(beam_args: list[str]) -> bool:
    """Whether ``beam_args`` run the DirectRunner with several local worker processes (parsed without Beam)."""
    # Linux only: macOS and Windows have no safe fork of a process that loaded TensorFlow.
    if os.environ.get(DISABLE_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runner")
    parser.add_argument("--direct_running_mode")
    parser.add_argument("--direct_num_workers", type=int, default=1)
    parser.add_argument("--streaming", action="store_true")
    try:
        known, _ = parser.parse_known_args(list(beam_args))
    except SystemExit:  # a malformed option: Beam reports it later, in one line
        return False
    workers = known.direct_num_workers if known.direct_num_workers > 0 else (os.cpu_count() or 1)
    return (
        is_direct(known.runner or DEFAULT_RUNNER)
        and known.direct_running_mode == "multi_processing"
        and workers > 1
        and not known.streaming
    )


def server_environment() -> dict[str, str]:
    """The fork server's environment: this one, with Python's own distutils where it has one.

    ``import tensorflow`` imports ``distutils``; setuptools' stand-in for it (installed in every venv, chosen
    at interpreter start) pulls in setuptools and pkg_resources, 0.2-0.3 s of the server's imports, which
    are the longest part of a small job's start. Python 3.11 still ships distutils (3.12 does not, and some
    distributions package it apart): only where its files are there.
    """
    env = dict(os.environ)
    if stdlib_has_distutils():
        env.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")
    return env


def stdlib_has_distutils() -> bool:
    """Whether this Python's standard library holds ``distutils`` (looked up on disk: an import would find
    setuptools' stand-in)."""
    import sysconfig

    folder = os.path.join(sysconfig.get_paths()["stdlib"], "distutils")
    return sys.version_info < (3, 12) and os.path.isfile(os.path.join(folder, "__init__.py"))


class WarmWorkers:
    """The fork server's process and socket, for one job; a context manager that always stops it."""

    def __init__(self) -> None:
        self.used = False  # whether a job's runner was made: then close() lets the server finish
        self.folder = tempfile.mkdtemp(prefix="augbeam-workers-")
        self.path = os.path.join(self.folder, "fork.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(64)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.fork_server", str(listener.fileno())],
                stdin=subprocess.PIPE,
                pass_fds=[listener.fileno()],
                env=server_environment(),
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        finally:
            listener.close()  # the server holds it now: if the server dies, shims are refused and fall back

    @property
    def command(self) -> str:
        """The worker command line Beam runs (through a shell) instead of its own."""
        return f"{shlex.quote(sys.executable)} -m pipeline.worker_shim {shlex.quote(self.path)}"

    def runner(self, options: Any) -> Any:
        """Beam's FnApiRunner, set up as the DirectRunner sets it up, that starts workers through the shim."""
        runner = fn_api_runner(options, _shim_runner_class(), command=self.command)
        self.used = runner is not None
        return runner

    def close(self) -> None:
        """Stops the server and removes the socket.

        After a job, the server reaps its workers (they end with their shims, which Beam has waited for) and
        exits. Before one (a user error, a bad option), it is killed at once: it may still be importing.
        """
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            if not self.used:
                self.process.kill()
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> WarmWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(beam_args: list[str]) -> WarmWorkers | None:
    """A running fork server when ``beam_args`` ask for local worker processes, else None."""
    if not wanted(beam_args):
        return None
    try:
        return WarmWorkers()
    except OSError:  # no socket or process here: Beam's own workers start as usual
        return None


def _shim_runner_class() -> type:
    """FnApiRunner whose subprocess workers run the shim (a class made on use: Beam is imported late)."""
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    beam_command = f"{sys.executable} -m {BEAM_WORKER_MAIN}".encode()

    class ShimWorkersRunner(fn_runner.FnApiRunner):
        def __init__(self, command: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._shim_command = command.encode()

        def run_via_runner_api(self, pipeline_proto: Any, options: Any) -> Any:
            for environment in pipeline_proto.components.environments.values():
                # Beam's multi_processing environment: its payload is the worker's command line
                if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == beam_command:
                    environment.payload = self._shim_command
            return super().run_via_runner_api(pipeline_proto, options)

    return ShimWorkersRunner
