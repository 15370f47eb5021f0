"""``--dali-index``: one NVIDIA DALI ``tfrecord2idx`` index per shard, checked by reading at its offsets."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.format.reader import read_manifest
from tests.helpers import in_process


def tfrecord2idx(shard: Path) -> bytes:
    """DALI's ``tfrecord2idx`` algorithm (tools/tfrecord2idx in NVIDIA/DALI): scan the framing, note each start."""
    lines = []
    with open(shard, "rb") as f:
        while True:
            current = f.tell()
            length = f.read(8)
            if not length:
                break
            f.read(4)
            (proto_len,) = struct.unpack("q", length)
            f.read(proto_len)
            f.read(4)
            lines.append(f"{current} {f.tell() - current}\n")
    return "".join(lines).encode()


@pytest.fixture(scope="module")
def dali_run(photos_with_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("dali") / "out"
    # 40 shards for 45 records: some shards are empty, and must get an empty index too.
    args = ["run", "--input", str(photos_with_bad), "--output", str(out), "--image-size", "32", "32"]
    args += ["--copies", "3", "--num-shards", "40", "--max-error-rate", "0.5", "--dali-index"]
    assert main(in_process(args)) == 0
    return out, read_manifest(str(out))


def test_every_shard_has_an_index_equal_to_tfrecord2idx(dali_run):
    out, manifest = dali_run
    shards = [s for info in manifest.splits.values() for s in info.shards]
    assert any(s.records == 0 for s in shards) and any(s.records > 1 for s in shards)
    for shard in shards:
        idx = out / shard.dali_index.file
        assert idx.name == shard.file + ".idx"
        data = idx.read_bytes()
        assert data == tfrecord2idx(out / shard.file)
        assert len(data.splitlines()) == shard.records


def test_records_read_at_indexed_offsets_are_the_shard_records(dali_run):
    import tensorflow as tf

    out, manifest = dali_run
    shard = max((s for info in manifest.splits.values() for s in info.shards), key=lambda s: s.records)
    blob = (out / shard.file).read_bytes()
    expected = [r.numpy() for r in tf.data.TFRecordDataset(str(out / shard.file))]
    got = []
    for line in (out / shard.dali_index.file).read_text().splitlines():
        offset, size = map(int, line.split())
        (length,) = struct.unpack("<Q", blob[offset : offset + 8])
        assert size == length + 16
        got.append(blob[offset + 12 : offset + 12 + length])
    assert got == expected
    keys = [tf.train.Example.FromString(r).features.feature["key"].bytes_list.value[0] for r in got]
    assert len(keys) == shard.records


def test_index_files_are_listed_checked_and_refused_when_changed(dali_run, tmp_path):
    import shutil

    from pipeline.checks.verify import verify

    out, manifest = dali_run
    assert verify(str(out)).ok
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    idx = next(copy.glob("*.idx"))
    idx.write_bytes(idx.read_bytes() + b"0 0\n")
    report = verify(str(copy))
    assert not report.ok and any(idx.name in p for p in report.problems)


def test_the_index_writer_on_its_own(tmp_path):
    """One ``offset length`` line per record; an empty shard gets an empty index; the entry checks the bytes."""
    import hashlib

    from pipeline.format.dali_index import dali_index_name, write_dali_index

    assert dali_index_name("train-00000-of-00002.tfrecord") == "train-00000-of-00002.tfrecord.idx"
    entry = write_dali_index(str(tmp_path), "a.tfrecord", [(0, 30), (30, 1041)])
    data = (tmp_path / "a.tfrecord.idx").read_bytes()
    assert data == b"0 30\n30 1041\n"
    assert entry == {"file": "a.tfrecord.idx", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert write_dali_index(str(tmp_path), "b.tfrecord", [])["bytes"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tfrecord.idx", "b.tfrecord.idx"]  # no temp files
