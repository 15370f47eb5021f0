"""pipeline/format/manifest.py: the typed seams read back exactly what they write, and refuse a field gone."""

from __future__ import annotations

import json

import pytest

from pipeline.format import reader
from pipeline.format.manifest import (
    ErrorRow,
    FileInfo,
    IndexRow,
    Manifest,
    SchemaError,
    ShardSummary,
    errors_name,
    index_name,
    record_order,
    shard_name,
)
from tests.helpers import MANIFEST_SHARD as SHARD
from tests.helpers import sample_manifest as _manifest


def test_manifest_json_round_trip_and_the_keys_readers_have_always_used():
    manifest = _manifest({"report.html": FileInfo(10, "e" * 64)})
    data = json.loads(json.dumps(manifest.to_json()))
    assert Manifest.from_json(data) == manifest
    assert data["format"] == "augbeam" and data["num_classes"] == 2
    assert data["splits"]["train"]["num_shards"] == 1
    assert data["splits"]["train"]["shards"][0]["dali_index"]["file"] == "x.idx"
    shard = data["splits"]["train"]["shards"][0]
    assert shard["index"] == {"name": "index-train-00000-of-00001.parquet", "rows": 2, "bytes": 100, "sha256": "c" * 64}
    assert shard["errors"]["rows"] == 1 and set(data["files"]) == {"side"}
    assert (manifest.index_rows, manifest.error_rows) == (2, 1)
    assert data["files"]["side"] == {"report.html": {"bytes": 10, "sha256": "e" * 64}}
    assert "side" not in _manifest().to_json()["files"]  # the draft the side-file makers see


def test_expected_files_names_every_file_with_its_checksum():
    files = _manifest({"report.html": FileInfo(10, "e" * 64)}).expected_files()
    assert files["manifest.json"] is None
    assert files[SHARD.file] == FileInfo(300, "a" * 64) and files["x.idx"] == FileInfo(9, "b" * 64)
    assert files[SHARD.index.name] == FileInfo(100, "c" * 64) and files[SHARD.errors.name] == FileInfo(50, "d" * 64)
    assert set(files) == {"manifest.json", SHARD.index.name, SHARD.errors.name, SHARD.file, "x.idx", "report.html"}


def test_shard_summary_round_trip_keeps_the_outcomes():
    summary = ShardSummary("train", 0, 1, "run", SHARD, 3, 2, failed_inputs_by_reason={"decode/CorruptImage": 1})
    data = json.loads(json.dumps(summary.to_json()))
    assert data["info"]["index"]["name"] == SHARD.index.name and data["info"]["dali_index"]["file"] == "x.idx"
    back = ShardSummary.from_json(data)
    assert back == summary and back.decoded_inputs == 1
    row = ErrorRow("bad.jpg", None, "train", "decode", "CorruptImage", "truncated")
    assert row.reason == "decode/CorruptImage" and row.sort_key == ("bad.jpg", -1, "decode")
    index_row = IndexRow("k", 0, "train", SHARD.file, 0, 1, "[]", "f" * 64, "0" * 64)
    assert IndexRow.from_json(index_row.to_json()) == index_row


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("splits",), "the manifest has no 'splits'"),
        (("splits", "train", "counts"), "a split has no 'counts'"),
        (("splits", "train", "shards", 0, "index"), "a shard entry has no 'index'"),
    ],
)
def test_a_missing_field_is_named(drop, message):
    data = _manifest().to_json()
    target = data
    for key in drop[:-1]:
        target = target[key]
    del target[drop[-1]]
    with pytest.raises(SchemaError, match=message):
        Manifest.from_json(data)


def test_record_order_and_shard_names_are_the_format_s():
    assert shard_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    assert index_name("train", 3, 12) == "index-train-00003-of-00012.parquet"
    assert errors_name("train", 3, 12) == "errors-train-00003-of-00012.parquet"
    assert record_order("a.jpg", 0) != record_order("a.jpg", 1)
    assert record_order("a.jpg", 0) == record_order("a.jpg", 0) < 2**64


def test_manifest_file_is_exactly_what_its_dataclass_writes(run_a):
    """The typed manifest reads every field back and writes the file's bytes again."""
    raw = (run_a / "manifest.json").read_bytes()
    manifest = reader.read_manifest(str(run_a))
    assert (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode() == raw
    assert Manifest.from_json(json.loads(raw)) == manifest
    assert manifest.side_files and "report.html" in manifest.side_files
