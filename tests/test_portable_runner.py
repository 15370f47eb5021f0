"""The job on Beam's portable worker path (as on Flink or Spark): same bytes as the DirectRunner.

``PortableRunner --job_endpoint=embed --environment_type=EXTERNAL`` runs Beam's job service in this process and
sends every bundle to SDK harness processes that a worker pool (started here, on loopback) spawns: the code that
crosses is what a cluster's workers receive (pickled DoFns and config, the Fn API data and state channels), with
no Java job server, Docker or network. The pool's processes are watched through /proc, so Linux only.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.helpers import DATA, PHOTOS, all_files, read_errors, run
from tests.worker_pool import HAS_PROC, PoolWatch, WorkerPool, started_pool

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="watches worker processes in /proc")

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


@pytest.fixture
def worker_pool(tmp_path) -> Iterator[WorkerPool]:
    """Beam's worker pool on a loopback port, in its own process group; the group is killed afterwards."""
    # The pool starts each SDK harness as `python -c ...` from PATH: this environment's python must come first.
    with started_pool(tmp_path, Path(sys.executable).parent) as pool:
        yield pool


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
    assert {"manifest.json", "index-train-00000-of-00002.parquet", "errors-train-00001-of-00002.parquet"} <= set(direct)
    errors = read_errors(portable_out)
    assert [(e["key"], e["error_type"]) for e in errors] == [("train/textures/truncated.jpg", "CorruptImage")]
    print(f"portable + direct runs: {time.perf_counter() - started:.1f} s, {len(harnesses)} worker process(es)")
