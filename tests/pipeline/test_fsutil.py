"""pipeline/fsutil.py: atomic writes through a temporary name, the same calls for local paths and Beam URLs."""

from __future__ import annotations

from pipeline import fsutil


def test_write_atomic_leaves_no_temporary_file_and_replaces_the_old_bytes(tmp_path):
    target = str(tmp_path / "manifest.json")
    fsutil.write_atomic(target, b"first")
    fsutil.write_atomic(target, b"second")
    assert fsutil.read_bytes(target) == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_temporary_name_is_a_unique_sibling_until_committed(tmp_path):
    final = str(tmp_path / "shard.tfrecord")
    first, second = fsutil.temp_name(final), fsutil.temp_name(final)
    assert first != second and first.startswith(final + ".tmp-") and len(first) == len(final) + 37
    with fsutil.open_write(first) as handle:
        handle.write(b"records")
    assert not fsutil.exists(final)  # readers never see a half-written file under the final name
    fsutil.commit(first, final)
    assert fsutil.read_bytes(final) == b"records" and not fsutil.exists(first)


def test_clear_dir_deletes_the_named_files_first_and_keeps_the_folder(tmp_path):
    for name in ("a.tfrecord", "manifest.json", "sub/b.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    fsutil.clear_dir(str(tmp_path), first=["manifest.json"])
    assert tmp_path.is_dir() and fsutil.is_empty_dir(str(tmp_path))


def test_local_paths_and_urls_are_told_apart():
    assert fsutil.is_local("/data/out") and fsutil.is_local("out") and not fsutil.is_local("gs://bucket/out")
    assert fsutil.join("gs://bucket/out", "train-00000.tfrecord") == "gs://bucket/out/train-00000.tfrecord"
