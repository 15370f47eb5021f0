"""``augbeam run --resume`` after a real kill: same bytes as a clean run, finished shards kept, mismatches refused.

Every job here is ``python -m pipeline run ...`` in its own process group (``start_new_session``) with two Beam
worker processes (``--direct_running_mode=multi_processing``), and a kill is ``os.killpg(pgid, SIGKILL)`` of that
whole group: the driver and its workers die at once, as on a lost machine. Nothing in the code under test knows.

How a kill point is hit: the test polls the output folder until the point's sign appears, freezes the whole group
with SIGSTOP, checks that the folder is still at that point (a stopped group writes nothing more, so this is
exactly what the SIGKILL that follows leaves behind), then kills it. A poll that came too late is retried with a
fresh run, at most ``ATTEMPTS`` times. The short window is finalize (about 0.4 s here, while report.html is drawn):
its sign is the side files staged in the work folder, which finalize writes before ``manifest.json`` (and moves
beside the shards after it). Shards take seconds, the time before the plan (workers starting, listing) several.

After each kill no process of the group may be left (polled in /proc), and after each run none either. The killed
run's lock (``.augbeam-lock``) is left behind; the resumed run takes it over, says so, and gives it back. Linux only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.format.manifest import ShardSummary
from pipeline.job.output_lock import LOCK_FILE, Holder
from pipeline.job.shard import STAGED_DIR, WORK_DIR
from tests.helpers import PHOTOS, ROOT, all_files, group_members, process_stat, progress_lines, wait_job

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches the job's processes in /proc")

SHARDS = 6  # per split: train has 22 records, validation 4 (so some shards are empty)
SPLITS = ("train", "validation")
WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
JOB_TIMEOUT_S = 300.0
GONE_TIMEOUT_S = 30.0
ATTEMPTS = 3


def command(src: Path, out: Path, *extra: str, seed: int = 1) -> list[str]:
    """The job's command line: 6 shards per split, 2 copies, 32x32, on two worker processes."""
    size = ["--image-size", "32", "32", "--copies", "2", "--num-shards", str(SHARDS), "--seed", str(seed)]
    return [sys.executable, "-m", "pipeline", "run", "--input", str(src), "--output", str(out), *size, *extra]


def shard_files(split: str, shard: int) -> list[str]:
    """A shard's file and its index and error parts (the files its summary names)."""
    name = f"{split}-{shard:05d}-of-{SHARDS:05d}"
    return [f"{name}.tfrecord", f"index-{name}.parquet", f"errors-{name}.parquet"]


ALL_SHARDS = [(split, shard) for split in SPLITS for shard in range(SHARDS)]


