"""`augbeam verify`: changed, missing and extra files, regeneration from the source, what records and error rows
say, runs from listings with duplicate rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.checks.verify import verify
from pipeline.cli import main
from tests.helpers import run
from tests.helpers import write_listing as _listing


def test_verify_finds_changes(clean, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(clean, out)
    assert main(["verify", str(out), "--sample", "3"]) == 0
    assert "OK" in capsys.readouterr().out
    shard = sorted(out.glob("train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[40] ^= 1
    shard.write_bytes(bytes(data))
    (out / "notes.txt").write_text("extra")
    (out / "errors.parquet").unlink()
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert "notes.txt: in the folder but not in the manifest" in text
    assert "errors.parquet: named by the manifest but missing" in text
    assert f"{shard.name}: " in text and "changed or corrupt" in text


def test_verify_regenerates_from_the_source_and_notices_a_changed_source(photos_with_bad, clean, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(photos_with_bad, moved)
    assert verify(str(clean), sample=30, source=str(moved)).ok
    index = pq.read_table(clean / "index.parquet").to_pylist()
    victim = moved / index[0]["key"]
    victim.write_bytes(victim.read_bytes() + b"\0")  # same picture, different file
    report = verify(str(clean), sample=len(index), source=str(moved))
    assert not report.ok and any("is not the file that was used" in p for p in report.problems)


def test_verify_checks_what_records_say_and_error_splits(clean, tmp_path):
    import pyarrow as pa

    def rewrite(folder: Path, name: str, rows: list[dict]) -> None:
        table = pq.read_table(folder / name)
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / name)
        manifest = json.loads((folder / "manifest.json").read_text())
        entry = manifest["files"]["index" if name == "index.parquet" else "errors"]
        data = (folder / name).read_bytes()
        entry.update(rows=len(rows), bytes=len(data), sha256=__import__("hashlib").sha256(data).hexdigest())
        (folder / "manifest.json").write_text(json.dumps(manifest))

    relabelled = tmp_path / "relabelled"
    shutil.copytree(clean, relabelled)
    rows = pq.read_table(relabelled / "index.parquet").to_pylist()
    rows[0]["label"] = rows[0]["label"] + 1
    rewrite(relabelled, "index.parquet", rows)
    report = verify(str(relabelled))
    assert not report.ok and any("says otherwise" in p for p in report.problems)

    stray = tmp_path / "stray"
    shutil.copytree(clean, stray)
    errors = pq.read_table(stray / "errors.parquet").to_pylist()
    errors[0]["split"] = "nosuch"
    rewrite(stray, "errors.parquet", errors)
    assert any("names split 'nosuch'" in p for p in verify(str(stray)).problems)

    junk = tmp_path / "junk"
    shutil.copytree(clean, junk)
    (junk / "manifest.json").write_text((junk / "manifest.json").read_text() + "}")
    report = verify(str(junk))
    assert not report.ok and "not valid JSON" in report.problems[0]


def test_verify_passes_with_duplicate_listing_rows(photos_with_bad, tmp_path):
    files = sorted(p for p in photos_with_bad.rglob("*") if p.is_file())
    listing = _listing(photos_with_bad, files + files[:2], photos_with_bad.parent / "dups.csv")
    out = tmp_path / "out"
    run(listing, out, copies=1, num_shards=2)
    kinds = [row["error_type"] for row in pq.read_table(out / "errors.parquet").to_pylist()]
    assert kinds.count("DuplicateInput") == 2
    assert verify(str(out), sample=3).ok


def test_verify_compares_with_the_source_listing(photos_with_bad, clean, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(photos_with_bad, moved)
    assert verify(str(clean), source=str(moved)).ok
    shutil.copy(moved / "train" / "everyday" / "horse.png", moved / "train" / "everyday" / "new_horse.png")
    report = verify(str(clean), source=str(moved))
    assert any("have no record and no error row, e.g. 'train/everyday/new_horse.png'" in p for p in report.problems)
    (moved / "train" / "everyday" / "new_horse.png").unlink()
    (moved / "train" / "everyday" / "horse.png").unlink()
    report = verify(str(clean), source=str(moved))
    assert any("not in the source listing, e.g. 'train/everyday/horse.png'" in p for p in report.problems)
