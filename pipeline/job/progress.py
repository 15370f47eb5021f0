"""Live progress of a run, read from the shard workers' progress files.

Shard workers write a small JSON file per shard under the work folder
(throttled, atomically; see ``progress_file.ShardProgress``). The driver polls
that folder, so progress works on every runner and with several worker
processes, and a retried shard overwrites its own file instead of being
counted twice (Beam's counters, by contrast, count every attempt). The work
folder is deleted at finalize, so nothing of this survives in the output.

A poll must stay cheap with thousands of shards on an object store: it lists
the folder once, reads only files whose listed size or update time changed,
never a finished shard's again, and at most ``max_reads`` files (the rest on
the next poll).

The bar is tqdm's meter (``tqdm.format_meter``), its times tqdm's
``format_interval``; the plain lines use the same times. What is still
written here says, each in its docstring, what tqdm lacks for it. The
formatting functions are pure; ``ProgressMonitor`` takes its clock and
stream from the caller so it can be tested without a pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, NamedTuple, TextIO

from apache_beam.io.filesystems import FileSystems
from tqdm import tqdm

from pipeline import fsutil

MODES = ("auto", "bar", "lines", "none")
LOCAL_POLL_S = 1.0
REMOTE_POLL_S = 10.0  # listing a bucket every second costs requests and money for little gain
LOCAL_MAX_READS = 500  # files read per poll, at most; the others wait for the next poll
REMOTE_MAX_READS = 100  # about one request each: a poll's reads must fit well inside REMOTE_POLL_S
STOP_JOIN_S = 2.0  # stop() waits this long for the thread to leave its poll (it checks between reads)
FINAL_POLL_S = 5.0  # and this long for its own last, bounded poll, then prints what it knows
LINE_EVERY_S = 10.0
RATE_WINDOW_S = 30.0
BAR_WIDTH = 24
# tqdm's own layout ({l_bar}{bar}{r_bar}) with our percent in ``desc`` (tqdm's rounds 99.5% up to 100%).
BAR_FORMAT = "{desc}|{bar:%d}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

log = logging.getLogger(__name__)


def resolve_mode(mode: str, stream: TextIO) -> str:
    """``auto`` is a bar on a terminal and plain lines otherwise (logs, CI, pipes)."""
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def format_duration(seconds: float | None) -> str:
    """tqdm's ``mm:ss`` or ``h:mm:ss`` (as in the bar), rounded to the second; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    return tqdm.format_interval(max(0, round(seconds)))


