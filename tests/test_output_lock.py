"""One writer per output folder, as it happens: two real ``augbeam run`` processes into one folder, and a training
job's ``augbeam.load`` reading it meanwhile.

The folder holds a finished run (seed 1) that a reader has read one epoch of. Run X (``--overwrite --seed 3``)
starts; once its lock names it, its process group is frozen with SIGSTOP (alive, holding the lock, writing
nothing: so the folder as the second run finds it cannot change under the test). Run Y (``--overwrite --seed
99``), started then, must be refused in one line naming X, before touching anything. X is continued with SIGCONT
and must finish, its output verify, and its manifest be seed 3's alone. The reader's second epoch must then fail
with the one error that says the folder was replaced, instead of serving X's records.

A SIGKILLed run whose lock the next ``--resume`` takes over is in tests/test_resume.py; the lock's own cases
(pid reused, another host's heartbeat, racers for a gone lock) in tests/pipeline/job/test_output_lock.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.job.output_lock import LOCK_FILE, Holder
from tests.helpers import DATA, ROOT, all_files, group_members, in_process, process_stat, wait_job

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="freezes the job's process group")

TIMEOUT_S = 300.0


def command(src: Path, out: Path, seed: int) -> list[str]:
    """``augbeam run --overwrite`` of a tiny input at 16x16, one in-process worker."""
    argv = ["run", "--input", str(src), "--output", str(out), "--image-size", "16", "16", "--num-shards", "2"]
    argv += ["--seed", str(seed), "--overwrite", "--progress", "none"]
    return [sys.executable, "-m", "pipeline", *in_process(argv)]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """A job in its own process group, stderr to ``log``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    with log.open("wb") as err:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def wait(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    """The job's exit code and stderr; a job still running past the timeout is killed (its whole group)."""
    code = wait_job(proc, TIMEOUT_S)
    return code, log.read_text(errors="replace")


def lock_holder(out: Path) -> Holder | None:
    try:
        return Holder.from_bytes((out / LOCK_FILE).read_bytes())
    except FileNotFoundError:
        return None


def freeze(pgid: int) -> None:
    """SIGSTOP to the whole group, and wait until every process of it is stopped."""
    os.killpg(pgid, signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while not all((st := process_stat(pid)) is not None and st[0] in "tT" for pid in group_members(pgid)):
        assert time.monotonic() < deadline, "the job's group did not stop"
        time.sleep(0.01)


@dataclasses.dataclass(frozen=True)
class Race:
    out: Path
    first: subprocess.Popen
    first_code: int
    first_err: str
    holder: Holder
    second_code: int
    second_err: str
    untouched: bool  # the folder, byte for byte, the same after the second run as before it
    epoch_1: list[bytes]  # the keys the reader read before the rerun
    epoch_2_error: str  # what its second epoch raised ("" if nothing)


@pytest.fixture(scope="module")
def race(run_b, tmp_path_factory) -> Race:
    import tensorflow as tf

    from pipeline.format import reader

    root = tmp_path_factory.mktemp("race")
    src = root / "src"
    for rel, name in [("a/rocket.jpg", "rocket_small.jpg"), ("a/gray.png", "gray.png"), ("b/rgba.png", "rgba.png")]:
        (src / "train" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / name, src / "train" / rel)
    out = root / "out"
    shutil.copytree(run_b, out)  # a finished run, seed 1
    ds = reader.load(str(out), split="train", with_metadata=True)
    epoch_1 = [meta["key"].numpy() for _image, _label, meta in ds]

    first = start(command(src, out, seed=3), root / "first.txt")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while (holder := lock_holder(out)) is None or holder.pid != first.pid:
            assert first.poll() is None, (root / "first.txt").read_text()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.01)
        freeze(first.pid)
        before = all_files(out)
        second_code, second_err = wait(start(command(src, out, seed=99), root / "second.txt"), root / "second.txt")
        untouched = all_files(out) == before
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    first_code, first_err = wait(first, root / "first.txt")

    epoch_2_error = ""
    try:
        for _ in ds:
            pass
    except tf.errors.InvalidArgumentError as exc:
        epoch_2_error = exc.message
    return Race(out, first, first_code, first_err, holder, second_code, second_err, untouched, epoch_1, epoch_2_error)


def test_a_second_run_into_a_folder_being_written_is_refused_in_one_line(race):
    h = race.holder
    line = (
        f"augbeam: error: --output {str(race.out)!r} is being written by another augbeam run "
        f"(host {h.host}, pid {race.first.pid}, started {h.started}); wait for it to end (or stop it: "
        f"kill {race.first.pid}), or choose another folder"
    )
    assert race.second_code == 2 and race.second_err.strip() == line, race.second_err[-3000:]
    assert race.untouched  # refused before --overwrite deleted anything or the work folder was written


def test_the_first_run_completes_alone_and_its_output_verifies(race):
    from pipeline.checks.verify import verify
    from pipeline.format.reader import read_manifest

    assert race.first_code == 0, race.first_err[-3000:]
    assert "augbeam: error" not in race.first_err and "taking its lock over" not in race.first_err
    manifest = read_manifest(str(race.out))
    assert manifest.config["seed"] == 3 and manifest.run
    report = verify(str(race.out), sample=3)
    assert report.ok, report.text(str(race.out))
    assert not (race.out / LOCK_FILE).exists() and not (race.out / ".augbeam-work").exists()


def test_a_reader_of_the_replaced_folder_fails_at_its_next_epoch(race, run_b):
    from pipeline.format import reader

    assert (
        len(race.epoch_1) == json.loads((run_b / "manifest.json").read_text())["splits"]["train"]["counts"]["written"]
    )
    assert f"the folder {race.out} was replaced by another run while reading (run " in race.epoch_2_error
    assert "reload it with augbeam.load" in race.epoch_2_error
    reloaded = reader.load(str(race.out), split="train", with_metadata=True)  # the new run's, read without error
    assert {meta["key"].numpy() for _i, _l, meta in reloaded} == {
        b"train/a/rocket.jpg",
        b"train/a/gray.png",
        b"train/b/rgba.png",
    }
