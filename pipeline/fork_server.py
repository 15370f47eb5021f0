"""One process that imports TensorFlow once, then forks the DirectRunner's local workers from it.

Why: Beam starts each ``multi_processing`` worker as a fresh Python, and each
one spent 2.1-3.9 s importing TensorFlow (measured on 2 cores, both workers
importing side by side) before its first image, after the driver had already
imported Beam and listed the input. This server is started by the driver
first thing (``pipeline.warm_workers``), imports TensorFlow and the shard
writer while the driver is still planning, and forks one worker per request
from ``pipeline.worker_shim``: the children share the imported pages and
start in milliseconds.

Fork safety: nothing here runs a TensorFlow op or opens a gRPC channel
before forking (TensorFlow's runtime and thread pools start in the child, on
its first op, sized by ``worker_runtime.configure_tensorflow`` as usual);
the server runs no threads of its own. A child is a worker exactly as Beam
would start it: same environment (the shim's), folder, stdin, stdout and
stderr, and Beam's own ``sdk_worker_main.main``. It exits when its shim goes
(Beam stopped or killed it), and the server exits when the driver closes its
stdin (or dies).

``python -m pipeline.fork_server FD``: FD is a listening Unix socket the
driver made (so shims can connect before the imports finish).
"""

from __future__ import annotations

import atexit
import gc
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

from pipeline.worker_shim import BEAM_WORKER_MAIN, EXIT, STARTED

MAX_REQUEST = 1 << 24  # a worker's environment as JSON; far above any real one


def preload() -> None:
    """Everything a shard worker imports before its first image, imported once for every worker."""
    import tensorflow  # noqa: F401
    from apache_beam.runners.worker import sdk_worker_main  # noqa: F401

    import pipeline.ptransforms  # noqa: F401  (Beam's SDK, the shard writer, transforms)
    import pipeline.worker_runtime  # noqa: F401

    gc.freeze()  # the imports' objects: out of the collector's passes, so their pages stay shared


def read_request(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """A shim's request: its environment and folder, and its stdin, stdout and stderr."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4:
        raise ValueError("short request")
    (length,) = struct.unpack("!I", data[:4])
    if length > MAX_REQUEST:
        raise ValueError("request too long")
    body = data[4:]
    while len(body) < length:
        chunk = conn.recv(min(1 << 16, length - len(body)))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    if len(fds) != 3:
        raise ValueError("expected stdin, stdout and stderr")
    return json.loads(body), fds


def run_worker(conn: socket.socket, fds: list[int], request: dict[str, object]) -> None:
    """In the forked child: becomes the worker Beam asked for, reports its exit code, and exits."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        os.chdir(str(request["cwd"]))
        sys.argv = [BEAM_WORKER_MAIN]
        conn.sendall(STARTED)
        threading.Thread(target=_exit_with_shim, args=(conn,), name="shim-watch", daemon=True).start()
        from apache_beam.runners.worker import sdk_worker_main

        sdk_worker_main.main(sys.argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported like Python's own exit on an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(EXIT.pack(code))
        finally:
            os._exit(code)


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
                    _reap(children, block=True)
                    return


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
    """The forked worker's pid; 0 when none started (the shim sees its connection close and starts Beam's own)."""
    fds: list[int] = []
    pid = 0
    try:
        request, fds = read_request(conn)
        pid = os.fork()
        if pid == 0:
            listener.close()
            run_worker(conn, fds, request)
    except (OSError, ValueError):
        pid = 0
    finally:
        for fd in fds:
            os.close(fd)
        conn.close()
    return pid


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the driver, which closes our stdin
    listener = socket.socket(fileno=int(argv[1]))
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - the workers then start the usual way and report the real error
        print(f"augbeam: worker fork server not used: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    serve(listener)
    return 0


if __name__ == "__main__":
    # No interpreter teardown (TensorFlow's and Beam's modules: about half a second), which the driver would wait for.
    code = main(sys.argv)
    sys.stderr.flush()
    os._exit(code)
