"""`augbeam verify`: changed, missing and extra files, regeneration from the source, what records and error rows
say, routing and order within the parts, runs from listings with duplicate rows, the per-shard checks in bounded
memory, and the same report from a Beam job.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.checks import verify as verify_module
from pipeline.checks.verify import Collected, check_shard, sample_order, verify
from pipeline.cli import main
from pipeline.format.manifest import record_order
from pipeline.format.reader import iter_errors, iter_index, read_manifest
from pipeline.format.records import TFRecordWriter, build_example, iter_records, parse_example, record_sha256
from tests.helpers import rewrite_part, run, write_output
from tests.helpers import write_listing as _listing

# --- on real runs ---------------------------------------------------------------------------------------------------


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
    part = sorted(out.glob("errors-train-*.parquet"))[-1]
    part.unlink()
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert "notes.txt: in the folder but not in the manifest" in text
    assert f"{part.name}: named by the manifest but missing" in text
    assert f"{shard.name}: " in text and "changed or corrupt" in text


def test_verify_regenerates_from_the_source_and_notices_a_changed_source(photos_with_bad, clean, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(photos_with_bad, moved)
    assert verify(str(clean), sample=30, source=str(moved)).ok
    index = list(iter_index(str(clean)))
    victim = moved / index[0].key
    victim.write_bytes(victim.read_bytes() + b"\0")  # same picture, different file
    report = verify(str(clean), sample=len(index), source=str(moved))
    assert not report.ok and any("is not the file that was used" in p for p in report.problems)


def test_verify_checks_what_records_say_and_error_splits(clean, tmp_path):
    relabelled = tmp_path / "relabelled"
    shutil.copytree(clean, relabelled)
    part = sorted(relabelled.glob("index-train-*.parquet"))[0]
    rows = pq.read_table(part).to_pylist()
    rows[0]["label"] = rows[0]["label"] + 1
    rewrite_part(relabelled, part.name, rows)
    report = verify(str(relabelled))
    assert not report.ok and any("says otherwise" in p for p in report.problems)

    stray = tmp_path / "stray"
    shutil.copytree(clean, stray)
    part = next(p for p in sorted(stray.glob("errors-*.parquet")) if pq.read_metadata(p).num_rows)
    errors = pq.read_table(part).to_pylist()
    errors[0]["split"] = "nosuch"
    rewrite_part(stray, part.name, errors)
    assert any("names split 'nosuch'" in p for p in verify(str(stray)).problems)

    junk = tmp_path / "junk"
    shutil.copytree(clean, junk)
    (junk / "manifest.json").write_text((junk / "manifest.json").read_text() + "}")
    report = verify(str(junk))
    assert not report.ok and "not valid JSON" in report.problems[0]


@pytest.fixture(scope="module")
def from_listing(photos_with_bad, tmp_path_factory) -> Path:
    """A run from a CSV listing that names two files twice."""
    files = sorted(p for p in photos_with_bad.rglob("*") if p.is_file())
    listing = _listing(photos_with_bad, files + files[:2], photos_with_bad.parent / "dups.csv")
    out = tmp_path_factory.mktemp("listed") / "out"
    run(listing, out, copies=1, num_shards=2)
    return out


def test_verify_passes_with_duplicate_listing_rows(from_listing):
    kinds = [row.error_type for row in iter_errors(str(from_listing))]
    assert kinds.count("DuplicateInput") == 2
    assert verify(str(from_listing), sample=3).ok


def _relabel(record: bytes, label: int) -> bytes:
    """The same Example with another label (every other field as it was)."""
    f = parse_example(record)
    return build_example(
        image=bytes(f["image"][0]),
        shape=tuple(f["image/shape"]),
        dtype=bytes(f["image/dtype"][0]).decode(),
        encoding=bytes(f["image/encoding"][0]).decode(),
        label=label,
        key=bytes(f["key"][0]).decode(),
        copy=int(f["copy"][0]),
        params=bytes(f["params"][0]).decode(),
        source_sha256=bytes(f["source_sha256"][0]).decode(),
    )


def _rewrite_shard(out: Path, name: str, records: list[bytes], rows: list[dict]) -> None:
    """A shard and its index part rewritten, every checksum and count in the manifest made to match: a tamperer's."""
    with open(out / name, "wb") as handle:
        writer = TFRecordWriter(handle)
        for record in records:
            writer.write(record)
    data = (out / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    for info in manifest["splits"].values():
        for shard in info["shards"]:
            if shard["file"] == name:
                shard.update(records=len(records), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                index = shard["index"]["name"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for position, row in enumerate(rows):
        row["position"] = position
    rewrite_part(out, index, rows)


def _tampered(run_dir: Path, tmp_path: Path, change) -> tuple[Path, str, list[dict]]:
    """A copy of a run with one shard's records and index rows changed by ``change(records, rows)``."""
    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    shard = next(p for p in sorted(out.glob("train-*.tfrecord")) if len(list(iter_records(str(p)))) > 2)
    records = list(iter_records(str(shard)))
    rows = pq.read_table(
        out / shard.name.replace("train-", "index-train-").replace(".tfrecord", ".parquet")
    ).to_pylist()
    assert [_relabel(r, rows[i]["label"]) for i, r in enumerate(records)] == records  # the helper changes nothing else
    change(records, rows)
    for i, record in enumerate(records):
        rows[i]["record_sha256"] = record_sha256(record)
    _rewrite_shard(out, shard.name, records, rows)
    return out, shard.name, rows


def test_records_reordered_in_a_shard_are_found(clean, tmp_path):
    def swap(records, rows):
        records[1], records[2] = records[2], records[1]
        rows[1], rows[2] = rows[2], rows[1]

    out, shard, rows = _tampered(clean, tmp_path, swap)
    report = verify(str(out), sample=1000)
    assert [p for p in report.problems] == [
        f"index row ({rows[2]['key']!r}, copy {rows[2]['copy']}): out of hash order in {shard}: record 2 sorts "
        f"before record 1 ({rows[1]['key']!r}, copy {rows[1]['copy']}); the job writes records in the order of "
        "the hash of (key, copy)"
    ], report.text(str(out))


def test_a_label_flipped_with_every_checksum_made_to_match_is_found(clean, photos_with_bad, tmp_path):
    manifest = read_manifest(str(clean))

    def flip(records, rows):
        rows[1]["label"] = (rows[1]["label"] + 1) % len(manifest.classes)
        records[1] = _relabel(records[1], rows[1]["label"])

    out, shard, rows = _tampered(clean, tmp_path, flip)
    key, label = rows[1]["key"], rows[1]["label"]
    folder = key.split("/")[1]  # train/<class>/...
    expected = manifest.classes.index(folder)
    line = (
        f"{shard}[1] ({key!r}, copy {rows[1]['copy']}): label {label}, "
        f"but its key is in class folder {folder!r} (label {expected})"
    )
    for report in (verify(str(out)), verify(str(out), sample=1000), verify(str(out), source=str(photos_with_bad))):
        assert report.problems == [line], report.text(str(out))


def test_a_label_flipped_in_a_listings_run_is_found_against_the_source(from_listing, photos_with_bad, tmp_path):
    """A listing's labels are its rows': with the source at hand, each record's label is compared with it."""

    def flip(records, rows):
        rows[0]["label"] = rows[0]["label"] + 1
        records[0] = _relabel(records[0], rows[0]["label"])

    out, shard, rows = _tampered(from_listing, tmp_path, flip)
    assert verify(str(out)).ok  # without the source, a listing's labels are not known
    row = rows[0]
    line = f"{shard}[0] ({row['key']!r}, copy 0): label {row['label']}, but the source lists it with {row['label'] - 1}"
    for report in (verify(str(out), sample=3), verify(str(out), source=str(photos_with_bad.parent))):
        assert report.problems == [line], report.text(str(out))


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


def test_the_sample_is_the_records_with_the_smallest_hash(clean):
    """The same records as when verify sorted the whole index: the K smallest hashes of split, key and copy."""
    manifest = read_manifest(str(clean))
    every = sorted(iter_index(str(clean)), key=sample_order)
    for k in (1, 4, len(every) + 3):
        collected = Collected(k)
        for split, info in manifest.splits.items():
            for shard in range(info.num_shards):
                collected.add(check_shard(str(clean), manifest, split, shard, sample=k))
        assert collected.chosen() == every[:k]


# --- on folders written by the format's rules (no job) -------------------------------------------------------------

KEYS = [f"cat/{i}.jpg" for i in range(14)] + [f"dog/{i}.png" for i in range(11)]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A good folder: 2 splits of 3 shards, a failed input, a failed copy, listing errors (one a duplicate)."""
    out = tmp_path_factory.mktemp("made") / "out"
    write_output(
        out,
        {"train": KEYS, "validation": ["cat/v.jpg", "dog/v.jpg", "dog/w.jpg"]},
        copies=3,
        failed_inputs={"cat/3.jpg": "decode/CorruptImage", "dog/5.png": "read/Unreadable"},
        failed_records={("dog/2.png", 1): "augment/RangeError"},
        listing_errors={"stray.png": "listing/NotInClassFolder", "cat/1.jpg": "listing/DuplicateInput"},
    )
    return out


def _parts(out: Path, kind: str) -> list[Path]:
    return sorted(out.glob(f"{kind}-train-*.parquet"))


def _flip_a_byte(out: Path) -> None:
    shard = out / "train-00001-of-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[60] ^= 1
    shard.write_bytes(bytes(data))


def _swap_two_index_rows(out: Path) -> None:
    part = next(p for p in _parts(out, "index") if pq.read_metadata(p).num_rows > 2)
    rows = pq.read_table(part).to_pylist()
    rows[0], rows[1] = rows[1], rows[0]
    rewrite_part(out, part.name, rows)


def _move_an_error_row(out: Path) -> None:
    """An error row in a part the routing rules do not name (both parts' checksums updated)."""
    parts = _parts(out, "errors")
    source = next(p for p in parts if pq.read_metadata(p).num_rows)
    rows = pq.read_table(source).to_pylist()
    target = parts[(parts.index(source) + 1) % len(parts)]
    rewrite_part(out, target.name, pq.read_table(target).to_pylist() + rows[:1])
    rewrite_part(out, source.name, rows[1:])


def _misorder_errors(out: Path) -> None:
    part = next(p for p in _parts(out, "errors") if pq.read_metadata(p).num_rows > 1)
    rewrite_part(out, part.name, pq.read_table(part).to_pylist()[::-1])


def _rename_an_error_split(out: Path) -> None:
    part = next(p for p in _parts(out, "errors") if pq.read_metadata(p).num_rows)
    rows = pq.read_table(part).to_pylist()
    rows[0]["split"] = "nosuch"
    rewrite_part(out, part.name, rows)


def _extra_and_missing_files(out: Path) -> None:
    (out / "notes.txt").write_text("extra")
    _parts(out, "errors")[0].unlink()


TAMPERING = {
    "flipped byte": (_flip_a_byte, "train-00001-of-00003.tfrecord: "),
    "swapped index rows": (_swap_two_index_rows, "out of hash order"),
    "error row in another part": (_move_an_error_row, "the routing rules put it in shard"),
    "error rows out of order": (_misorder_errors, "out of order (rows are sorted by key, copy, stage)"),
    "error row of another split": (_rename_an_error_split, "names split 'nosuch'"),
    "extra and missing files": (_extra_and_missing_files, "named by the manifest but missing"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_tampering_is_found(made, tmp_path, tamper):
    change, message = TAMPERING[tamper]
    out = tmp_path / "out"
    shutil.copytree(made, out)
    change(out)
    report = verify(str(out))
    assert not report.ok and any(message in p for p in report.problems), report.text(str(out))


def test_a_failed_input_with_records_is_found_by_the_sums(made, tmp_path):
    """A failed input's copy written in another shard, a good input's copy gone: every count still adds up."""
    failed, copy = next(
        (key, c)
        for key in KEYS[4:]
        for c in (1, 2)
        if record_order(key, c) % 3 != record_order(key, 0) % 3  # not in the shard of its error row
    )
    out = tmp_path / "out"
    write_output(
        out,
        {"train": KEYS, "validation": ["cat/v.jpg", "dog/v.jpg", "dog/w.jpg"]},
        copies=3,
        failed_inputs={failed: "decode/CorruptImage", "dog/5.png": "read/Unreadable"},
        failed_records={("dog/2.png", 1): "augment/RangeError"},
        listing_errors={"stray.png": "listing/NotInClassFolder", "cat/1.jpg": "listing/DuplicateInput"},
        add_records=(("train", failed, copy),),
        drop_records=(("train", next(k for k in KEYS[4:] if k != failed), 2),),
    )
    report = verify(str(out))
    assert not report.ok
    assert [p for p in report.problems if "each decoded input has each copy exactly once" in p], report.problems


def test_the_default_checks_every_file_and_reads_each_once(made, monkeypatch):
    report = verify(str(made))
    assert report.ok, report.text(str(made))
    manifest = read_manifest(str(made))
    shards = sum(info.num_shards for info in manifest.splits.values())
    written = sum(info.counts.written for info in manifest.splits.values())
    assert report.checked["shards"] == shards and report.checked["file checksums"] == 3 * shards
    assert report.checked["records read"] == report.checked["index rows"] == written
    assert report.checked["error rows"] == manifest.error_rows == 5


def test_a_broken_shard_does_not_flood_the_report(made, tmp_path, monkeypatch):
    """Failures are capped per shard and in all; the text says how many more there were."""
    monkeypatch.setattr(verify_module, "SHARD_FAILURES", 2)
    out = tmp_path / "out"
    shutil.copytree(made, out)
    part = _parts(out, "index")[0]
    rows = pq.read_table(part).to_pylist()
    for row in rows:
        row["label"] += 1
    rewrite_part(out, part.name, rows)
    report = verify(str(out))
    assert len([p for p in report.problems if "says otherwise" in p]) == 2 and report.more_problems >= 1
    assert f"{len(report.problems) + report.more_problems} problem(s)" in report.text(str(out))


def test_collected_is_the_same_in_any_order_and_through_json(made):
    manifest = read_manifest(str(made))
    checks = [
        check_shard(str(made), manifest, split, shard, sample=4)
        for split, info in manifest.splits.items()
        for shard in range(info.num_shards)
    ]
    forward = Collected(4)
    for check in checks:
        forward.add(check)
    backward = Collected(4)
    for check in reversed(checks):
        backward.merge(Collected(4).add(check))
    back = Collected.from_json(json.loads(json.dumps(backward.to_json())))
    assert back.chosen() == forward.chosen() and len(forward.chosen()) == 4
    assert back.splits == forward.splits and back.checked == forward.checked


# --- as a Beam job ----------------------------------------------------------------------------------------------------


def test_a_beam_job_gives_the_same_report(made, tmp_path, capsys):
    local = verify(str(made), sample=0)
    beam = verify(str(made), beam_args=[])
    assert beam.ok and beam.text("x") == local.text("x")
    assert main(["verify", str(made), "--runner", "DirectRunner"]) == 0
    assert capsys.readouterr().out.strip() == local.text(str(made))
    for name in sorted(TAMPERING):
        change, message = TAMPERING[name]
        out = tmp_path / name.replace(" ", "_")
        shutil.copytree(made, out)
        change(out)
        here, there = verify(str(out)), verify(str(out), beam_args=["--direct_num_workers=2"])
        assert not there.ok and any(message in p for p in there.problems), name
        assert there.text("x") == here.text("x"), name


def test_memory_stays_flat_as_the_output_grows(tmp_path):
    """Four times the records in four times the shards: the same peak (no structure grows with the records)."""
    import tracemalloc

    peaks = []
    for n, shards in ((300, 3), (1200, 12)):
        out = tmp_path / f"out{n}"
        write_output(out, {"train": [f"cat/{i}.jpg" for i in range(n)]}, copies=2, num_shards=shards)
        verify(str(out))  # imports and caches first
        tracemalloc.start()
        report = verify(str(out))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.ok and report.checked["records read"] == 2 * n
    assert peaks[1] < 1.25 * peaks[0], peaks
