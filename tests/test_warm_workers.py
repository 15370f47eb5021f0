"""Local multi_processing workers forked from a server that imported TensorFlow once (pipeline.warm_workers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline import warm_workers
from pipeline.fork_server import read_request
from pipeline.worker_shim import EXIT, STARTED, request, wait_for_worker
from tests.conftest import run, shard_bytes

MULTI = ["--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    ("beam_args", "expected"),
    [
        (["--direct_num_workers=2", *MULTI], True),
        (["--direct_num_workers", "3", "--direct_running_mode", "multi_processing"], True),
        (["--runner=DirectRunner", "--direct_num_workers=2", *MULTI], True),
        (["--runner", "apache_beam.runners.direct.direct_runner.DirectRunner", "--direct_num_workers=2", *MULTI], True),
        (["--direct_num_workers=1", *MULTI], False),  # one worker process: nothing to share
        ([*MULTI], False),  # Beam's default: one worker
        (["--direct_num_workers=2"], False),  # in memory: the workers are this process
        (["--direct_num_workers=2", "--direct_running_mode=multi_threading"], False),
        (["--runner=FlinkRunner", "--direct_num_workers=2", *MULTI], False),
        (["--runner=PrismRunner", "--direct_num_workers=2", *MULTI], False),
        (["--direct_num_workers=2", *MULTI, "--streaming"], False),
        (["--direct_num_workers=x", *MULTI], False),  # Beam reports the bad option itself
        ([], False),
    ],
)
def test_used_only_for_several_local_worker_processes(beam_args, expected):
    assert warm_workers.wanted(beam_args) is expected


def test_zero_workers_means_one_per_core(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not warm_workers.wanted(["--direct_num_workers=0", *MULTI])
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert warm_workers.wanted(["--direct_num_workers=0", *MULTI])


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(warm_workers.DISABLE_ENV, "0")
    assert not warm_workers.wanted(["--direct_num_workers=2", *MULTI])
    assert warm_workers.start(["--direct_num_workers=2", *MULTI]) is None


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (b"", None),  # closed before forking: the shim starts Beam's own worker
        (b"?", None),
        (STARTED, 1),  # the worker died without reporting: failed, and never started twice
        (STARTED + EXIT.pack(0), 0),
        (STARTED + EXIT.pack(3), 3),
    ],
)
def test_the_shim_reads_what_became_of_its_worker(sent, code):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(sent)
        theirs.close()
        assert wait_for_worker(ours) == code


def test_a_request_carries_environment_folder_and_streams():
    ours, theirs = socket.socketpair()
    env = {"CONTROL_API_SERVICE_DESCRIPTOR": "url: 'localhost:1'", "BIG": "x" * 200_000}  # over one recv
    with ours, theirs, tempfile.TemporaryFile() as f:
        socket.send_fds(ours, [request(env, "/some/folder")], [f.fileno()] * 3)
        got, fds = read_request(theirs)
        for fd in fds:
            os.close(fd)
    assert got == {"env": env, "cwd": "/some/folder"}
    assert len(fds) == 3


def _server_children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _connect(server: warm_workers.WarmWorkers, env: dict[str, str], stderr: int) -> socket.socket:
    """A hand-made shim: the request, with /dev/null in and out and ``stderr``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(server.path)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        socket.send_fds(sock, [request(env, os.getcwd())], [null, null, stderr])
    finally:
        os.close(null)
    return sock


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_SERVICE_DESCRIPTOR")}
    return {**env, **extra}


def test_a_worker_that_fails_reports_its_exit_code_and_its_error(tmp_path):
    """Beam's worker without its control address fails at once: the shim gets code 1, stderr the traceback."""
    server = warm_workers.WarmWorkers()
    try:
        with open(tmp_path / "err", "wb") as err, _connect(server, _env(), err.fileno()) as sock:
            sock.settimeout(120)
            assert wait_for_worker(sock) == 1
        assert "CONTROL_API_SERVICE_DESCRIPTOR" in (tmp_path / "err").read_text()
    finally:
        server.used = True
        server.close()
    assert server.process.returncode == 0
    assert not Path(server.folder).exists()