def format_rate(rate: float | None) -> str:
    """Records per second for the plain lines, with a precision that suits the size; ``?`` when unknown.

    Kept: tqdm formats a rate only inside its meter, fixed at two decimals and padded for a redrawn bar.
    """
    if rate is None:
        return "?"
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def format_bytes(n: int) -> str:
    """Bytes in binary units, as file sizes are usually shown (``1.5 MiB``).

    Kept: tqdm's ``format_sizeof`` has no binary unit names (1536 bytes with divisor 1024 is ``1.50k``).
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def recent_rate(samples: Sequence[tuple[float, int]], window_s: float = RATE_WINDOW_S) -> float | None:
    """Records per second over the last ``window_s`` of (time, done) samples.

    A recent window, not the whole run: worker start-up (TensorFlow import and
    tracing) would otherwise make the first minutes' ETA far too long. None
    until two samples span some time. Kept: tqdm's meter takes a rate, and its
    instances smooth one per update (an average over update calls, not over
    wall time), which a slow start keeps skewing for as many polls as it lasted.
    """
    if len(samples) < 2:
        return None
    t_last, d_last = samples[-1]
    first = 0
    for i, (t, _) in enumerate(samples):
        if t_last - t <= window_s:
            first = max(0, i - 1)  # keep one sample before the window, so the window is fully spanned
            break
    t_first, d_first = samples[first]
    if t_last <= t_first:
        return None
    return max(0.0, (d_last - d_first) / (t_last - t_first))


def eta_seconds(done: int, total: int, rate: float | None) -> float | None:
    """Seconds left at ``rate`` for the plain lines (tqdm computes it only inside its meter); 0 when done."""
    if done >= total:
        return 0.0
    if not rate:
        return None
    return (total - done) / rate


def percent(done: int, total: int) -> int:
    """Whole percent, 100 only when really done (never rounded up to it, as tqdm's ``{percentage:3.0f}`` is)."""
    if total <= 0:
        return 100
    return 100 if done >= total else min(99, done * 100 // total)


class Progress(NamedTuple):
    """Where the run is: records done (written or failed) of ``total``, and failures so far."""

    done: int
    total: int
    failed: int = 0  # records not written, whatever the reason
    failed_inputs: int = 0  # inputs that could not be read or decoded (all their copies fail)

    def failed_text(self) -> str:
        """``3 failed (1 input)``: records not written, and how many whole inputs they came from."""
        inputs = f" ({self.failed_inputs} input{'s' if self.failed_inputs != 1 else ''})" if self.failed_inputs else ""
        return f"{self.failed} failed{inputs}"

    def head(self) -> str:
        return f"{self.done}/{self.total} records ({percent(self.done, self.total)}%), {self.failed_text()}"


def bar_text(p: Progress, rate: float | None, elapsed: float, width: int = BAR_WIDTH) -> str:
    """One terminal line, tqdm's meter: `` 25%|##      | 12/48 [00:03<00:11,  3.14 rec/s, 3 failed (1 input)]``.

    ``rate``: records/s (``recent_rate``), None while unknown: tqdm then shows ``?``, not its run average.
    """
    return tqdm.format_meter(
        min(p.done, p.total),  # never above: tqdm would drop the total, and with it the bar
        p.total,
        elapsed,
        prefix=f"{percent(p.done, p.total):3d}%",
        ascii=True,
        unit=" rec",
        rate=rate if rate is not None else 0.0,  # 0: "?" rate and ETA
        bar_format=BAR_FORMAT % width,
        postfix=p.failed_text() if p.failed or p.failed_inputs else None,
    )


def line_text(p: Progress, rate: float | None, eta: float | None, elapsed: float) -> str:
    """A log-friendly progress line."""
    return (
        f"augbeam: {p.head()}, {format_rate(rate)} records/s, ETA {format_duration(eta)}, "
        f"{format_duration(elapsed)} elapsed"
    )


def final_text(p: Progress, elapsed: float, ok: bool) -> str:
    """The last line: how far the run got, at what average rate."""
    average = format_rate(p.done / elapsed if elapsed > 0 else None)
    head = "augbeam: processed" if ok else "augbeam: stopped at"
    return f"{head} {p.head()}, in {format_duration(elapsed)} ({average} records/s)"


Signature = tuple[int, float] | None  # a file's (size, update time) from the listing; None: unknown


def list_progress(folder: str) -> dict[str, Signature]:
    """The progress files' names, with what the listing says of each at no extra request.

    Object stores list each object's size and update time, which change on
    every rewrite (a worker rewrites at most every 10 s there), so an
    unchanged file need not be read. Local files get None: their timestamps
    are coarse (two writes a few ms apart can look alike) and reading them is
    cheap. A folder not there yet (no shard has reported) or gone lists empty.
    """
    try:
        if fsutil.is_local(folder):
            return {name: None for name in sorted(os.listdir(folder)) if name.endswith(".json")}
        found: dict[str, Signature] = {}
        for meta in FileSystems.match([fsutil.join(folder, "*")])[0].metadata_list:
            name = meta.path.rstrip("/").rsplit("/", 1)[-1]
            updated = getattr(meta, "last_updated_in_seconds", 0.0)  # 0.0 where a filesystem does not say
            if name.endswith(".json"):  # temporary names of writes in flight end in .tmp-<hex>
                found[name] = (int(meta.size_in_bytes), float(updated)) if updated else None
        return found
    except Exception as exc:  # never fails the job
        log.debug("progress: cannot list %s: %s", folder, exc)
        return {}


def read_progress_file(path: str) -> dict[str, Any] | None:
    """One shard's numbers; None for a file half-written, vanished or unreadable (the next poll tries again)."""
    try:
        data = json.loads(fsutil.read_bytes(path))
    except Exception:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("done"), int) else None


def finished(data: dict[str, Any] | None) -> bool:
    """True once a shard reported all its records: its file is never read again (a retry only repeats it)."""
    return data is not None and isinstance(data.get("records"), int) and data["done"] >= data["records"]


def planned_total(path: str) -> int:
    """Records the run plans, from its ``run.json``; 0 until the listing workers have written it."""
    from pipeline.job.plan import RunInfo

    try:
        return RunInfo.from_json(json.loads(fsutil.read_bytes(path))).plan.planned_records
    except Exception:  # not there yet, or being replaced: the next poll reads it
        return 0


class ProgressMonitor:
    """Polls the progress folder in a daemon thread and prints a bar or lines to ``stream``.

    Use as a context manager around the pipeline run: it stops (and prints a
    final line) also when the run raises, and an error inside the monitor is
    logged, never raised into the job. File reads happen outside the lock,
    so stopping never waits for a poll's I/O.

    The bar is drawn from ``tqdm.format_meter`` rather than a ``tqdm``
    instance: an instance keeps its own clock and rate and may start its own
    monitor thread, while here the numbers come from the polled files, the
    rate from a 30 s window, and the clock from the caller (tests).
    """

    def __init__(
        self,
        folder: str,
        total: int,
        mode: str = "auto",
        stream: TextIO | None = None,
        poll_s: float | None = None,
        line_every_s: float = LINE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = RATE_WINDOW_S,
        max_reads: int | None = None,
        plan_file: str | None = None,
    ) -> None:
        local = fsutil.is_local(folder)
        self.folder = folder
        self.total = total
        self.plan_file = plan_file  # the run's plan (run.json): the total, once the workers have listed the input
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.poll_s = poll_s if poll_s is not None else (LOCAL_POLL_S if local else REMOTE_POLL_S)
        self.max_reads = max_reads if max_reads is not None else (LOCAL_MAX_READS if local else REMOTE_MAX_READS)
        self.line_every_s = line_every_s
        self.clock = clock
        self.window_s = window_s
        self.progress = Progress(0, total)
        self.samples: list[tuple[float, int]] = []
        self._shards: dict[str, dict[str, Any]] = {}  # per file, the furthest numbers read
        self._signatures: dict[str, Signature] = {}  # per file, its listing when last read
        self._read_in: dict[str, int] = {}  # per file, the poll that last read it: the stalest go first
        self._polls = 0
        self._started = clock()
        self._last_line = self._started
        self._bar_len = 0
        self._lock = threading.Lock()  # guards the numbers and the stream, never held during file I/O
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def to_read(self, listed: dict[str, Signature]) -> list[str]:
        """The files worth reading now: unfinished, changed (or of unknown change), stalest first, capped."""
        due = [
            name
            for name, signature in listed.items()
            if not finished(self._shards.get(name))
            and (signature is None or name not in self._signatures or self._signatures[name] != signature)
        ]
        due.sort(key=lambda name: (self._read_in.get(name, -1), name))
        return due[: self.max_reads]

    def poll(self, final: bool = False) -> int:
        """Lists the folder and reads what changed, without the lock; returns the number of files read.

        Per shard the furthest snapshot wins, so a retry never goes back. A
        poll stops reading when ``stop()`` is called (the final poll aside)
        or when half the poll interval (the final poll: ``FINAL_POLL_S``) is
        spent, so polls never pile up behind a slow object store.
        """
        if not self.total and self.plan_file:
            self.total = planned_total(self.plan_file)
        listed = list_progress(self.folder)
        with self._lock:
            self._polls += 1
            number = self._polls
            names = self.to_read(listed)
        deadline = self.clock() + (FINAL_POLL_S if final else self.poll_s / 2)
        got: list[tuple[str, dict[str, Any] | None]] = []
        for name in names:
            if (self._stop.is_set() and not final) or (got and self.clock() > deadline):
                break
            got.append((name, read_progress_file(fsutil.join(self.folder, name))))
        with self._lock:
            for name, data in got:
                self._read_in[name] = number
                if data is None:  # not readable now: its signature stays unknown, so it is read again
                    continue
                self._signatures[name] = listed[name]
                seen = self._shards.get(name)
                if seen is None or data["done"] >= seen["done"]:
                    self._shards[name] = data
            self._update()
        return len(got)

    def _update(self) -> None:
        shards = self._shards.values()
        self.progress = Progress(
            done=sum(int(s["done"]) for s in shards),
            total=self.total,
            failed=sum(int(s.get("failed_records", 0)) for s in shards),
            failed_inputs=sum(int(s.get("failed_inputs", 0)) for s in shards),
        )
        now = self.clock()
        self.samples.append((now, self.progress.done))
        cutoff = now - 2 * self.window_s
        while len(self.samples) > 2 and self.samples[1][0] < cutoff:
            self.samples.pop(0)

    def tick(self) -> None:
        """One poll and, when due, one update of the bar or one line."""
        if self._stopped or self._stop.is_set():
            return
        self.poll()
        with self._lock:
            if self._stopped or self._stop.is_set():  # stop() came during the poll: the final line is its
                return
            now = self.clock()
            rate = recent_rate(self.samples, self.window_s)
            if self.mode == "bar":
                self._draw(bar_text(self.progress, rate, now - self._started))
            elif self.mode == "lines" and now - self._last_line >= self.line_every_s:
                self._last_line = now
                eta = eta_seconds(self.progress.done, self.total, rate)
                self._write(line_text(self.progress, rate, eta, now - self._started) + "\n")

    def start(self) -> ProgressMonitor:
        """Starts polling; elapsed time counts from here."""
        self._started = self._last_line = self.clock()
        if self.mode != "none" and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="augbeam-progress", daemon=True)
            self._thread.start()
        return self

    def stop(self, ok: bool = True) -> None:
        """Stops the thread and prints the final line (once), from what one bounded last poll adds.

        Never raises and never waits long (a few seconds at most, whatever
        the object store does): a display problem must not fail a finished
        run or hide the error of a failed one. A successful run did every
        planned record, so its line says so even when the last shards' files
        were not all read in time. A run that failed before any record shows
        no line: the error that follows says it all.
        """
        self._stop.set()
        if self.mode == "none" or self._stopped:
            return
        thread = self._thread
        if thread is not None:
            thread.join(timeout=STOP_JOIN_S)
        if thread is None or not thread.is_alive():  # else it is stuck in a listing: print what is known
            last = threading.Thread(target=self._final_poll, name="augbeam-progress-final", daemon=True)
            last.start()
            last.join(timeout=FINAL_POLL_S + STOP_JOIN_S)
        if not self._lock.acquire(timeout=STOP_JOIN_S):  # a write to the stream hangs: no final line
            return
        try:
            if self._stopped:
                return
            self._stopped = True
            p = self.progress
            if ok and p.done < p.total:
                p = p._replace(done=p.total)
            if not ok and p.done == 0:
                if self._bar_len:
                    self._write("\r" + " " * self._bar_len + "\r")  # clear the bar for the error
                return
            elapsed = self.clock() - self._started
            if self.mode == "bar":
                self._draw(bar_text(p, p.done / elapsed if elapsed > 0 else None, elapsed))
                self._write("\n")
            self._write(final_text(p, elapsed, ok) + "\n")
        except Exception as exc:
            log.debug("progress: final line failed: %s", exc)
        finally:
            self._stopped = True
            self._lock.release()

    def __enter__(self) -> ProgressMonitor:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(ok=exc_type is None)

    def _final_poll(self) -> None:
        try:
            self.poll(final=True)
        except Exception as exc:
            log.debug("progress: last poll failed: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.tick()
            except Exception as exc:  # a display problem must never fail or hang the job
                log.debug("progress: %s", exc)

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._bar_len - len(text))  # overwrite a longer previous line
        self._bar_len = len(text)
        self._write("\r" + text + pad)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
