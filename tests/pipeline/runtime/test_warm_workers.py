"""Local multi_processing workers forked from a server that imported their modules once (runtime.warm_workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.runtime import warm_workers
from pipeline.runtime.fork_server import WorkerRequest, read_request
from pipeline.runtime.worker_shim import EXIT, STARTED, request, wait_for_worker
from tests.helpers import ROOT, group_members, process_stat, run, shard_bytes

MULTI = ["--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    ("beam_args", "expected"),
    [
        ([], True),  # the default: one worker process per core (runners.default_parallelism)
        (["--runner=DirectRunner"], True),
        (["--direct_num_workers=2", *MULTI], True),
        (["--direct_num_workers", "3", "--direct_running_mode", "multi_processing"], True),
        (["--runner", "apache_beam.runners.direct.direct_runner.DirectRunner", "--direct_num_workers=2", *MULTI], True),
        (["--direct_num_workers=0", *MULTI], True),  # Beam: one per core
        (["--direct_num_workers=1", *MULTI], False),  # one worker process: nothing to share
        ([*MULTI], False),  # Beam's default: one worker
        (["--direct_num_workers=1"], False),  # one in-process worker (the tests' IN_PROCESS)
        (["--direct_num_workers=2"], False),  # in memory: the workers are this process
        (["--direct_num_workers=2", "--direct_running_mode=multi_threading"], False),
        (["--runner=FlinkRunner"], False),
        (["--runner=PrismRunner", "--direct_num_workers=2", *MULTI], False),
        (["--streaming"], False),
        (["--direct_num_workers=x", *MULTI], False),  # Beam reports the bad option itself
    ],
)
def test_used_only_for_several_local_worker_processes(beam_args, expected):
    assert warm_workers.wanted(beam_args, cpus=4) is expected


@pytest.mark.parametrize("beam_args", [[], ["--runner=DirectRunner"], ["--runner=FlinkRunner"], ["--streaming"]])
@pytest.mark.parametrize("cpus", [1, 4])
def test_without_a_local_mode_it_agrees_with_the_default_parallelism(beam_args, cpus):
    """Read without Beam, the same decision as ``default_parallelism`` (which reads Beam's options)."""
    from pipeline.runtime.runners import default_parallelism

    assert warm_workers.wanted(beam_args, cpus=cpus) == (default_parallelism(beam_args, cpus=cpus) != beam_args)


def test_one_core_has_no_worker_processes_by_default():
    assert not warm_workers.wanted([], cpus=1)
    assert not warm_workers.wanted(["--direct_num_workers=0", *MULTI], cpus=1)


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(warm_workers.DISABLE_ENV, "0")
    assert not warm_workers.wanted(["--direct_num_workers=2", *MULTI])
    assert warm_workers.start(["--direct_num_workers=2", *MULTI], ()) is None


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (b"", None),  # closed before forking: the shim starts the usual worker
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
    assert got == WorkerRequest(env, "/some/folder")
    assert len(fds) == 3


def test_a_request_without_its_streams_is_refused_and_closes_what_came():
    ours, theirs = socket.socketpair()
    with ours, theirs, tempfile.TemporaryFile() as f:
        socket.send_fds(ours, [request({}, "/")], [f.fileno()])
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(ValueError, match="stdin, stdout and stderr"):
            read_request(theirs)
        assert len(os.listdir("/proc/self/fd")) == before  # the received descriptor was closed, not kept


def _server_children(pid: int) -> list[int]:
    """A process's children, started from any of its threads (Beam starts workers from a thread of its own)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids


def _alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] != "Z"


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
    """Beam's harness without its control address fails at once: the shim gets code 1, stderr the error."""
    server = warm_workers.WarmWorkers(())
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
    server = warm_workers.WarmWorkers(())
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


def test_close_before_a_job_stops_the_server_at_once():
    """A user error before the pipeline: the server may still be importing TensorFlow; it is killed, not awaited."""
    server = warm_workers.WarmWorkers(("tensorflow",))
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    assert server.process.returncode is not None
    assert not Path(server.folder).exists()


def test_a_server_that_cannot_import_says_so_and_the_shims_fall_back(tmp_path):
    server = warm_workers.WarmWorkers(("no_such_module_here",))
    server.process.wait(timeout=60)
    assert server.process.returncode == 1
    shim = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.runtime import worker_shim; print(worker_shim.main(sys.argv))",
            server.path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=_env(),
        check=False,
    )
    server.close()
    # refused at the socket: it exec'd the usual worker, whose harness fails without Beam's addresses
    assert shim.returncode != 0 and "CONTROL_API_SERVICE_DESCRIPTOR" in shim.stderr


_PROBE = """
import json, os, sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from pipeline.runtime import runners, warm_workers

def where(x):
    import os, sys
    parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
    return (x, parent, "tensorflow" in sys.modules)

args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
server = warm_workers.WarmWorkers(("tensorflow",))
if sys.argv[1] == "kill":
    server.process.kill()
    server.process.wait()
server.used = True
options = PipelineOptions(args)
with beam.Pipeline(runner=runners.fn_api_runner(options, server.command), options=options) as p:
    _ = p | beam.Create(range(4)) | beam.Map(where) | beam.io.WriteToText(sys.argv[2], shard_name_template="")
server.close()
rows = [eval(line) for line in open(sys.argv[2])]
print(json.dumps({"rows": sorted(rows), "server_gone": not os.path.exists(server.folder)}))
"""


