"""A shard worker's progress file: the numbers the driver's progress display polls (see ``progress.py``).

Kept apart from the shard's real output: it is a display, written best effort,
and never read by finalize or ``augbeam verify``.
"""

from __future__ import annotations

import json
import logging
import os
import time

from pipeline import fsutil

log = logging.getLogger(__name__)


def progress_file_name(split: str, shard: int) -> str:
    """One name per shard, the same for every attempt, so a retry replaces its numbers instead of adding to them."""
    return f"{split}-{shard:05d}.json"


class ShardProgress:
    """A shard's progress file in ``folder``, rewritten at most every ``every_s`` and once at the end.

    Best effort: a failed write is logged and never fails the shard. The
    worker must make its final update before writing the sidecar, never after:
    finalize deletes the work folder once the sidecars are there, and a late
    write would put a stray file back into the output.
    """

    def __init__(self, folder: str, split: str, shard: int, records: int) -> None:
        self.path = fsutil.join(folder, progress_file_name(split, shard))
        self.every_s = 1.0 if fsutil.is_local(folder) else 10.0  # object stores: fewer, larger steps
        self.base = {"split": split, "shard": shard, "records": records}
        self.last = time.monotonic()  # a shard that takes less than every_s writes once, at the end
        self.broken = False

    def update(self, done: int, written: int, failed_records: int, failed_inputs: int, final: bool = False) -> None:
        """Rewrites the file when ``every_s`` has passed since the last write, or when ``final``."""
        now = time.monotonic()
        if self.broken or (not final and now - self.last < self.every_s):
            return
        self.last = now
        data = dict(self.base, done=done, written=written, failed_records=failed_records, failed_inputs=failed_inputs)
        try:
            if fsutil.is_local(self.path):  # object stores need no folders; a missing work folder stays missing
                try:
                    os.mkdir(os.path.dirname(self.path))
                except FileExistsError:
                    pass
            fsutil.write_atomic(self.path, json.dumps(data, sort_keys=True).encode())
        except Exception as exc:  # e.g. the work folder is gone: stop trying for this shard
            self.broken = True
            log.warning("progress file %s not written: %s", self.path, exc)
