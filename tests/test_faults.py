"""Nothing lost, nothing duplicated, same bytes: replays, retries, shuffles, kills, leftovers, bad inputs."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

from pipeline import fsutil
from pipeline.checks.verify import verify
from pipeline.cli import main
from pipeline.job import shard as shard_worker
from tests.helpers import CLEAN_ARGS, DATA, PHOTOS, in_process, read_errors, read_index, run, shard_bytes
from tests.helpers import write_listing as _listing


def test_bundle_replay_gives_the_same_bytes(photos_with_bad, clean, tmp_path):
    out = tmp_path / "out"
    run(photos_with_bad, out, ["--direct_runner_bundle_repeat=2"], **CLEAN_ARGS)
    assert shard_bytes(out) == shard_bytes(clean)


def test_failed_first_attempts_are_retried_to_the_same_bytes(photos_with_bad, clean, tmp_path, monkeypatch):
    """A runner that retries failed bundles (Beam's BundleBasedDirectRunner, like Dataflow) loses nothing."""
    real = shard_worker.ShardProcessor.process
    attempts: dict[tuple[str, int], int] = {}

    def flaky(self, split, shard, plan, planned, refused):
        attempts[(split, shard)] = attempts.get((split, shard), 0) + 1
        # One shard fails once (a bundle holds several: each retry reruns them all, up to 4 attempts).
        if (split, shard) == ("train", 0) and attempts[(split, shard)] == 1:
            raise RuntimeError("injected failure on the first attempt")
        return real(self, split, shard, plan, planned, refused)

    monkeypatch.setattr(shard_worker.ShardProcessor, "process", flaky)
    out = tmp_path / "out"
    run(photos_with_bad, out, ["--runner=BundleBasedDirectRunner"], **CLEAN_ARGS)
    assert attempts[("train", 0)] > 1
    assert shard_bytes(out) == shard_bytes(clean)
    assert verify(str(out)).ok


def test_shuffled_listing_gives_the_same_bytes(photos_with_bad, tmp_path):
    files = sorted(p for p in photos_with_bad.rglob("*") if p.is_file())
    shuffled = list(files)
    random.Random(3).shuffle(shuffled)
    assert shuffled != files
    outs = []
    for name, rows in (("sorted", files), ("shuffled", shuffled)):
        listing = _listing(photos_with_bad, rows, photos_with_bad.parent / f"{name}.csv")
        outs.append(tmp_path / name)
        run(listing, outs[-1], **CLEAN_ARGS)
    first, second = shard_bytes(outs[0]), shard_bytes(outs[1])
    assert first.keys() == second.keys()
    for name in first:
        if name == "report.html":  # names the input, as the manifest does
            assert first[name].replace(b"sorted.csv", b"shuffled.csv") == second[name]
        elif name != "manifest.json":
            assert first[name] == second[name], name
    manifests = [json.loads(m["manifest.json"]) for m in (first, second)]
    for m in manifests:  # only the listing's own name differs (and so the report that shows it, and the run id)
        del m["input"]["root"], m["config"]["input"], m["files"]["side"]["report.html"], m["run"]
    assert manifests[0] == manifests[1]
    assert verify(str(outs[1]), sample=5).ok  # sources found next to the listing


def test_killed_run_then_rerun_with_overwrite(photos_with_bad, clean, tmp_path, monkeypatch, capsys):
    real = shard_worker.ShardProcessor.process
    done = []

    def dies_after_one_shard(self, split, shard, plan, planned, refused):
        if done:
            raise SystemExit("killed")  # the worker dies mid-job
        done.append(real(self, split, shard, plan, planned, refused))
        return done[-1]

    monkeypatch.setattr(shard_worker.ShardProcessor, "process", dies_after_one_shard)
    out = tmp_path / "out"
    with pytest.raises(BaseException, match="killed"):
        run(photos_with_bad, out, **CLEAN_ARGS)
    monkeypatch.undo()
    assert list(out.glob("*.tfrecord")) and not (out / "manifest.json").exists()
    assert not verify(str(out)).ok  # an unfinished folder never verifies
    base = ["run", "--input", str(photos_with_bad), "--output", str(out), "--image-size", "32", "32"]
    base += ["--copies", "2", "--num-shards", "3", "--seed", "1", "--max-error-rate", "0.5"]
    assert main(base) == 2 and "not empty; pass --resume to continue its unfinished run" in capsys.readouterr().err
    assert main(in_process([*base, "--overwrite"])) == 0
    assert shard_bytes(out) == shard_bytes(clean)


def test_leftovers_of_an_older_run_are_replaced(photos_with_bad, clean, tmp_path):
    out = tmp_path / "out"
    run(photos_with_bad, out, copies=1, num_shards=5, encoding="png")
    (out / ".augbeam-work").mkdir()
    (out / ".augbeam-work" / "train-00004.json").write_text("{}")
    (out / "train-00001-of-00003.tfrecord.tmp-dead").write_bytes(b"partial")
    run(photos_with_bad, out, overwrite=True, **CLEAN_ARGS)
    assert shard_bytes(out) == shard_bytes(clean)
    assert verify(str(out), sample=2).ok


def test_transient_read_errors_are_retried_not_written_off(photos_with_bad, clean, tmp_path, monkeypatch):
    real = fsutil.read_bytes
    failed: set[str] = set()

    def flaky(path):
        if path.endswith(".png") and path not in failed:
            failed.add(path)
            raise OSError(5, "Input/output error (injected)")
        return real(path)

    monkeypatch.setattr(fsutil, "read_bytes", flaky)
    monkeypatch.setattr(shard_worker.time, "sleep", lambda s: None)
    out = tmp_path / "out"
    run(photos_with_bad, out, **CLEAN_ARGS)
    assert failed and shard_bytes(out) == shard_bytes(clean)


def test_a_read_that_keeps_failing_fails_the_job(photos_with_bad, tmp_path, monkeypatch):
    """A timeout every time says "try later", not "bad file": the runner's retry, not an error row."""
    real = fsutil.read_bytes

    def broken(path):
        if path.endswith("horse.png"):
            raise OSError(errno.ETIMEDOUT, "Connection timed out (injected, every time)")
        return real(path)

    monkeypatch.setattr(fsutil, "read_bytes", broken)
    monkeypatch.setattr(shard_worker.time, "sleep", lambda s: None)
    with pytest.raises(Exception, match="horse.png.*failed 3 times"):
        run(photos_with_bad, tmp_path / "out", **CLEAN_ARGS)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_file_that_never_reads_is_its_inputs_error(tmp_path, capsys):
    """A real EIO on every read (/proc/self/mem at offset 0, as a bad sector gives): an error row, the job goes on."""
    images = tmp_path / "img"
    images.mkdir()
    for name in ("gray.png", "rocket_small.jpg"):
        shutil.copy(DATA / name, images / name)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\nimg/gray.png,0\nimg/rocket_small.jpg,1\n/proc/self/mem,1\n")
    out = tmp_path / "out"
    argv = ["run", "--input", str(listing), "--output", str(out), "--image-size", "16", "16", "--copies", "2"]
    assert main(in_process([*argv, "--num-shards", "1", "--max-error-rate", "0.5"])) == 0
    assert sorted({row["key"] for row in read_index(out)}) == ["img/gray.png", "img/rocket_small.jpg"]
    (row,) = read_errors(out)
    assert (row["key"], row["copy"], row["stage"], row["error_type"]) == ("/proc/self/mem", None, "read", "Unreadable")
    assert row["message"].startswith("cannot be read: Input/output error (EIO) on each of 3 tries")
    assert verify(str(out)).ok


def test_symlink_loops_and_links_out_of_the_input_are_listing_rows(tmp_path):
    """The reported folders: two loops (listed for hours) and `ln -s .. cats/up` (8 photos became 288 inputs).

    The job runs in its own process group with a deadline: a listing that runs away fails this test, not the suite.
    """
    root = tmp_path / "in"
    for n, cls in enumerate(("cats", "dogs")):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            shutil.copy(DATA / ("gray.png" if n else "rocket_small.jpg"), root / cls / f"{i}.png")
    os.symlink("..", root / "cats" / "up")
    os.symlink("b", root / "dogs" / "a")
    os.symlink("a", root / "dogs" / "b")
    os.symlink("../../in", root / "dogs" / "root")
    os.symlink(DATA, root / "dogs" / "data")  # out of the input folder
    os.link(root / "cats" / "0.png", root / "dogs" / "cat_as_dog.png")  # a hard link: one more input
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "pipeline", "run", "--input", str(root), "--output", str(out)]
    argv += ["--image-size", "16", "16", "--copies", "1", "--num-shards", "2", "--max-error-rate", "0.5"]
    job = subprocess.Popen(
        [*argv, "--", "--direct_num_workers=1"], start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = job.communicate(timeout=240)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 0, err
    labels = {row["key"]: row["label"] for row in read_index(out)}
    assert labels == {
        **{f"cats/{i}.png": 0 for i in range(4)},
        **{f"dogs/{i}.png": 1 for i in range(4)},
        "dogs/cat_as_dog.png": 1,
    }
    errors = {row["key"]: (row["stage"], row["error_type"]) for row in read_errors(out)}
    assert errors == {
        "cats/up": ("listing", "SymlinkLoop"),
        "dogs/a": ("listing", "SymlinkLoop"),
        "dogs/b": ("listing", "SymlinkLoop"),
        "dogs/root": ("listing", "SymlinkLoop"),
        "dogs/data": ("listing", "SymlinkOutsideRoot"),
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["counts"]["listed"] == 9 + 5
    assert verify(str(out), source=str(root)).ok


def test_max_error_rate_fails_with_a_summary(photos_with_bad, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(in_process(["run", "--input", str(photos_with_bad), "--output", str(out), "--image-size", "16", "16"]))
    lines = capsys.readouterr().err.strip().splitlines()
    # Progress lines (stderr is not a terminal; a slow host also gets "elapsed" lines), the final count, the error.
    assert code == 2 and len(lines) >= 2
    assert lines[-2].startswith("augbeam: processed 17/17 records")
    assert all(line.startswith("augbeam: ") and "elapsed" in line for line in lines[:-2])
    err = lines[-1]
    assert err.startswith("augbeam: error: ")
    assert "2 of 17 inputs (11.8%)" in err and "over --max-error-rate 0.1" in err
    assert "decode/CorruptImage" in err and "decode/UnknownFormat" in err
    assert list(out.glob("errors-*.parquet")) and not (out / "manifest.json").exists()
    # No side files either: TFDS must not load a failed run, and the report would describe one as finished.
    assert not (out / "dataset_info.json").exists() and not (out / "report.html").exists()


def test_folder_of_bad_inputs_runs_to_completion_and_verifies(tmp_path):
    """Every kind of bad input next to good photos: each written or reported with a reason; verify passes."""
    from PIL import Image

    root = tmp_path / "in"
    good = root / "train" / "good"
    bad = root / "train" / "bad"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    for src in sorted((PHOTOS / "train" / "everyday").iterdir())[:3]:
        shutil.copy(src, good / src.name)
    shutil.copy(PHOTOS / "train" / "everyday" / "horse.png", good / "name with spaces.png")
    shutil.copy(PHOTOS / "train" / "everyday" / "coins.png", good / "ünïcödé – 写真 #1 & (copy).png")
    shutil.copy(DATA / "rocket_small.jpg", good / "really_a_jpeg.png")
    Image.new("RGB", (1, 1), (10, 200, 30)).save(good / "one_pixel.png")
    for name in ("empty.jpg", "truncated_half.jpg", "trailing_garbage.jpg", "not_an_image.jpg", "page.jpg"):
        shutil.copy(DATA / name, bad / name)
    shutil.copy(DATA / "huge_header.png", bad / "huge_header.png")
    data = (DATA / "rocket_small.jpg").read_bytes()
    (bad / "missing_end.jpg").write_bytes(data[:-200])
    shutil.copy(DATA / "gray.png", bad / "gray_named.jpg")  # a PNG named .jpg: fine, read by content
    (bad / "notes.txt").write_text("a text file\n")
    os.symlink(bad / "nowhere.jpg", bad / "broken_link.jpg")
    formats = root / "train" / "formats"  # read through tensorflow-io, by content
    formats.mkdir()
    for name in ("rgb8.tif", "gray16.tif", "rgb16.png", "lossy.webp", "exif_rotate6.jpg", "cmyk.jpg", "window.dcm"):
        shutil.copy(DATA / name, formats / name)
    shutil.copy(DATA / "lossy.webp", formats / "webp_named.png")
    for name in ("image.avif", "image.jp2", "no_pixels.dcm"):
        shutil.copy(DATA / name, bad / name)
    out = tmp_path / "out"
    manifest = run(root, out, copies=2, num_shards=2, max_error_rate=1.0)
    errors = {row["key"]: row for row in read_errors(out)}
    written = {row["key"] for row in read_index(out)}
    listed = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    assert written | set(errors) == listed and not written & set(errors)
    expect_errors = {
        "empty.jpg": "EmptyFile",
        "truncated_half.jpg": "CorruptImage",
        "not_an_image.jpg": "UnknownFormat",
        "page.jpg": "UnknownFormat",
        "huge_header.png": "TooLarge",
        "notes.txt": "UnknownFormat",
        "broken_link.jpg": "Unreadable",
        "image.avif": "UnsupportedFormat",
        "image.jp2": "UnsupportedFormat",
        "no_pixels.dcm": "UnsupportedFormat",
    }
    for name, kind in expect_errors.items():
        row = errors[f"train/bad/{name}"]
        assert row["error_type"] == kind and row["message"], (name, row)
        assert "Traceback" not in row["message"] and len(row["message"]) < 300
    assert "train/good/ünïcödé – 写真 #1 & (copy).png" in written
    assert "train/good/one_pixel.png" in written and "train/bad/gray_named.jpg" in written
    assert {str(p.relative_to(root)) for p in formats.iterdir()} <= written
    counts = manifest.splits["train"].counts
    assert counts.listed == len(listed) and counts.written == 2 * len(written)
    report = verify(str(out), sample=8, source=str(root))
    assert report.ok, report.problems


def test_temp_files_of_failed_attempts_are_removed_and_strangers_refused(photos_with_bad, clean, tmp_path, monkeypatch):
    """A bundle that dies mid-write leaves a temp file: the finished folder must not keep it."""
    real = shard_worker.ShardProcessor.process
    out = tmp_path / "out"

    def leaves_temp(self, split, shard, plan, planned, refused):
        result = real(self, split, shard, plan, planned, refused)
        n = plan.shards[split]
        (out / f"{split}-{shard:05d}-of-{n:05d}.tfrecord.tmp-{'ab' * 16}").write_bytes(b"half")
        return result

    monkeypatch.setattr(shard_worker.ShardProcessor, "process", leaves_temp)
    run(photos_with_bad, out, **CLEAN_ARGS)
    assert shard_bytes(out) == shard_bytes(clean) and verify(str(out)).ok

    def stranger(self, split, shard, plan, planned, refused):
        (out / "someone_elses.txt").write_text("hello")
        return real(self, split, shard, plan, planned, refused)

    monkeypatch.setattr(shard_worker.ShardProcessor, "process", stranger)
    with pytest.raises(Exception, match="'someone_elses.txt' appeared in the output folder"):
        run(photos_with_bad, out, overwrite=True, **CLEAN_ARGS)
    assert not (out / "manifest.json").exists()


def test_pipes_sockets_and_bad_names_are_reported_not_fatal(tmp_path):
    import socket

    root = tmp_path / "in" / "train" / "x"
    root.mkdir(parents=True)
    for src in sorted((PHOTOS / "train" / "everyday").iterdir())[:2]:
        shutil.copy(src, root / src.name)
    os.mkfifo(root / "pipe.png")  # reading it would block forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock.png"))
    bad_name = os.path.join(os.fsencode(root), b"bad\xff.png")
    with open(bad_name, "wb") as handle:
        handle.write((PHOTOS / "train" / "everyday" / "horse.png").read_bytes())
    try:
        out = tmp_path / "out"
        run(tmp_path / "in", out, copies=1, num_shards=1, max_error_rate=1.0)
    finally:
        server.close()
    errors = {row["key"]: row["error_type"] for row in read_errors(out)}
    assert errors["train/x/pipe.png"] == "NotAFile" and errors["train/x/sock.png"] == "NotAFile"
    assert errors["train/x/bad\\xff.png"] == "BadFileName"
    assert verify(str(out)).ok


def test_permission_denied_is_the_inputs_error(photos_with_bad, tmp_path, monkeypatch):
    """Tests run as root here, where chmod 000 does not stop reads: the OS error is injected instead."""
    real = fsutil.read_bytes

    def denied(path):
        if path.endswith("coins.png"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(fsutil, "read_bytes", denied)
    out = tmp_path / "out"
    run(photos_with_bad, out, **CLEAN_ARGS)
    rows = [r for r in read_errors(out) if r["key"].endswith("coins.png")]
    assert [(r["stage"], r["error_type"]) for r in rows] == [("read", "Unreadable")]
    assert "Permission denied" in rows[0]["message"]
