"""pipeline/fsutil.py: atomic writes through a temporary name, the same calls for local paths and Beam URLs."""

from __future__ import annotations

import pytest

from pipeline import fsutil
from tests.helpers import DirFileSystem  # noqa: F401  (registers dirfs:// with Beam)


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


@pytest.mark.parametrize("scheme", ["", "dirfs://"])
def test_empty_and_clear_leave_out_the_names_they_are_told(tmp_path, scheme):
    """A folder holding only a run's lock counts as empty, and clearing it keeps the lock (local and dirfs://)."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".augbeam-lock").write_text("{}")
    path = scheme + str(folder)
    assert fsutil.is_empty_dir(path, ignore=(".augbeam-lock",))
    assert not fsutil.is_empty_dir(path)
    (folder / "manifest.json").write_text("{}")
    (folder / "sub").mkdir()
    (folder / "sub" / "shard.tfrecord").write_text("x")
    assert not fsutil.is_empty_dir(path, ignore=(".augbeam-lock",))
    fsutil.clear_dir(path, first=["manifest.json"], keep=(".augbeam-lock",))
    assert [p.name for p in folder.rglob("*") if p.is_file()] == [".augbeam-lock"]
