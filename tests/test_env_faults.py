"""The environment's faults, as they happen: a real full tmpfs, a read-only remount, a folder this user may not write.

Each job is ``python -m pipeline run`` in its own process group. The size-limited tmpfs is mounted in a user and
mount namespace (``unshare --user --map-root-user --mount``, which needs no root), held by a ``sleep`` for the test,
and every job runs inside it through ``nsenter``; the test reads and fills the tmpfs through ``/proc/<holder>/root``.
The disk fills at a chosen point: the test polls the output, freezes the job's whole group (SIGSTOP), writes a
filler file until the tmpfs has no byte left, and lets the job go on (SIGCONT). Linux only.

Every failure must be one line (exit code 2, no traceback) naming the path and the fix, leave no manifest and no
TFDS metadata beside the shards, and no process of the job's group; a rerun with ``--resume`` once space is freed
must give the clean run's bytes, keeping the shards that were complete.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.job.output_lock import LOCK_FILE
from pipeline.job.shard import WORK_DIR
from tests.helpers import ROOT, all_files, cli_args, group_members, process_stat, wait_job

JOB_TIMEOUT_S = 300.0
TMPFS_SIZE = "32m"
SHARDS = 6  # the clean fixture's run: 3 shards per split, train and validation
IN_PROCESS = ["--direct_num_workers=1"]
WORKER_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _namespaces_work() -> bool:
    if not (shutil.which("unshare") and shutil.which("nsenter") and Path("/proc/self/stat").exists()):
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(), reason="needs user and mount namespaces (Linux)")


class Namespace:
    """A tmpfs at ``mount`` seen only inside a user+mount namespace held by a sleeping process."""

    def __init__(self, mount: Path, size: str) -> None:
        mount.mkdir(parents=True)
        self.mount = mount
        self.holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
             f'mount -t tmpfs -o size={size} tmpfs "{mount}" && echo ready && exec sleep 600'],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert self.holder.stdout is not None and self.holder.stdout.readline() == b"ready\n"

    def view(self, path: Path) -> Path:
        """``path`` as the namespace sees it (on the tmpfs), from outside."""
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "--user", "--mount", "--preserve-credentials", *argv]

    def sh(self, script: str) -> None:
        subprocess.run(self.command(["sh", "-c", script]), check=True, timeout=60)

    def fill(self) -> int:
        """Writes a filler file until the tmpfs is full; returns its size."""
        filler = self.view(self.mount / "filler")
        written = 0
        try:  # unbuffered: ENOSPC comes from open() (the job filled it already) or write(), never from close()
            with filler.open("ab", buffering=0) as handle:
                while True:
                    written += handle.write(b"\0" * (1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        return written

    def free(self) -> None:
        self.view(self.mount / "filler").unlink(missing_ok=True)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def namespace(tmp_path) -> Iterator[Namespace]:
    ns = Namespace(tmp_path / "mnt", TMPFS_SIZE)
    try:
        yield ns
    finally:
        ns.close()


def job_argv(src: Path, out: Path, *extra: str, beam: list[str]) -> list[str]:
    """The clean fixture's config (``cli_args`` with 2 copies), as a command line."""
    args = cli_args(src, out)
    args[args.index("--copies") + 1] = "2"
    return [sys.executable, "-m", "pipeline", *args, *extra, "--progress", "none", "--", *beam]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    with log.open("wb") as err:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def wait_stopped(pgid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all((st := process_stat(pid)) is not None and st[0] in "tT" for pid in group_members(pgid)):
            return
        time.sleep(0.01)
    pytest.fail(f"the job's group {pgid} did not stop")


def ended(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    """Waits for the job; (exit code, stderr); no process of its group may be left."""
    code = wait_job(proc, JOB_TIMEOUT_S)
    deadline = time.monotonic() + 30
    while (left := group_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the failed job's group outlived it: {left}"
    return code, log.read_text(errors="replace")


def fill_when(ns: Namespace, argv: list[str], log: Path, reached: Callable[[], bool], still: Callable[[], bool]) -> str:
    """Runs the job; once ``reached()``, freezes it, fills the disk (if ``still()``) and lets it go on; its one line."""
    proc = start(argv, log)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while proc.poll() is None and not reached():
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.005)
    assert proc.poll() is None, f"the job ended before the point to fill the disk:\n{log.read_text()[-4000:]}"
    os.killpg(proc.pid, signal.SIGSTOP)
    wait_stopped(proc.pid)
    assert still(), "the job got past the point to fill the disk before it was frozen"
    ns.fill()
    os.killpg(proc.pid, signal.SIGCONT)
    return one_line(*ended(proc, log))


def one_line(code: int, err: str) -> str:
    """The run failed with exit code 2 and printed one line (besides the runner's own line), no traceback."""
    lines = [line for line in err.splitlines() if not line.startswith("augbeam: DirectRunner with")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("augbeam: error: "), f"exit {code}:\n{err[-4000:]}"
    assert "Traceback" not in err and "augbeam-refused" not in err
    return lines[0]


def summaries(out: Path) -> set[str]:
    folder = out / WORK_DIR / "summaries"
    return {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()


def beside_the_shards(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_file()}


def assert_not_loadable(out: Path) -> None:
    """Neither augbeam's reader nor TensorFlow Datasets takes the folder for a dataset."""
    import tensorflow_datasets as tfds

    from pipeline.format.reader import ReaderError, load

    with pytest.raises(ReaderError, match="has no manifest.json"):
        load(str(out), split="train")
    with pytest.raises(Exception):  # noqa: B017, PT011  TFDS raises its own types (no dataset_info.json)
        tfds.builder_from_directory(str(out))


def identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_a_full_disk_fails_in_one_line_wherever_it_fills_and_resume_completes(
    namespace, photos_with_bad, clean, tmp_path
):
    """Full while worker processes write shards, while the in-process worker does, during finalize; then resumed."""
    ns = namespace
    out = ns.mount / "out"
    view = ns.view(out)
    total = SHARDS

    def run(*extra: str, beam: list[str]) -> list[str]:
        return ns.command(job_argv(photos_with_bad, out, *extra, beam=beam))

    # 1. Worker processes (the default local mode) writing shards.
    line = fill_when(
        ns,
        run(beam=WORKER_PROCESSES),
        tmp_path / "1.txt",
        reached=lambda: len(summaries(view)) >= 1,
        still=lambda: len(summaries(view)) < total,
    )
    assert "no space left on the device" in line and f"(--output {str(out)!r})" in line, line
    assert line.endswith("free space there or choose another --output, then rerun with --resume (the finished shards "
                         "are kept)"), line  # fmt: skip
    kept = {name.replace(".json", ".tfrecord"): identity(view / name.replace(".json", ".tfrecord"))
            for name in summaries(view)}  # fmt: skip
    assert not {"manifest.json", "dataset_info.json"} & beside_the_shards(view)
    ns.free()

    # 2. The in-process worker writing shards (a resumed run: the complete shards are kept, the rest written).
    line = fill_when(
        ns,
        run("--resume", beam=IN_PROCESS),
        tmp_path / "2.txt",
        reached=lambda: len(summaries(view)) > len(kept),
        still=lambda: len(summaries(view)) < total,
    )
    assert "no space left on the device" in line and str(out) in line, line
    assert not {"manifest.json", "dataset_info.json"} & beside_the_shards(view)
    ns.free()

    # 3. Finalize: every shard is written, the report is being drawn.
    line = fill_when(
        ns,
        run("--resume", beam=IN_PROCESS),
        tmp_path / "3.txt",
        reached=lambda: len(summaries(view)) == total,
        still=lambda: not (view / "manifest.json").exists(),
    )
    assert "no space left on the device" in line and f"{str(out)!r}" in line, line
    assert not {"manifest.json", "dataset_info.json", "features.json", "report.html"} & beside_the_shards(view)
    assert_not_loadable(view)
    shards = sorted(name for name in beside_the_shards(view) if name.endswith(".tfrecord"))
    before = {name: identity(view / name) for name in shards}
    assert len(shards) == total
    ns.free()

    # 4. Space freed: --resume completes to the clean run's bytes, the complete shards untouched.
    code, err = ended(start(run("--resume", beam=IN_PROCESS), tmp_path / "4.txt"), tmp_path / "4.txt")
    assert code == 0, err[-4000:]
    got = all_files(view)
    assert got == all_files(clean), sorted(set(got) ^ set(all_files(clean)))
    assert {name: identity(view / name) for name in shards} == before
    assert kept and {name: identity(view / name) for name in kept} == kept  # complete since the first run


def test_a_read_only_output_fails_before_any_work(namespace, photos_with_bad, tmp_path):
    ns = namespace
    out = ns.mount / "out"
    ns.sh(f'mkdir "{out}" && mount -o remount,ro "{ns.mount}"')
    proc = start(ns.command(job_argv(photos_with_bad, out, beam=IN_PROCESS)), tmp_path / "ro.txt")
    line = one_line(*ended(proc, tmp_path / "ro.txt"))
    assert f"cannot write {str(out / LOCK_FILE)!r} (--output {str(out)!r}): the filesystem is read-only" in line, line
    assert "choose a writable --output (or remount it read-write), then run again" in line
    assert not list(ns.view(out).iterdir())


def test_an_output_this_user_may_not_write_fails_before_any_work(photos_with_bad, tmp_path):
    """Root ignores mode bits: as root, the folder belongs to a uid the job's user namespace does not map."""
    parent = tmp_path / "theirs"
    parent.mkdir()
    argv = job_argv(photos_with_bad, parent / "out", beam=IN_PROCESS)
    if os.geteuid() == 0:
        os.chown(parent, 65534, 65534)
        argv = ["unshare", "--user", "--map-root-user", *argv]
    else:
        parent.chmod(0o555)
    try:
        line = one_line(*ended(start(argv, tmp_path / "err.txt"), tmp_path / "err.txt"))
    finally:
        parent.chmod(0o755)
    out = str(parent / "out")
    assert f"cannot write --output {out!r}: permission denied; give this user write access there" in line, line
    assert not (parent / "out").exists()
