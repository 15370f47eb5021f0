"""Live progress of a run, read from the shard workers' progress files.

Shard workers write a small JSON file per shard under the work folder
(throttled, atomically; see ``shard_worker.ShardProgress``). The driver polls
that folder, so progress works on every runner and with several worker
processes, and a retried shard overwrites its own file instead of being
counted twice (Beam's counters, by contrast, count every attempt). The work
folder is deleted at finalize, so nothing of this survives in the output.

The formatting functions are pure; ``ProgressMonitor`` takes its clock and
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

from pipeline import fsutil

MODES = ("auto", "bar", "lines", "none")
LOCAL_POLL_S = 1.0
REMOTE_POLL_S = 10.0  # listing a bucket every second costs requests and money for little gain
LINE_EVERY_S = 10.0
RATE_WINDOW_S = 30.0
BAR_WIDTH = 24

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
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None) -> str:
    """Records per second with a precision that suits the size; ``?`` when unknown."""
    if rate is None:
        return "?"
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def format_bytes(n: int) -> str:
    """Bytes in binary units, as file sizes are usually shown (``1.5 MiB``)."""
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
    until two samples span some time.
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
    """Seconds left at ``rate``; 0 when done, None when no rate is known yet."""
    if done >= total:
        return 0.0
    if not rate:
        return None
    return (total - done) / rate


def percent(done: int, total: int) -> int:
    """Whole percent, 100 only when really done (never rounded up to it)."""
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


def bar_text(p: Progress, rate: float | None, eta: float | None, width: int = BAR_WIDTH) -> str:
    """One terminal line: ``[#####-----]  12/45  26%  3.1 rec/s  ETA 0:11  3 failed (1 input)``."""
    fraction = 1.0 if p.total <= 0 else min(1.0, p.done / p.total)
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    text = f"[{bar}] {p.done:>{len(str(p.total))}}/{p.total} {percent(p.done, p.total):>3}%"
    text += f"  {format_rate(rate)} rec/s  ETA {format_duration(eta)}"
    return text + (f"  {p.failed_text()}" if p.failed or p.failed_inputs else "")


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


def read_progress(folder: str) -> dict[str, dict[str, Any]]:
    """The shards' progress files by name; files half-written, vanished or unreadable are skipped."""
    found: dict[str, dict[str, Any]] = {}
    try:
        if fsutil.is_local(folder):
            paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
        else:
            paths = [path for path, _ in fsutil.list_files(folder)]
    except Exception as exc:  # not there yet (no shard has reported), or gone; never fails the job
        log.debug("progress: cannot list %s: %s", folder, exc)
        return found
    for path in paths:
        name = os.path.basename(path) if fsutil.is_local(folder) else path.rsplit("/", 1)[-1]
        if not name.endswith(".json"):  # temporary names of writes in flight end in .tmp-<hex>
            continue
        try:
            data = json.loads(fsutil.read_bytes(path))
        except Exception:  # renamed or deleted under us; the next poll sees it again
            continue
        if isinstance(data, dict) and isinstance(data.get("done"), int):
            found[name] = data
    return found


class ProgressMonitor:
    """Polls the progress folder in a daemon thread and prints a bar or lines to ``stream``.

    Use as a context manager around the pipeline run: it stops (joins the
    thread and prints a final line) also when the run raises, and an error
    inside the monitor is logged, never raised into the job.
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
    ) -> None:
        self.folder = folder
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.poll_s = poll_s if poll_s is not None else (LOCAL_POLL_S if fsutil.is_local(folder) else REMOTE_POLL_S)
        self.line_every_s = line_every_s
        self.clock = clock
        self.window_s = window_s
        self.progress = Progress(0, total)
        self.samples: list[tuple[float, int]] = []
        self._shards: dict[str, dict[str, Any]] = {}
        self._started = clock()
        self._last_line = self._started
        self._bar_len = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def poll(self) -> None:
        """Reads the progress files; per shard the furthest snapshot wins, so a retry never goes back."""
        for name, data in read_progress(self.folder).items():
            seen = self._shards.get(name)
            if seen is None or data["done"] >= seen["done"]:
                self._shards[name] = data
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
        with self._lock:
            if self._stopped:
                return
            self.poll()
            now = self.clock()
            rate = recent_rate(self.samples, self.window_s)
            eta = eta_seconds(self.progress.done, self.total, rate)
            if self.mode == "bar":
                self._draw(bar_text(self.progress, rate, eta))
            elif self.mode == "lines" and now - self._last_line >= self.line_every_s:
                self._last_line = now
                self._write(line_text(self.progress, rate, eta, now - self._started) + "\n")

    def start(self) -> ProgressMonitor:
        """Starts polling; elapsed time counts from here."""
        self._started = self._last_line = self.clock()
        if self.mode != "none" and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="augbeam-progress", daemon=True)
            self._thread.start()
        return self

    def stop(self, ok: bool = True) -> None:
        """Stops the thread, reads the files one last time and prints the final line (once).

        Never raises and never waits long: a display problem must not fail a
        finished run or hide the error of a failed one.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 30)  # a hung remote listing must not hang the job
        if not self._lock.acquire(timeout=5):  # the thread is still stuck in a listing: no final line
            return
        try:
            if self._stopped or self.mode == "none":
                return
            self._stopped = True
            self.poll()
            elapsed = self.clock() - self._started
            if self.mode == "bar":
                average = self.progress.done / elapsed if elapsed > 0 else None
                self._draw(bar_text(self.progress, average, eta_seconds(self.progress.done, self.total, average)))
                self._write("\n")
            self._write(final_text(self.progress, elapsed, ok) + "\n")
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