# --- jobs in their own process group -----------------------------------------------------------------------------


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """The job in its own process group (so its workers too), stderr to ``log``, its temporary folder beside it."""
    (log.parent / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(log.parent / "tmp"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with log.open("wb") as err:
        return subprocess.Popen(
            [*argv, "--", *WORKERS],
            cwd=log.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def assert_group_gone(pgid: int) -> None:
    """No live process of the group is left (workers are reparented when the driver dies: /proc still finds them)."""
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the job's group {pgid} outlived it: {[cmdline(pid) for pid in left]}"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200].decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def finish(argv: list[str], log: Path) -> tuple[int, str]:
    """Runs the job to its end: (exit code, stderr); no process of its group may be left."""
    proc = start(argv, log)
    code = wait_job(proc, JOB_TIMEOUT_S)
    assert_group_gone(proc.pid)
    return code, log.read_text(errors="replace")


def wait_stopped(pgid: int) -> int:
    """Waits until every process of the group is stopped (SIGSTOP taken); how many there are."""
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        states = [st[0] for pid in group_members(pgid) if (st := process_stat(pid)) is not None]
        if all(s in "tT" for s in states):
            return len(states)
        time.sleep(0.01)
    pytest.fail(f"the job's group {pgid} did not stop")


def kill_at(
    argv: list[str],
    log: Path,
    reached: Callable[[int], bool],
    still: Callable[[], bool],
    reset: Callable[[], None] | None,
    poll_s: float = 0.002,
) -> int:
    """Starts the job; once ``reached(pgid)``, SIGSTOP then SIGKILL of its whole group, if ``still()`` held between.

    Returns how many processes the group had when killed. ``still`` is checked with the group stopped: the folder
    as the kill leaves it. A miss (the job got past the point first, or ended) is retried after ``reset()``.
    """
    for _ in range(ATTEMPTS):
        proc = start(argv, log)
        hit, members = False, 0
        try:
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while proc.poll() is None and not reached(proc.pid):
                assert time.monotonic() < deadline, f"the kill point was not reached:\n{log.read_text()[-4000:]}"
                time.sleep(poll_s)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGSTOP)
                members = wait_stopped(proc.pid)
                hit = still()
        finally:
            with contextlib.suppress(ProcessLookupError):  # a job that already ended has no group left
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert_group_gone(proc.pid)
        if hit:
            return members
        assert reset is not None, f"missed the kill point (exit code {proc.returncode}):\n{log.read_text()[-4000:]}"
        reset()
    pytest.fail(f"missed the kill point {ATTEMPTS} times:\n{log.read_text()[-4000:]}")


def summary_count(out: Path) -> int:
    return len(list((out / WORK_DIR / "summaries").glob("*.json")))


def summaries(out: Path) -> list[ShardSummary]:
    """The shard summaries in the work folder (complete ones: each is written through a temporary name)."""
    folder = out / WORK_DIR / "summaries"
    return [ShardSummary.from_json(json.loads(p.read_bytes())) for p in sorted(folder.glob("*.json"))]


def identity(path: Path) -> tuple[int, int, int]:
    """What changes when a file is written again (through a temporary file and a rename): inode, mtime, size."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def copy_of(folder: Path, tmp_path: Path, keep_lock: bool = False) -> Path:
    """A copy of a killed run's folder (the config does not name the output folder, so it resumes as well).

    The killed run's lock is left out unless asked: a run taking it over says so on stderr, and the tests
    that are not about the lock check stderr line by line.
    """
    out = tmp_path / "out"
    shutil.copytree(folder, out, symlinks=True, ignore=None if keep_lock else shutil.ignore_patterns(LOCK_FILE))
    return out


def assert_same_output(out: Path, clean: dict[str, bytes]) -> None:
    """Every file byte for byte as the clean run's, nothing more (no work folder, no temporary files)."""
    got = all_files(out)
    assert sorted(got) == sorted(clean)
    for name in clean:
        assert got[name] == clean[name], f"{name} differs from the clean run's"


def refused(argv: list[str], log: Path) -> tuple[str, str]:
    """Runs a job that must be refused: exit code 2 and one ``augbeam: error:`` line; (that line, stderr)."""
    code, err = finish(argv, log)
    lines = [line for line in err.splitlines() if line.startswith("augbeam: error:")]
    assert code == 2 and len(lines) == 1, f"exit code {code}:\n{err[-4000:]}"
    assert "augbeam-refused" not in lines[0]  # the workers' marker is not for users
    return lines[0], err


# --- the runs the tests share ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Clean:
    out: Path
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The example photos: 11 train and 4 validation images in 3 classes."""
    root = tmp_path_factory.mktemp("resume") / "photos"
    shutil.copytree(PHOTOS, root)
    return root


@pytest.fixture(scope="module")
def clean(photos, tmp_path_factory) -> Clean:
    """The same command, run without a kill: what every resumed run must give."""
    out = tmp_path_factory.mktemp("clean") / "out"
    code, err = finish(command(photos, out), out.parent / "stderr.txt")
    assert code == 0, err[-4000:]
    files = all_files(out)
    assert sum(name.endswith(".tfrecord") for name in files) == len(ALL_SHARDS) and "manifest.json" in files
    return Clean(out, files)


@pytest.fixture(scope="module")
def killed_writing(photos, tmp_path_factory) -> Path:
    """A run killed while shards are being written: at least 2 shards have their summary, not all. Not resumed."""
    out = tmp_path_factory.mktemp("killed") / "out"
    workers = kill_at(
        command(photos, out),
        out.parent / "stderr.txt",
        reached=lambda pgid: summary_count(out) >= 2,
        still=lambda: 2 <= summary_count(out) < len(ALL_SHARDS),
        reset=lambda: shutil.rmtree(out),
    )
    assert workers >= 3, "the driver and its two worker processes were not all running when killed"
    assert not (out / "manifest.json").exists()
    return out


# --- kill, then resume -------------------------------------------------------------------------------------------


def test_killed_while_writing_shards_resumes_to_the_same_bytes(killed_writing, photos, clean, tmp_path):
    out = copy_of(killed_writing, tmp_path, keep_lock=True)
    kept = {(s.split, s.shard) for s in summaries(out)}
    missing = [key for key in ALL_SHARDS if key not in kept]
    assert kept and missing
    dead = Holder.from_bytes((out / LOCK_FILE).read_bytes())  # the killed driver's lock, left by the SIGKILL
    assert dead is not None
    before = {p.name: identity(p) for p in out.iterdir() if p.is_file()}
    code, err = finish(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    assert code == 0, err[-4000:]
    assert f"was locked by a run that is gone ({dead.describe()}: " in err, err[-4000:]  # its pid is not running
    assert_same_output(out, clean.files)  # the lock given back too
    for split, shard in kept:  # kept: not written again
        for name in shard_files(split, shard):
            assert identity(out / name) == before[name], f"{name} was written again; its shard was complete"
    for split, shard in missing:  # written by the resumed run (some may have had a file but no summary yet)
        for name in shard_files(split, shard):
            assert name not in before or identity(out / name) != before[name], f"{name} was not written again"


def test_killed_during_finalize_is_not_loadable_and_resumes_to_the_same_bytes(photos, clean, tmp_path):
    """Killed with its side files staged, before the manifest: neither augbeam's reader nor TFDS loads the folder."""
    import tensorflow_datasets as tfds

    from pipeline.format.reader import ReaderError, load

    out = tmp_path / "out"
    staged = out / WORK_DIR / STAGED_DIR
    kill_at(
        command(photos, out),
        tmp_path / "killed.txt",
        reached=lambda pgid: (staged / "dataset_info.json").exists(),
        still=lambda: not (out / "manifest.json").exists(),
        reset=lambda: shutil.rmtree(out),
    )
    assert not {"dataset_info.json", "features.json", "report.html"} & {p.name for p in out.iterdir()}
    with pytest.raises(ReaderError, match="has no manifest.json"):
        load(str(out), split="train")
    with pytest.raises(Exception):  # noqa: B017, PT011  TFDS's own error: the folder has no dataset_info.json
        tfds.builder_from_directory(str(out))
    assert not list((tmp_path / "tmp").glob("beam-pipeline-temp*"))  # Beam's, dropped as soon as it was made
    shards = [name for key in ALL_SHARDS for name in shard_files(*key)]
    before = {name: identity(out / name) for name in shards}  # every shard was complete
    code, err = finish(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    assert code == 0, err[-4000:]
    assert_same_output(out, clean.files)
    assert {name: identity(out / name) for name in shards} == before, "a complete shard was written again"


def test_killed_before_any_shard_then_killed_again_resumes_to_the_same_bytes(photos, clean, tmp_path):
    """Killed while the workers list the input (no plan yet), then the resumed run killed once planned, then resumed."""
    out = tmp_path / "out"
    plan = out / WORK_DIR / "run.json"
    workers = kill_at(
        command(photos, out),
        tmp_path / "killed-1.txt",
        reached=lambda pgid: out.exists() and len(group_members(pgid)) > 1,  # worker processes started
        still=lambda: not plan.exists(),
        reset=lambda: shutil.rmtree(out, ignore_errors=True),
        poll_s=0.02,
    )
    assert workers >= 2
    written = [p for p in out.rglob("*") if p.is_file() and ".tmp-" not in p.name and p.name != LOCK_FILE]
    assert not written  # at most a half-written plan, and the killed run's lock
    kill_at(
        command(photos, out, "--resume"),
        tmp_path / "killed-2.txt",
        reached=lambda pgid: plan.exists(),
        still=lambda: plan.exists() and not summary_count(out),
        reset=None,
    )
    assert not list(out.glob("*.tfrecord"))
    code, err = finish(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    assert code == 0, err[-4000:]
    assert_same_output(out, clean.files)


def test_tampered_kept_shards_are_written_again(killed_writing, photos, clean, tmp_path):
    """A kept shard whose file no longer has the bytes its summary names, or is gone, is rendered again."""
    out = copy_of(killed_writing, tmp_path)
    kept = sorted((s.split, s.shard, s.info.records) for s in summaries(out))
    changed, deleted = kept[0], kept[1]
    # One byte of the shard (or of its index part, when the shard has no records): same size, other checksum.
    target = out / shard_files(*changed[:2])[0 if changed[2] else 1]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    (out / shard_files(*deleted[:2])[0]).unlink()
    before = {p.name: identity(p) for p in out.iterdir() if p.is_file()}
    code, err = finish(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    assert code == 0, err[-4000:]
    assert_same_output(out, clean.files)
    for split, shard, _ in kept[:2]:
        for name in shard_files(split, shard):
            assert name not in before or identity(out / name) != before[name], f"{name} was kept though tampered"
    for split, shard, _ in kept[2:]:
        for name in shard_files(split, shard):
            assert identity(out / name) == before[name], f"{name} was written again; its shard was complete"


def test_a_run_killed_while_writing_its_plan_is_resumed_afresh(photos, tmp_path):
    """Killed between making the work folder and renaming run.json into it (too short a window for a real kill)."""
    from pipeline.errors import UserError
    from pipeline.job.listing import open_source
    from pipeline.job.options import JobConfig
    from pipeline.job.prepare import check_output

    out = tmp_path / "out"
    (out / WORK_DIR).mkdir(parents=True)
    (out / WORK_DIR / f"run.json.tmp-{'ab' * 16}").write_bytes(b'{"plan": {"ro')
    config = JobConfig.create(input=str(photos), output=str(out), resume=True)
    check_output(config, open_source(config.input, config.classes))  # not refused: nothing to keep, it starts afresh
    (out / "notes.txt").write_text("not augbeam's")
    with pytest.raises(UserError, match="holds no unfinished augbeam run to resume"):
        check_output(config, open_source(config.input, config.classes))


# --- refused: one line, exit code 2, the folder untouched --------------------------------------------------------


def test_a_different_config_is_refused_naming_the_option(killed_writing, photos, tmp_path):
    out = copy_of(killed_writing, tmp_path)
    before = all_files(out)
    line, err = refused(command(photos, out, "--resume", seed=2), tmp_path / "stderr.txt")
    assert "config differs" in line and "seed (then 1, now 2)" in line, line
    assert err.strip() == line  # nothing else: no traceback, no log
    assert all_files(out) == before


def test_another_augbeam_version_is_refused(killed_writing, photos, tmp_path):
    out = copy_of(killed_writing, tmp_path)
    plan = out / WORK_DIR / "run.json"
    info = json.loads(plan.read_text())
    info["augbeam"] = "0.0.1"
    plan.write_text(json.dumps(info))
    before = all_files(out)
    line, err = refused(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    assert "made by augbeam 0.0.1" in line, line
    assert err.strip() == line
    assert all_files(out) == before


@pytest.mark.parametrize("change", ["added", "relabelled"])
def test_a_different_input_listing_is_refused(killed_writing, photos, tmp_path, change):
    """Checked on a worker once the listing is known; a file moved to another class has the same counts."""
    out = copy_of(killed_writing, tmp_path)
    before = all_files(out)
    src = photos / "train" / "everyday" / "horse.png"
    moved = photos / "train" / "textures" / "horse.png"
    added = photos / "train" / "everyday" / "horse-again.png"
    if change == "added":
        shutil.copy(src, added)
    else:
        src.rename(moved)
    try:
        line, err = refused(command(photos, out, "--resume"), tmp_path / "stderr.txt")
    finally:
        if change == "added":
            added.unlink()
        else:
            moved.rename(src)
    assert "input listing differs" in line, line
    assert all_files(out) == before
    # Refused on a worker process: neither its log nor its harness nor the driver's relay of its log shows the
    # refusal again, with or without a traceback; at most the progress lines come before the one line.
    others = [other for other in err.strip().splitlines() if other != line and other not in progress_lines(err)]
    assert others == [], err


def test_a_finished_run_is_not_resumed(clean, photos, tmp_path):
    line, err = refused(command(photos, clean.out, "--resume"), tmp_path / "stderr.txt")
    assert "holds a finished run (manifest.json): nothing to resume" in line, line
    assert err.strip() == line
    assert all_files(clean.out) == clean.files


def test_resume_and_overwrite_together_are_refused(killed_writing, photos, tmp_path):
    out = copy_of(killed_writing, tmp_path)
    before = all_files(out)
    line, err = refused(command(photos, out, "--resume", "--overwrite"), tmp_path / "stderr.txt")
    assert "pass one of them" in line, line
    assert err.strip() == line
    assert all_files(out) == before


def test_a_run_killed_after_its_manifest_is_resumed(killed_writing, clean, photos, tmp_path):
    """Killed between the manifest and the end of finalize (too short a window for a real kill): the plan is still
    there, so --resume finishes it; once the work folder is gone the run is finished and nothing is resumed."""
    from pipeline.errors import UserError
    from pipeline.job.listing import open_source
    from pipeline.job.options import JobConfig
    from pipeline.job.prepare import check_output

    out = copy_of(killed_writing, tmp_path)
    shutil.copy(clean.out / "manifest.json", out / "manifest.json")
    config = JobConfig.create(
        input=str(photos), output=str(out), image_size=(32, 32), copies=2, num_shards=SHARDS, seed=1, resume=True
    )
    source = open_source(config.input, config.classes)
    check_output(config, source)  # not refused: resumable
    shutil.rmtree(out / WORK_DIR)
    with pytest.raises(UserError, match=r"holds a finished run \(manifest.json\): nothing to resume"):
        check_output(config, source)