def _probe(mode: str, tmp_path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, str(tmp_path / "rows.txt")],
        cwd=ROOT,
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
    assert all("pipeline.runtime.fork_server" in row[1] and row[2] for row in seen["rows"]), seen["rows"]
    assert seen["server_gone"]


def test_without_a_server_the_usual_workers_run_the_job(tmp_path):
    seen = _probe("kill", tmp_path)
    assert [row[0] for row in seen["rows"]] == [0, 1, 2, 3]
    assert not any("pipeline.runtime.fork_server" in row[1] for row in seen["rows"]), seen["rows"]


def test_forked_workers_write_the_same_bytes_as_the_usual_ones(photos_with_bad, tmp_path, monkeypatch):
    """The same job with and without the server: every file equal (shards, index, report, manifest)."""
    two = ["--direct_num_workers=2", *MULTI]
    run(photos_with_bad, tmp_path / "warm", two)
    monkeypatch.setenv(warm_workers.DISABLE_ENV, "0")
    run(photos_with_bad, tmp_path / "cold", two)
    assert shard_bytes(tmp_path / "warm") == shard_bytes(tmp_path / "cold")


def _augbeam(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(warm_workers.DISABLE_ENV, None)
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env, text=True, **streams)


def test_the_command_forks_its_workers_and_leaves_nothing_behind(photos_with_bad, tmp_path):
    """``augbeam run`` on 2 worker processes: the server's children ran it, and nothing of it is left after."""
    args = ["run", "--input", str(photos_with_bad), "--output", str(tmp_path / "out"), "--image-size", "32", "32"]
    with open(tmp_path / "err", "w") as err:
        job = _augbeam([*args, "--max-error-rate", "0.5", "--", "--direct_num_workers=2", *MULTI], stderr=err)
        server, sockets, forked, usual = None, set(), set(), set()
        while job.poll() is None:
            for pid in _server_children(job.pid):  # the server, and each shim (Beam's shell runs it)
                line = _cmdline(pid).replace(b"\0", b" ").decode()
                if "pipeline.runtime.fork_server" in line:
                    server = pid
                if "pipeline.runtime.worker_shim" in line:
                    sockets.add(line.split()[-1])
                if "pipeline.runtime.sdk_worker" in line:  # a shim that fell back to the usual worker
                    usual.add(pid)
            if server is not None:  # its forks have its command line (its imports also run ``uname -p``)
                forked.update(p for p in _server_children(server) if b"fork_server" in _cmdline(p))
            time.sleep(0.02)
    assert job.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    assert server is not None, "no warm worker server started"
    assert len(forked) >= 2 and not usual, (forked, usual)  # both workers came from the server
    assert not _alive(server) and not any(_alive(pid) for pid in forked)
    assert len(sockets) == 1
    folder = Path(sockets.pop()).parent
    assert not folder.exists()  # removed; named as a scratch folder, so a run after a SIGKILL removes it
    assert folder.name.startswith(f"augbeam-run-{job.pid}-") and folder.parent == Path(tempfile.gettempdir())


def test_a_run_refused_at_its_options_stops_the_server_at_once(tmp_path):
    started = time.monotonic()
    job = _augbeam(
        ["run", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out")], start_new_session=True
    )
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0 and "missing" in err
    assert time.monotonic() - started < 20  # not the server's imports awaited
    assert not group_members(job.pid)
    assert not list(Path(tempfile.gettempdir()).glob(f"augbeam-run-{job.pid}-*"))


def test_sigkill_of_the_driver_alone_ends_the_server_and_its_workers(photos_with_bad, tmp_path):
    """A real SIGKILL of the driver process only (as the OOM killer would), mid-run: none of the rest lingers."""
    args = ["run", "--input", str(photos_with_bad), "--output", str(tmp_path / "out"), "--image-size", "32", "32"]
    extra = ["--copies", "8", "--max-error-rate", "0.5", "--", "--direct_num_workers=2", *MULTI]
    job = _augbeam([*args, *extra], start_new_session=True, stderr=subprocess.DEVNULL)
    group: list[int] = []
    deadline = time.monotonic() + 120
    while job.poll() is None and time.monotonic() < deadline:
        group = group_members(job.pid)
        forked = [pid for pid in group if b"fork_server" in _cmdline(pid)]
        if len(forked) == 3:  # the server and its two workers
            break
        time.sleep(0.05)
    assert len([pid for pid in group if b"fork_server" in _cmdline(pid)]) == 3, group
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    killed = time.monotonic()
    while group_members(job.pid) and time.monotonic() < killed + 120:
        time.sleep(0.1)
    assert not group_members(job.pid)
    # Within the server's grace for exiting workers, not the minute a harness waits for its dead driver.
    assert time.monotonic() - killed < 30


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""
