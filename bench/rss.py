"""Peak RSS of a process and of its descendants, sampled with psutil (shared by the benchmarks)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psutil


class RssSampler:
    """Samples a process's RSS alone and its descendants' summed RSS every ``interval`` seconds; keeps the peaks.

    ``per_process`` keeps each process's own peak by pid (``names``: its command line, shortened), so a job's
    worker processes can be told apart from its driver.

    ``pid=None`` samples this process, whose descendants are then the commands a benchmark started. Sampling
    misses what lived between two samples, so the peaks are lower bounds; ``os.wait4``'s ``ru_maxrss`` gives
    the exact largest single process where that is what is wanted.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.1) -> None:
        self.interval = interval
        try:
            self.process: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:  # ended already
            self.process = None
        self.peak = 0
        self.children_peak = 0
        self.children_seen = 0
        self.samples = 0
        self.per_process: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(psutil.Error):  # ended (or a zombie) since the last sample
            self.peak = max(self.peak, self._rss(self.process))
            self.samples += 1
        total = 0
        with contextlib.suppress(psutil.Error):
            children = self.process.children(recursive=True)
            self.children_seen = max(self.children_seen, len(children))
            for child in children:
                with contextlib.suppress(psutil.Error):  # ended (or became unreadable) since the listing
                    total += self._rss(child)
        self.children_peak = max(self.children_peak, total)

    def _rss(self, process: psutil.Process) -> int:
        """The process's RSS now, also kept as its own peak."""
        rss = process.memory_info().rss
        pid = process.pid
        self.per_process[pid] = max(self.per_process.get(pid, 0), rss)
        if pid not in self.names:
            with contextlib.suppress(psutil.Error):
                self.names[pid] = " ".join(process.cmdline())[:200]
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
