"""One process that imports a worker's modules once, then forks the DirectRunner's local workers from it.

Why: Beam starts each ``multi_processing`` worker as a fresh Python, and each
imports Beam's harness and TensorFlow (about 3.5-4.5 CPU-seconds) before its
first image, after the driver has imported Beam and built the graph; on 2
cores that start-up is most of a 100-photo job (docs/performance.md). This
server is started by the driver first thing (``warm_workers``), imports those
modules while the driver is still planning, and forks one worker per request
from ``worker_shim``: the children share the imported pages and start in
milliseconds.

Fork safety: nothing here runs a TensorFlow op or opens a gRPC channel
before forking (TensorFlow's runtime and thread pools start in the child, on
its first op, sized by ``tf_threads`` as usual); the server runs no Python
threads of its own. A child is a worker exactly as Beam would start it: same
environment (the shim's), folder, stdin, stdout and stderr, and the same
harness (``sdk_worker.run_harness``). It exits when its shim goes (Beam
stopped or killed it), and the server exits when the driver closes its stdin
(or dies).

``python -m pipeline.runtime.fork_server FD MODULE...``: FD is a listening
Unix socket the driver made (so shims can connect before the imports finish);
MODULEs are what a worker imports (the caller names them: this package may
not import the job's modules); ``module:function`` also calls the function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from pipeline.runtime.sdk_worker import quiet_stderr
from pipeline.runtime.worker_shim import EXIT, STARTED, WORKER_MODULE

MAX_REQUEST = 1 << 24  # a worker's environment as JSON; far above any real one
LEFTOVER_GRACE_S = 2.0  # how long exiting workers get to report, once the driver has closed this server's stdin


@dataclasses.dataclass(frozen=True)
class WorkerRequest:
    """What a shim asks for: the worker's environment (Beam's addresses among it) and folder."""

    env: dict[str, str]
    cwd: str


def preload(modules: list[str]) -> None:
    """Imports what a worker imports before its first image, once for every worker.

    ``module:function`` imports the module and calls the function (with no arguments): warm-up that an import
    alone does not do, such as resolving TensorFlow's names (``pipeline.job.warm_start``).
    """
    importlib.import_module("apache_beam.runners.worker.sdk_worker_main")
    for entry in modules:
        name, _, function = entry.partition(":")
        module = importlib.import_module(name)
        if function:
            getattr(module, function)()
    gc.freeze()  # the imports' objects: out of the collector's passes, so their pages stay shared


def read_request(conn: socket.socket) -> tuple[WorkerRequest, list[int]]:
    """A shim's request: its environment and folder, and its stdin, stdout and stderr."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4:
        for fd in fds:
            os.close(fd)
        raise ValueError("short request")
    (length,) = struct.unpack("!I", data[:4])
    body = data[4:]
    try:
        if length > MAX_REQUEST:
            raise ValueError("request too long")
        while len(body) < length:
            chunk = conn.recv(min(1 << 16, length - len(body)))
            if not chunk:
                raise ValueError("truncated request")
            body += chunk
        if len(fds) != 3:
            raise ValueError("expected stdin, stdout and stderr")
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise
    message = json.loads(body)
    return WorkerRequest({str(k): str(v) for k, v in message["env"].items()}, str(message["cwd"])), fds


def run_worker(conn: socket.socket, fds: list[int], request: WorkerRequest) -> None:
    """In the forked child: becomes the worker Beam asked for, reports its exit code, and exits."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request.env)
        os.chdir(request.cwd)
        sys.argv = [WORKER_MODULE]
        conn.sendall(STARTED)
        threading.Thread(target=_exit_with_shim, args=(conn,), name="shim-watch", daemon=True).start()
        from pipeline.runtime.sdk_worker import run_harness

        run_harness()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported like Python's own exit on an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(EXIT.pack(code))
        finally:
            os._exit(code)  # no teardown, as sdk_worker.main: a bundle still in TensorFlow would abort it


def _exit_with_shim(conn: socket.socket) -> None:
    """The shim never writes after its request: end of stream means it is gone, so this worker goes too."""
    try:
        conn.recv(1)
    except OSError:
        pass
    os._exit(1)


def serve(listener: socket.socket) -> None:
    """Forks a worker per connection until the driver closes this process's stdin, then waits for the workers.

    Workers are reaped here (not left to the kernel with SIGCHLD ignored) so that their CPU time counts in
    this process's children, and so in the driver's: what a benchmark or ``time`` reports stays whole.
    """
    children: set[int] = set()
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        while True:
            events = selector.select(timeout=1.0)
            _reap(children, block=False)
            for key, _ in events:
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    pid = _fork_worker(listener, conn)
                    if pid:
                        children.add(pid)
                elif not os.read(sys.stdin.fileno(), 1024):
                    listener.close()
                    _end_workers(children)
                    return


def _end_workers(children: set[int]) -> None:
    """After the driver closed this server's stdin (or died): ends whatever worker is left.

    After a job Beam has stopped every worker already (they are exiting); a worker still here belongs to a
    driver that died, and a harness whose driver died waits up to a minute for its control channel, holding
    the driver's stdout and stderr open. Its shim then exits with code 1.
    """
    _reap(children, block=True, limit_s=LEFTOVER_GRACE_S)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(children, block=True)


def _reap(children: set[int], block: bool, limit_s: float = 10.0) -> None:
    """Collects exited workers; with ``block``, waits for the rest (their shims have gone: they are exiting)."""
    deadline = time.monotonic() + limit_s
    while children:
        for pid in list(children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                children.discard(pid)
        if not block or not children or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _fork_worker(listener: socket.socket, conn: socket.socket) -> int:
    """The forked worker's pid; 0 when none started (the shim sees its connection close and starts the usual one)."""
    fds: list[int] = []
    pid = 0
    try:
        request, fds = read_request(conn)
        pid = os.fork()
        if pid == 0:
            listener.close()
            run_worker(conn, fds, request)
    except (OSError, ValueError, KeyError, AttributeError):  # a malformed request: no worker, the shim falls back
        pid = 0
    finally:
        for fd in fds:
            os.close(fd)
        conn.close()
    return pid


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the driver, which closes our stdin
    listener = socket.socket(fileno=int(argv[1]))
    quiet_stderr()  # before the imports, as a worker Beam starts does it (sdk_worker.main)
    try:
        preload(argv[2:])
    except Exception as exc:  # noqa: BLE001 - the workers then start the usual way and report the real error
        print(f"augbeam: warm worker server not used: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    serve(listener)
    return 0


if __name__ == "__main__":
    # No interpreter teardown (TensorFlow's and Beam's modules: about half a second), which the driver would wait for.
    code = main(sys.argv)
    sys.stderr.flush()
    os._exit(code)
