"""The command Beam starts for each local ``multi_processing`` worker while a warm server runs.

``python -m pipeline.runtime.worker_shim SOCKET`` hands its environment
(Beam's control, logging and options addresses), its folder and its stdin,
stdout and stderr to the server (``fork_server``) listening on SOCKET, which
forks a worker that has Beam's harness, TensorFlow and the job's modules
imported already; the shim then waits and exits with the worker's exit code,
so Beam sees a worker process as usual.

When no worker was started (the server is gone, or failed before forking) it
becomes the usual worker instead (``exec`` of ``pipeline.runtime.sdk_worker``),
so a warm server can only make workers start sooner, never stop a job.
Imports nothing beyond the standard library: it is on every worker's start-up
path.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

WORKER_MODULE = "pipeline.runtime.sdk_worker"  # what a worker runs when Beam starts it (runners uses this name)
STARTED = b"F"  # the forked worker's first byte: from then on the shim must not start another worker
EXIT = struct.Struct("!i")  # then, when it ends, its exit code


def request(env: dict[str, str], cwd: str) -> bytes:
    """The message a shim sends: a length, then JSON of the worker's environment and folder."""
    body = json.dumps({"env": env, "cwd": cwd}).encode()
    return struct.pack("!I", len(body)) + body


def wait_for_worker(sock: socket.socket) -> int | None:
    """The forked worker's exit code; None when no worker was started (fall back to the usual worker)."""
    data = b""
    while len(data) < 1 + EXIT.size:
        try:
            chunk = sock.recv(1 + EXIT.size - len(data))
        except OSError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    if not data.startswith(STARTED):
        return None
    if len(data) < 1 + EXIT.size:  # the worker died without reporting (killed): a failed worker, as Beam sees it
        return 1
    code: int = EXIT.unpack(data[1:])[0]
    return code


def main(argv: list[str]) -> int:
    code = None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(argv[1])
            socket.send_fds(sock, [request(dict(os.environ), os.getcwd())], [0, 1, 2])
            code = wait_for_worker(sock)
    except (OSError, IndexError):
        code = None
    if code is None:
        os.execv(sys.executable, [sys.executable, "-m", WORKER_MODULE])
    return code


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the driver reports it
        sys.exit(130)
