"""A shard's progress file: throttled, final, and never failing the shard."""

from __future__ import annotations

import json
from pathlib import Path


def test_shard_progress_file_is_throttled_and_final(tmp_path, monkeypatch):
    from pipeline.job import progress_file as shard_progress
    from pipeline.job import shard as shard_worker

    now = [0.0]
    monkeypatch.setattr(shard_progress.time, "monotonic", lambda: now[0])
    (tmp_path / shard_worker.WORK_DIR).mkdir()
    folder = shard_worker.progress_dir(str(tmp_path))
    progress = shard_progress.ShardProgress(folder, "train", 3, records=10)
    path = Path(folder) / "train-00003.json"
    writes = []
    real = shard_progress.fsutil.write_atomic
    monkeypatch.setattr(shard_progress.fsutil, "write_atomic", lambda p, d: (writes.append(p), real(p, d)))
    for done in range(1, 10):
        now[0] += 0.3
        progress.update(done, done, 0, 0)
    assert len(writes) == 2  # at 1.2 s and 2.4 s, not on every record
    progress.update(10, 9, 1, 1, final=True)
    assert len(writes) == 3
    assert json.loads(path.read_text()) == {
        "split": "train",
        "shard": 3,
        "records": 10,
        "done": 10,
        "written": 9,
        "failed_records": 1,
        "failed_inputs": 1,
    }
    assert [p.name for p in path.parent.iterdir()] == ["train-00003.json"]  # no temp file left


def test_shard_progress_never_fails_the_shard(tmp_path, caplog):
    from pipeline.job import progress_file as shard_progress
    from pipeline.job import shard as shard_worker

    folder = shard_worker.progress_dir(str(tmp_path / "gone"))  # no work folder
    progress = shard_progress.ShardProgress(folder, "train", 0, records=1)
    progress.update(1, 1, 0, 0, final=True)
    progress.update(1, 1, 0, 0, final=True)
    assert progress.broken and "progress file" in caplog.text
    assert not (tmp_path / "gone").exists()  # the work folder is not re-created
