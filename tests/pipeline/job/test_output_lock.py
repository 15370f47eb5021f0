"""pipeline/job/output_lock.py on real lock files: a live holder refuses, a gone one (killed, pid reused, machine
rebooted, another host's stale heartbeat) is taken over, of runs racing for a gone lock exactly one wins, and a
holder keeps its heartbeat and gives back only its own lock. Holders are real processes: a subprocess killed with
SIGKILL, and forked racers. The whole job's use of it is in tests/test_output_lock.py.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.errors import OutputInUse, OutputTaken
from pipeline.job.output_lock import LOCK_FILE, Holder, OutputLock, gone_reason, this_process
from tests.helpers import ROOT, DirFileSystem  # noqa: F401  (registers dirfs:// with Beam)

HOLD = """
import sys, time
from pipeline.job.output_lock import OutputLock
lock = OutputLock.take(sys.argv[1])
print(lock.token, flush=True)
time.sleep(600)
"""


def write_lock(out: Path, holder: Holder, age_s: float = 0.0) -> Path:
    """A lock file naming ``holder``, last touched ``age_s`` ago."""
    path = out / LOCK_FILE
    path.write_text(json.dumps(holder.to_json()))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_a_live_holder_is_named_and_a_killed_one_is_taken_over(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        token = holder.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert token, "the holder did not take the lock"
        with pytest.raises(OutputInUse) as refused:
            OutputLock.take(str(tmp_path))
        message = str(refused.value)
        held = Holder.from_bytes((tmp_path / LOCK_FILE).read_bytes())
        assert held is not None and held.token == token and held.pid == holder.pid
        assert f"--output {str(tmp_path)!r} is being written by another augbeam run" in message
        assert f"(host {socket.gethostname()}, pid {holder.pid}, started {held.started})" in message
        assert f"kill {holder.pid}" in message and "\n" not in message
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    said: list[str] = []
    with OutputLock.take(str(tmp_path), say=said.append) as lock:
        assert Holder.from_bytes((tmp_path / LOCK_FILE).read_bytes()) == lock.holder
    assert said == [
        f"augbeam: --output {str(tmp_path)!r} was locked by a run that is gone ({held.describe()}: "
        f"process {holder.pid} is not running); taking its lock over"
    ]
    assert not (tmp_path / LOCK_FILE).exists()  # given back


def test_a_reused_pid_or_another_boot_means_the_holder_is_gone(tmp_path):
    me = this_process()  # this process: alive, with its real start
    assert gone_reason(me, 0.0) is None
    reused = Holder(me.host, me.pid, me.started, "a" * 32, me.boot_id, (me.pid_start or 0) - 1, me.pid_ns)
    assert gone_reason(reused, 0.0) == f"pid {me.pid} now belongs to a process started later"
    rebooted = Holder(me.host, me.pid, me.started, "b" * 32, "another-boot", me.pid_start, me.pid_ns)
    if me.boot_id:  # Linux
        assert gone_reason(rebooted, 0.0) == "the machine has restarted since"
    # A container on this host with its own pids: a pid not running here says nothing; its heartbeat decides.
    dead = subprocess.Popen(["true"])
    dead.wait()
    contained = Holder(me.host, dead.pid, me.started, "c" * 32, me.boot_id, None, "pid:[1]")
    assert gone_reason(contained, 30.0) is None
    assert gone_reason(contained, 600.0) == "its heartbeat is 600 s old, over 120 s"
    for same in (me.pid_ns, None):  # None: a lock that does not say (written where it is unknown)
        assert gone_reason(dataclasses.replace(contained, pid_ns=same), 30.0) == f"process {dead.pid} is not running"
    said: list[str] = []
    write_lock(tmp_path, reused)
    with OutputLock.take(str(tmp_path), say=said.append):
        pass
    assert len(said) == 1 and "now belongs to a process started later" in said[0]


def test_another_hosts_lock_is_judged_by_its_heartbeat(tmp_path):
    other = Holder("elsewhere", 4242, "2030-01-02 03:04:05 UTC", "c" * 32)
    path = write_lock(tmp_path, other, age_s=30.0)
    with pytest.raises(OutputInUse) as refused:
        OutputLock.take(str(tmp_path))
    message = str(refused.value)
    assert "(host elsewhere, pid 4242, started 2030-01-02 03:04:05 UTC)" in message
    assert f"taken over once untouched for 120 s (or delete {path})" in message
    assert Holder.from_bytes(path.read_bytes()) == other  # not touched
    write_lock(tmp_path, other, age_s=600.0)
    said: list[str] = []
    with OutputLock.take(str(tmp_path), say=said.append):
        pass
    assert len(said) == 1 and "its heartbeat is 600 s old, over 120 s" in said[0]


def test_an_unreadable_lock_is_refused_until_stale(tmp_path):
    """A lock file that stays empty: its holder died between creating and writing it."""
    path = tmp_path / LOCK_FILE
    path.write_bytes(b"")
    with pytest.raises(OutputInUse, match="another augbeam run \\(an unreadable lock file\\)"):
        OutputLock.take(str(tmp_path))
    old = time.time() - 600
    os.utime(path, (old, old))
    with OutputLock.take(str(tmp_path), say=lambda line: None) as lock:
        assert Holder.from_bytes(path.read_bytes()) == lock.holder


def test_the_holder_keeps_its_heartbeat_and_gives_back_only_its_own_lock(tmp_path):
    path = tmp_path / LOCK_FILE
    lock = OutputLock.take(str(tmp_path), heartbeat_s=0.05)
    try:
        old = time.time() - 600
        os.utime(path, (old, old))
        deadline = time.monotonic() + 10
        while time.time() - path.stat().st_mtime > 60:
            assert time.monotonic() < deadline, "the heartbeat did not touch the lock"
            time.sleep(0.02)
        lock.check_held()
        other = Holder("elsewhere", 1, "then", "d" * 32)
        write_lock(tmp_path, other)  # taken over meanwhile (its holder judged this one gone)
        with pytest.raises(OutputTaken, match="was taken over by another run \\(host elsewhere, pid 1"):
            lock.check_held()
    finally:
        lock.release()
    assert Holder.from_bytes(path.read_bytes()) == Holder("elsewhere", 1, "then", "d" * 32)  # not removed
    path.unlink()
    with pytest.raises(OutputTaken, match="lock \\(.augbeam-lock\\) was removed while it ran"):
        lock.check_held()


def _race(out: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue, done) -> None:
    """One racer: waits for the others, takes the lock or is refused, reports, and lives until told."""
    start.wait()
    try:
        lock = OutputLock.take(out, say=lambda line: None)
        results.put(("won", os.getpid(), lock.token))
    except OutputInUse as exc:
        results.put(("refused", os.getpid(), str(exc)))
    done.wait(60)


@pytest.mark.skipif(sys.platform != "linux", reason="forks racers")
def test_of_runs_racing_for_a_gone_lock_exactly_one_gets_it(tmp_path):
    ctx = multiprocessing.get_context("fork")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is not running
    me = this_process()
    racers = 6
    for _round in range(3):
        out = tmp_path / f"round{_round}"
        out.mkdir()
        write_lock(out, Holder(me.host, dead.pid, "then", "e" * 32, me.boot_id, None, me.pid_ns))
        start, done, results = ctx.Barrier(racers), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(out), start, results, done)) for _ in range(racers)]
        for p in procs:
            p.start()
        try:
            got = [results.get(timeout=60) for _ in range(racers)]
        finally:
            done.set()
            for p in procs:
                p.join(30)
        winners = [g for g in got if g[0] == "won"]
        assert len(winners) == 1, got
        _, pid, token = winners[0]
        for outcome, _pid, message in got:
            if outcome == "refused":
                assert f"pid {pid}," in message, message  # each loser names the winner
        # The winner has exited since without giving it back (a forked racer): its lock names it, nothing else.
        assert json.loads((out / LOCK_FILE).read_text())["token"] == token
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # no file moved aside is left


def test_on_an_object_store_a_live_lock_refuses_and_a_read_back_settles_two_writers(tmp_path):
    """Through Beam's FileSystems on ``dirfs://`` (tests/helpers.py): an object store's API, no create-if-absent."""
    folder = tmp_path / "out"
    folder.mkdir()
    out = f"dirfs://{folder}"
    with OutputLock.take(out, settle_s=0.05) as lock:
        assert Holder.from_bytes((folder / LOCK_FILE).read_bytes()) == lock.holder
        with pytest.raises(OutputInUse, match=f"pid {os.getpid()}, started"):
            OutputLock.take(out, settle_s=0.05)
        lock.check_held()
    assert not (folder / LOCK_FILE).exists()
    write_lock(folder, Holder("elsewhere", 9, "then", "f" * 32), age_s=600.0)
    said: list[str] = []
    with OutputLock.take(out, say=said.append, settle_s=0.05):
        pass
    assert len(said) == 1 and "its heartbeat is 600 s old" in said[0]

    start = threading.Barrier(2)
    results: list[object] = []

    def racer() -> None:
        start.wait()
        try:
            results.append(OutputLock.take(out, settle_s=0.3))
        except OutputInUse as exc:
            results.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, OutputLock)]
    assert len(won) == 1 and len(results) == 2, results
    assert Holder.from_bytes((folder / LOCK_FILE).read_bytes()) == won[0].holder
    won[0].release()
    assert not (folder / LOCK_FILE).exists()


TAKE_EACH = """
import os, sys
from pipeline.errors import UserError
from pipeline.job.output_lock import LOCK_FILE, OutputLock
for out in sys.argv[1:]:
    try:
        OutputLock.take(out).release()
        print("taken")
    except UserError as exc:
        print(exc, "| left:", os.listdir(out))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_folder_it_cannot_write_its_lock_in_fails_in_one_line(tmp_path):
    """A read-only mount and a full disk (a 16 KiB tmpfs, filled), in a user and mount namespace."""
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    script = tmp_path / "take.py"
    script.write_text(TAKE_EACH)
    shell = (
        f"mount --bind -o ro {ro} {ro} && mount -t tmpfs -o size=16k tmpfs {full} && "
        f"(cat /dev/zero > {full}/filler 2>/dev/null; true) && {sys.executable} {script} {ro} {full}"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", shell]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no user namespaces here: {done.stderr.strip()}")
    # The words of every other write's fault (``storage_faults``), naming the lock file and the output.
    assert done.stdout.splitlines() == [
        f"cannot write {str(ro / LOCK_FILE)!r} (--output {str(ro)!r}): the filesystem is read-only; choose a "
        "writable --output (or remount it read-write), then run again | left: []",
        f"cannot write {str(full / LOCK_FILE)!r} (--output {str(full)!r}): no space left on the device; free space "
        "there or choose another --output, then run again | left: ['filler']",
    ], done.stderr
