"""One writer per output folder: a lock file in it, taken atomically before the run looks at the folder.

``augbeam run`` takes ``DST/.augbeam-lock`` before it reads what the folder holds (so before ``--overwrite``
deletes anything and before the work folder is written), and gives it back when the run ends, failed or not.
The file says who holds it (``Holder``: host, pid, start time, the pid's start in clock ticks, the machine's
boot id, the pid namespace, a random token), and the holder refreshes its modification time every
``HEARTBEAT_S``. Another run finds it and is refused in one line naming the holder, unless the holder is
gone: on the same host, its process is not running, or the pid now belongs to a process started later, or
the machine booted since; on another host (a shared disk) or in another pid namespace, its heartbeat is
older than ``STALE_S``. A gone holder's lock is taken over, and the run says so on stderr (a ``--resume``
after a SIGKILL does exactly this).

On a local disk (a network mount too) the lock is created with ``O_CREAT | O_EXCL``, and a gone holder's lock
is first renamed aside and checked to be the one judged gone, so of several runs at once exactly one gets it.
Beam's FileSystems offer no create-if-absent for object stores (gs://, s3://...): there a run checks for a
live lock, writes its own, waits ``SETTLE_S`` and reads it back, which leaves a window (see
docs/reliability.md, "One writer per output folder").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pipeline import fsutil
from pipeline.errors import OutputInUse, OutputTaken, UserError

LOCK_FILE = ".augbeam-lock"
HEARTBEAT_S = 15.0  # how often a live holder touches its lock file
# A holder on another host is gone once its heartbeat is this old: 8 missed beats, and room for clocks that
# differ by a minute between the hosts that share the disk.
STALE_S = 120.0
SETTLE_S = 1.0  # object stores: how long a run waits before reading its lock back
TAKE_TRIES = 8  # rounds of create / judge / move aside before giving up on a contended lock
READ_TRIES = 10  # a lock file just created reads empty until its holder has written it: retry for about 0.5 s
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the lock file says, enough to name the run and to tell whether it is gone."""

    host: str
    pid: int
    started: str  # when it took the lock, UTC, for people
    token: str  # random per run: tells this run's lock from any other
    boot_id: str | None = None  # the host's boot (Linux); another boot means the holder died with the machine
    pid_start: int | None = None  # the pid's start in clock ticks since boot (Linux), against a reused pid
    pid_ns: str | None = None  # the pid namespace (Linux): a container's pids mean nothing outside it

    def describe(self) -> str:
        if not self.token:
            return "an unreadable lock file"
        return f"host {self.host}, pid {self.pid}, started {self.started}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Holder | None:
        """The holder a lock file names; None for a file that is not (yet) a whole lock record."""
        try:
            raw = json.loads(data)
            return cls(
                host=str(raw["host"]),
                pid=int(raw["pid"]),
                started=str(raw["started"]),
                token=str(raw["token"]),
                boot_id=raw.get("boot_id"),
                pid_start=raw.get("pid_start"),
                pid_ns=raw.get("pid_ns"),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None


UNREADABLE = Holder(host="", pid=0, started="", token="")


def this_process() -> Holder:
    """A new holder record for this process, with a fresh token."""
    pid = os.getpid()
    stat = _process_stat(pid)
    return Holder(
        host=socket.gethostname(),
        pid=pid,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        token=uuid.uuid4().hex,
        boot_id=_boot_id(),
        pid_start=stat[1] if stat else None,
        pid_ns=_pid_namespace(),
    )


def _boot_id() -> str | None:
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state, start in clock ticks since boot) of a process from /proc; None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", -1)
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return fields[0], int(fields[19])


def _running(pid: int) -> tuple[bool, int | None]:
    """(is the process running, its start in clock ticks or None when unknown)."""
    if os.path.isdir("/proc/self"):
        stat = _process_stat(pid)
        if stat is None or stat[0] in "ZXx":  # a zombie has died: only its exit status is left
            return False, None
        return True, stat[1] if stat[1] >= 0 else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, None
    except PermissionError:
        pass  # it exists, as another user's process
    return True, None


def _pids_comparable(holder: Holder) -> bool:
    """Whether the holder's pid names a process here: same host name, and same pid namespace where both are known."""
    if not holder.token or holder.host != socket.gethostname():
        return False
    here = _pid_namespace()
    return holder.pid_ns is None or here is None or holder.pid_ns == here


