"""NVIDIA DALI's ``tfrecord2idx`` index for a shard, written next to it with ``--dali-index``.

DALI's TFRecord reader needs an index to seek to records (and to split a
shard between readers) without scanning it; writing it while the shard is
written costs nothing, where ``tfrecord2idx`` would read every shard again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pipeline import fsutil


def dali_index_name(shard_file: str) -> str:
    """``<shard>.idx``: the name DALI's examples and ``tfrecord2idx`` users expect next to the shard."""
    return f"{shard_file}.idx"


def write_dali_index(folder: str, shard_file: str, offsets: list[tuple[int, int]]) -> dict[str, Any]:
    """Writes the index for ``shard_file`` into ``folder``: one ``offset length`` line per record; its manifest entry.

    The job writes it into its work folder; finalize moves it beside the
    shard once the manifest is written.

    ``length`` is the whole framed record (length, CRCs and data), as
    ``tfrecord2idx`` writes it, so the file is byte-identical to that tool's.
    An empty shard gets an empty index, so every shard has one. The entry
    (name, size, sha256) lets ``augbeam verify`` check the index like a shard.
    """
    data = "".join(f"{offset} {length}\n" for offset, length in offsets).encode()
    name = dali_index_name(shard_file)
    fsutil.write_atomic(fsutil.join(folder, name), data)
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
