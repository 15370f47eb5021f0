"""Local ``multi_processing`` workers that start with their imports done (driver side).

The default local run has one worker process per core (``runners.default_parallelism``),
and Beam starts each as a new Python that imports Beam's harness and
TensorFlow before its first image: about 4 CPU-seconds each, after the
driver has imported Beam and built the graph. ``WarmWorkers`` starts
``fork_server`` before the driver imports Beam; it imports those modules once
while the driver plans, and forks each worker from there when Beam's runner
(``runners.fn_api_runner`` with ``command``) starts ``worker_shim`` in its
place. Anything going wrong on the way (the server cannot start or import,
or dies) leaves a shim to start the usual worker, so the job runs as it would
have. The bytes written are the same: the workers run the same code; only
their start differs. Measured in docs/performance.md ("Warm workers").

Used only where it applies: the DirectRunner (or no ``--runner``), batch,
with more than one ``multi_processing`` worker (given, or the default on
more than one core), on Linux. ``AUGBEAM_WARM_WORKERS=0`` turns it off.
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

from pipeline.runtime.runners import DEFAULT_RUNNER, chooses_local_mode, is_direct
from pipeline.runtime.scratch import scratch_prefix
from pipeline.runtime.tf_threads import usable_cpus

DISABLE_ENV = "AUGBEAM_WARM_WORKERS"


def wanted(beam_args: list[str], cpus: int | None = None) -> bool:
    """Whether ``beam_args`` run the DirectRunner with several local worker processes (parsed without Beam).

    Without either of ``DIRECT_MODE_FLAGS``, ``runners.default_parallelism`` gives one worker process per
    core; this reads the same arguments the same way, before Beam is imported, so the server starts early.
    """
    # Linux only: macOS and Windows have no safe fork of a process that loaded TensorFlow.
    if os.environ.get(DISABLE_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runner")
    parser.add_argument("--direct_running_mode")
    parser.add_argument("--direct_num_workers", type=int)
    parser.add_argument("--streaming", action="store_true")
    try:
        known, _ = parser.parse_known_args(list(beam_args))
    except SystemExit:  # a malformed option: Beam reports it later, in one line
        return False
    cores = usable_cpus() if cpus is None else cpus
    if chooses_local_mode(beam_args):
        mode, workers = known.direct_running_mode, 1 if known.direct_num_workers is None else known.direct_num_workers
        workers = workers if workers > 0 else cores  # Beam: 0 means one per core
    else:
        mode, workers = "multi_processing", cores
    direct = is_direct(known.runner or DEFAULT_RUNNER) and not known.streaming
    return direct and mode == "multi_processing" and workers > 1


class WarmWorkers:
    """The server's process and socket, for one job; a context manager that always stops it."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.used = False  # whether a job's runner was made: then close() lets the server finish
        # A scratch folder (named with this pid): the next run removes it if a SIGKILL left it behind.
        self.folder = tempfile.mkdtemp(prefix=scratch_prefix())
        self.path = os.path.join(self.folder, "fork.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(64)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.runtime.fork_server", str(listener.fileno()), *modules],
                stdin=subprocess.PIPE,
                pass_fds=[listener.fileno()],
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        finally:
            listener.close()  # the server holds it now: if the server dies, shims are refused and fall back

    @property
    def command(self) -> str:
        """The worker command line Beam runs (through a shell) instead of its own."""
        return f"{shlex.quote(sys.executable)} -m pipeline.runtime.worker_shim {shlex.quote(self.path)}"

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


def start(beam_args: list[str], modules: tuple[str, ...]) -> WarmWorkers | None:
    """A running server that imports ``modules`` when ``beam_args`` ask for local worker processes, else None."""
    if not wanted(beam_args):
        return None
    try:
        return WarmWorkers(modules)
    except OSError:  # no socket or process here: Beam's own workers start as usual
        return None