def gone_reason(holder: Holder, age_s: float | None, stale_s: float = STALE_S) -> str | None:
    """Why the lock's holder is certainly gone, or None when it may still be running.

    ``age_s`` is how long ago the lock file was last touched (its heartbeat), None when unknown. Its pid
    is looked at only where it means the same process: the same host name and pid namespace (two
    containers may share both a host name and a disk).
    """
    if _pids_comparable(holder):
        boot = _boot_id()
        if holder.boot_id and boot and holder.boot_id != boot:
            return "the machine has restarted since"
        running, start = _running(holder.pid)
        if not running:
            return f"process {holder.pid} is not running"
        if holder.pid_start is not None and start is not None and start != holder.pid_start:
            return f"pid {holder.pid} now belongs to a process started later"
        return None
    if age_s is not None and age_s > stale_s:
        return f"its heartbeat is {age_s:.0f} s old, over {stale_s:.0f} s"
    return None


def lock_path(output: str) -> str:
    return fsutil.join(output, LOCK_FILE)


class OutputLock:
    """This run's hold on ``DST/.augbeam-lock``: taken by ``take``, refreshed while held, given back by ``release``."""

    def __init__(self, output: str, holder: Holder, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.output = output
        self.path = lock_path(output)
        self.holder = holder
        self.data = (json.dumps(holder.to_json(), sort_keys=True) + "\n").encode()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat_s,), name="augbeam-lock", daemon=True)

    @property
    def token(self) -> str:
        """This run's random token; the work folder's ``run.json`` carries it too."""
        return self.holder.token

    @classmethod
    def take(
        cls,
        output: str,
        heartbeat_s: float = HEARTBEAT_S,
        stale_s: float = STALE_S,
        say: Callable[[str], None] = _say,
        settle_s: float = SETTLE_S,
    ) -> OutputLock:
        """Takes the folder's lock (the folder must exist), or raises ``OutputInUse`` naming the live holder."""
        lock = cls(output, this_process(), heartbeat_s)
        if fsutil.is_local(output):
            lock._take_local(stale_s, say)
        else:
            lock._take_shared(stale_s, say, settle_s)
        lock._beat.start()
        return lock

    # --- taking it ----------------------------------------------------------------------------------------------

    def _take_local(self, stale_s: float, say: Callable[[str], None]) -> None:
        for _ in range(TAKE_TRIES):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            except OSError as exc:
                raise self._unwritable(exc) from None
            else:
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(self.data)
                        handle.flush()
                        os.fsync(handle.fileno())
                except OSError as exc:  # a full disk: no half-written lock is left to refuse the next run
                    with contextlib.suppress(OSError):
                        os.remove(self.path)
                    raise self._unwritable(exc) from None
                return
            found = self._read()
            if found is None:
                continue  # given back meanwhile: try again
            data, holder, age = found
            reason = gone_reason(holder, age, stale_s)
            if reason is None:
                raise OutputInUse(self._refusal(holder, stale_s))
            if self._move_aside_if(data):
                say(self._takeover(holder, reason))
        raise OutputInUse(
            f"--output {self.output!r}: other runs keep taking and giving back its lock ({self.path}); "
            "start one run at a time"
        )

    def _move_aside_if(self, judged: bytes) -> bool:
        """Removes the lock file if it still holds ``judged`` (the gone holder's bytes); False if it changed.

        A rename is atomic: of several runs taking over one gone holder, one moves it; the others find no
        file, or the winner's new lock, which they must not remove: a lock moved aside by mistake is linked back.
        """
        aside = f"{self.path}.gone-{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            with open(aside, "rb") as handle:
                moved = handle.read()
            if moved == judged:
                return True
            try:
                os.link(aside, self.path)  # not the gone one: give it back, unless yet another run took the name
            except OSError:
                pass
            return False
        finally:
            os.remove(aside)

    def _take_shared(self, stale_s: float, say: Callable[[str], None], settle_s: float) -> None:
        found = self._read()
        if found is not None:
            _data, holder, age = found
            reason = gone_reason(holder, age, stale_s)
            if reason is None:
                raise OutputInUse(self._refusal(holder, stale_s))
            say(self._takeover(holder, reason))
        self._write_shared()
        time.sleep(settle_s)  # a run that checked in the same moment and wrote after us has overwritten ours
        found = self._read()
        if found is None or found[1].token != self.token:
            other = found[1] if found is not None else UNREADABLE
            raise OutputInUse(self._refusal(other, stale_s))

    def _write_shared(self) -> None:
        with fsutil.open_write(self.path) as handle:
            handle.write(self.data)

    # --- holding it ---------------------------------------------------------------------------------------------

    def _read(self) -> tuple[bytes, Holder, float | None] | None:
        """(bytes, holder, heartbeat age in s) of the lock file; None when there is none."""
        for attempt in range(READ_TRIES):
            try:
                data = fsutil.read_bytes(self.path)
                age = self._age()
            except FileNotFoundError:
                return None
            except Exception:
                if not fsutil.exists(self.path):  # object stores' clients raise their own errors for a missing object
                    return None
                raise
            holder = Holder.from_bytes(data)
            if holder is not None:
                return data, holder, age
            if attempt + 1 == READ_TRIES:
                return data, UNREADABLE, age  # judged by its age alone
            time.sleep(0.05)  # created, not yet written
        return None

    def _age(self) -> float | None:
        """Seconds since the lock file was last written or touched (its heartbeat); None when unknown."""
        if fsutil.is_local(self.path):
            return time.time() - os.stat(self.path).st_mtime
        from apache_beam.io.filesystems import FileSystems

        try:
            return time.time() - float(FileSystems.last_updated(self.path))
        except Exception:  # a filesystem without update times: no heartbeat to judge by
            return None

    def _heartbeat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                found = self._read()
                if found is None or found[1].token != self.token:
                    continue  # not ours (any more): ``check_held`` says so before the manifest
                if fsutil.is_local(self.path):
                    os.utime(self.path)
                else:
                    self._write_shared()
            except Exception:  # a missed beat is not fatal; a lost lock is found by ``check_held``
                continue

    def check_held(self) -> None:
        """Raises ``OutputTaken`` unless the lock file still names this run."""
        found = self._read()
        if found is not None and found[1].token == self.token:
            return
        what = "removed" if found is None else f"taken over by another run ({found[1].describe()})"
        raise OutputTaken(
            f"--output {self.output!r}: this run's lock ({LOCK_FILE}) was {what} while it ran, so its output "
            "may be mixed with another run's; no manifest was written. Run one job at a time into a folder, "
            "then rerun with --overwrite"
        )

    def release(self) -> None:
        """Stops the heartbeat and removes the lock file if it is still this run's."""
        self._stop.set()
        if self._beat.is_alive():
            self._beat.join(timeout=5.0)
        try:
            found = self._read()
            if found is not None and found[1].token == self.token:
                fsutil.delete(self.path)
        except OSError:
            pass  # already gone, or the folder with it

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- messages -----------------------------------------------------------------------------------------------

    def _refusal(self, holder: Holder, stale_s: float) -> str:
        here = _pids_comparable(holder)
        fix = f"wait for it to end (or stop it: kill {holder.pid})" if here else "wait for it to end"
        line = f"--output {self.output!r} is being written by another augbeam run ({holder.describe()}); "
        line += f"{fix}, or choose another folder"
        if not here:
            line += (
                f"; if that run is gone, its lock is taken over once untouched for {stale_s:.0f} s "
                f"(or delete {self.path})"
            )
        return line

    def _unwritable(self, exc: OSError) -> UserError:
        """The environment's fault (read-only, full, not ours to write) in the words of every other write's."""
        from pipeline.runtime.storage_faults import AGAIN, as_storage_fault

        exc.add_note(fsutil.WRITING + self.path)
        fault = as_storage_fault(exc, self.output, AGAIN)
        if fault is not None:
            return fault
        return UserError(
            f"--output {self.output!r}: cannot write its lock file {self.path} ({exc.strerror or exc}); "
            "give a folder you can write to, on a disk with free space"
        )

    def _takeover(self, holder: Holder, reason: str) -> str:
        return (
            f"augbeam: --output {self.output!r} was locked by a run that is gone ({holder.describe()}: {reason}); "
            "taking its lock over"
        )