def test_a_worker_goes_when_its_shim_goes(tmp_path):
    """Beam kills a worker by killing its process, which is the shim: the forked worker must not outlive it."""
    server = warm_workers.WarmWorkers()
    try:
        # Nothing listens on port 1: Beam's harness waits for its control channel (up to 60 s).
        env = _env(CONTROL_API_SERVICE_DESCRIPTOR="url: 'localhost:1'")
        with open(tmp_path / "err", "wb") as err:
            sock = _connect(server, env, err.fileno())
        sock.settimeout(120)
        assert sock.recv(1) == STARTED
        workers = _server_children(server.process.pid)
        assert len(workers) == 1 and _alive(workers[0])
        sock.close()
        deadline = time.monotonic() + 20
        while _alive(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(workers[0])
    finally:
        server.used = True
        server.close()


def test_the_server_imports_pythons_own_distutils(monkeypatch):
    """TensorFlow's import of distutils must not pull in setuptools there (0.2-0.3 s of each job's start)."""
    monkeypatch.delenv("SETUPTOOLS_USE_DISTUTILS", raising=False)
    env = warm_workers.server_environment()
    if not warm_workers.stdlib_has_distutils():  # 3.12+, or a distribution that packages distutils apart
        assert "SETUPTOOLS_USE_DISTUTILS" not in env
        return
    assert env["SETUPTOOLS_USE_DISTUTILS"] == "stdlib"
    probe = "import distutils, sys; print(distutils.__file__); print('setuptools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    where, setuptools_loaded = out.split()
    assert "site-packages" not in where and setuptools_loaded == "False"
    monkeypatch.setenv("SETUPTOOLS_USE_DISTUTILS", "local")  # the user's choice stands
    assert warm_workers.server_environment()["SETUPTOOLS_USE_DISTUTILS"] == "local"


def test_without_distutils_in_the_stdlib_the_server_keeps_setuptools(monkeypatch, tmp_path):
    """Where distutils is packaged apart (not installed), stdlib would make TensorFlow's import fail."""
    import sysconfig

    monkeypatch.delenv("SETUPTOOLS_USE_DISTUTILS", raising=False)
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    assert not warm_workers.stdlib_has_distutils()
    assert "SETUPTOOLS_USE_DISTUTILS" not in warm_workers.server_environment()


def test_close_before_a_job_stops_the_server_at_once():
    """A user error before the pipeline: the server may still be importing TensorFlow; it is killed, not awaited."""
    server = warm_workers.WarmWorkers()
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    assert server.process.returncode is not None
    assert not Path(server.folder).exists()


_PROBE = """
import json, os, sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from pipeline import warm_workers

def where(x):
    import os, sys
    parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
    return (x, parent, "tensorflow" in sys.modules)

args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
server = warm_workers.WarmWorkers()
if sys.argv[1] == "kill":
    server.process.kill()
    server.process.wait()
options = PipelineOptions(args)
with beam.Pipeline(runner=server.runner(options), options=options) as p:
    _ = p | beam.Create(range(4)) | beam.Map(where) | beam.io.WriteToText(sys.argv[2], shard_name_template="")
server.close()
rows = [eval(line) for line in open(sys.argv[2])]
print(json.dumps({"rows": sorted(rows), "server_gone": not os.path.exists(server.folder)}))
"""


def _probe(mode: str, tmp_path: Path) -> dict:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, str(tmp_path / "rows.txt")],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_workers_are_forked_from_the_server_with_tensorflow_imported(tmp_path):
    seen = _probe("use", tmp_path)
    assert [row[0] for row in seen["rows"]] == [0, 1, 2, 3]
    assert all("pipeline.fork_server" in row[1] and row[2] for row in seen["rows"]), seen["rows"]
    assert seen["server_gone"]


def test_without_a_server_beams_own_workers_run_the_job(tmp_path):
    seen = _probe("kill", tmp_path)
    assert [row[0] for row in seen["rows"]] == [0, 1, 2, 3]
    assert not any("pipeline.fork_server" in row[1] for row in seen["rows"]), seen["rows"]


def test_forked_workers_write_the_same_bytes_as_beams_own(photos_with_bad, tmp_path, monkeypatch):
    """The same job with and without the server: every file equal (shards, index, report, manifest)."""
    two = ["--direct_num_workers=2", *MULTI]
    run(photos_with_bad, tmp_path / "warm", two)
    monkeypatch.setenv(warm_workers.DISABLE_ENV, "0")
    run(photos_with_bad, tmp_path / "cold", two)
    assert shard_bytes(tmp_path / "warm") == shard_bytes(tmp_path / "cold")
