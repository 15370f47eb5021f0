"""The job on Beam's portable worker path (as on Flink or Spark): same bytes as the DirectRunner.

``PortableRunner --job_endpoint=embed --environment_type=EXTERNAL`` runs Beam's job service in this process and
sends every bundle to SDK harness processes that a worker pool (started here, on loopback) spawns: the code that
crosses is what a cluster's workers receive (pickled DoFns and config, the Fn API data and state channels), with
no Java job server, Docker or network. The pool's processes are watched through /proc, so Linux only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from tests.helpers import DATA, PHOTOS, all_files, group_members, run

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches worker processes in /proc")

POOL_START_TIMEOUT_S = 60.0
# Two classes in train (one corrupt file among them) and in validation; 2 copies into 2 shards per split.
IMAGES = (
    "train/everyday/astronaut.png",
    "train/everyday/rocket.jpg",
    "train/textures/brick.png",
    "train/textures/grass.png",
    "validation/everyday/coffee.png",
    "validation/textures/gravel.png",
)
PARAMS = dict(image_size=(32, 32), copies=2, seed=3, num_shards=2, max_error_rate=0.5)


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("portable") / "photos"
    for rel in IMAGES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTOS / rel, root / rel)
    shutil.copy(DATA / "truncated_half.jpg", root / "train" / "textures" / "truncated.jpg")
    return root


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


@pytest.fixture
def worker_pool(tmp_path) -> Iterator[WorkerPool]:
    """Beam's worker pool on a loopback port, in its own process group; the group is killed afterwards.

    It runs in its own folder, as a pool on a cluster host would: a relative path reaching a worker resolves there.
    """
    port = _free_port()
    stderr = tmp_path / "pool.stderr"
    (tmp_path / "pool-cwd").mkdir()
    # The pool starts each SDK harness as `python -c ...` from PATH: this environment's python must come first.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            cwd=tmp_path / "pool-cwd",
            env=env,
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


def test_portable_workers_write_the_same_bytes_as_the_direct_runner(
    small_photos, worker_pool, tmp_path, capsys, monkeypatch
):
    started = time.perf_counter()
    portable_out, direct_out = tmp_path / "portable", tmp_path / "direct"
    monkeypatch.chdir(tmp_path)  # --output is relative; the pool's workers run in tmp_path/pool-cwd
    beam_args = [
        "--runner=PortableRunner",
        "--job_endpoint=embed",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{worker_pool.port}",
    ]
    argv = ["run", "--input", str(small_photos), "--output", "portable", "--image-size", "32", "32"]
    argv += ["--copies", "2", "--seed", "3", "--num-shards", "2", "--max-error-rate", "0.5", "--", *beam_args]
    with PoolWatch(worker_pool.process.pid) as watch:
        assert main(argv) == 0, capsys.readouterr().err
    assert "--setup_file" not in capsys.readouterr().err  # EXTERNAL workers use the environment they were started in
    run(small_photos, direct_out, **PARAMS)

    # The work ran in SDK harness processes the pool started, not in this one, and they ran TensorFlow.
    harnesses = {pid: cmd for pid, cmd in watch.workers.items() if "SdkHarness" in cmd}
    assert harnesses, f"the pool started no worker process; pool log:\n{worker_pool.stderr.read_text()[-4000:]}"
    assert os.getpid() not in harnesses
    assert watch.loaded_tensorflow & set(harnesses), "no worker process loaded TensorFlow: the work ran elsewhere"

    assert not any((tmp_path / "pool-cwd").iterdir()), "a worker wrote into its own folder, not the output"
    portable, direct = all_files(portable_out), all_files(direct_out)
    assert sorted(portable) == sorted(direct)
    for name in direct:
        assert portable[name] == direct[name], f"{name} differs between PortableRunner and DirectRunner"
    shards = [n for n in direct if n.endswith(".tfrecord")]
    assert sorted(shards) == [f"{s}-0000{i}-of-00002.tfrecord" for s in ("train", "validation") for i in (0, 1)]
    assert {"manifest.json", "index.parquet", "errors.parquet"} <= set(direct)
    errors = pq.read_table(portable_out / "errors.parquet").to_pylist()
    assert [(e["key"], e["error_type"]) for e in errors] == [("train/textures/truncated.jpg", "CorruptImage")]
    print(f"portable + direct runs: {time.perf_counter() - started:.1f} s, {len(harnesses)} worker process(es)")
