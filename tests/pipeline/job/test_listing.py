"""Listing folders and CSV / Parquet / JSONL files: labels, splits, keys, duplicates, errors."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserError
from pipeline.job.listing import list_inputs
from tests.helpers import DATA, PHOTOS


def make_tree(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / "gray.png", path)
    return root


def test_split_folders_and_sorted_class_labels():
    listing = list_inputs(str(PHOTOS))
    assert listing.classes == ["everyday", "microscopy", "textures"]
    assert listing.splits() == ["train", "validation"]
    item = next(i for i in listing.items if i.key == "train/textures/brick.png")
    assert (item.label, item.split) == (2, "train")
    assert listing.listed["validation"] == 4 and not listing.errors


def test_folder_without_splits_is_train_and_reports_stray_files(tmp_path):
    make_tree(tmp_path, ["dogs/a b ü.png", "cats/x/nested.png", "cats/1.png", "README.png", ".hidden/c.png"])
    listing = list_inputs(str(tmp_path))
    assert listing.classes == ["cats", "dogs"]
    assert {i.key: (i.label, i.split) for i in listing.items} == {
        "cats/1.png": (0, "train"),
        "cats/x/nested.png": (0, "train"),
        "dogs/a b ü.png": (1, "train"),
    }
    assert [(e.key, e.error_type) for e in listing.errors] == [("README.png", "NotInClassFolder")]
    assert listing.listed["train"] == 4


def test_mixed_split_and_class_folders_is_an_error(tmp_path):
    make_tree(tmp_path, ["train/cats/1.png", "dogs/2.png"])
    with pytest.raises(UserError, match="mixes split folders"):
        list_inputs(str(tmp_path))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_listing_files(tmp_path, fmt):
    make_tree(tmp_path, ["img/a.png", "img/b.png", "img/c.png", "img/d.png"])
    rows = [
        {"path": "img/a.png", "label": "dog", "split": "train"},
        {"path": str(tmp_path / "img/b.png"), "label": "cat", "split": "validation"},
        {"path": "img/c.png", "label": "cat", "split": None},
        {"path": "img/a.png", "label": "dog", "split": "train"},  # duplicate
        {"path": "img/d.png", "label": None, "split": "train"},  # missing label
    ]
    path = tmp_path / f"list.{fmt}"
    table = pa.Table.from_pylist(rows)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    listing = list_inputs(str(path))
    assert listing.classes == ["cat", "dog"]
    assert [(i.key, i.label, i.split) for i in listing.items] == [
        ("img/a.png", 1, "train"),
        ("img/b.png", 0, "validation"),
        ("img/c.png", 0, "train"),
    ]
    assert sorted((e.key, e.error_type) for e in listing.errors) == [
        ("img/a.png", "DuplicateInput"),
        ("img/d.png", "MissingLabel"),
    ]
    assert listing.listed == {"train": 4, "validation": 1}


def test_duplicates_are_resolved_the_same_whatever_the_order(tmp_path):
    make_tree(tmp_path, ["a.png"])
    for order in ([("a.png", 2, "train"), ("a.png", 1, "test")], [("a.png", 1, "test"), ("a.png", 2, "train")]):
        path = tmp_path / "l.jsonl"
        path.write_text("".join(json.dumps({"path": p, "label": lab, "split": s}) + "\n" for p, lab, s in order))
        listing = list_inputs(str(path))
        assert [(i.label, i.split) for i in listing.items] == [(1, "test")]
        assert [e.error_type for e in listing.errors] == ["DuplicateInput"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "lists no files"),
        (lambda p: (p / "l.csv").write_text("file,label\na.png,1\n") and p / "l.csv", "no 'path' column"),
        (lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "is a file but not a listing"),
        (lambda p: (p / "l.parquet").write_text("junk") and p / "l.parquet", "cannot read as parquet"),
    ],
)
def test_bad_inputs_fail_before_work(tmp_path, setup, message):
    with pytest.raises(UserError, match=message):
        list_inputs(str(setup(tmp_path)))


def test_remote_listing_paths_keep_their_scheme():
    from pipeline.job.listing import _key_for, _resolve

    assert _resolve("gs://bucket/data", "img/../img/a.jpg") == "gs://bucket/data/img/a.jpg"
    assert _key_for("gs://bucket/data", "img/a.jpg") == "img/a.jpg"
    assert _resolve("gs://bucket/data", "s3://other/x.png") == "s3://other/x.png"


def test_no_usable_input_is_refused(tmp_path):
    make_tree(tmp_path, ["a.png", "b.png"])  # a flat folder: no class subfolders
    with pytest.raises(UserError, match="none of its 2 entries can be used.*not inside a class folder"):
        list_inputs(str(tmp_path))


def test_bad_split_name_is_refused(tmp_path):
    make_tree(tmp_path, ["a.png"])
    (tmp_path / "l.csv").write_text("path,label,split\na.png,0,../escape\n")
    with pytest.raises(UserError, match="split '../escape' is not a lowercase name"):
        list_inputs(str(tmp_path / "l.csv"))


def test_fixed_classes_report_unknown_labels(tmp_path):
    make_tree(tmp_path / "tree", ["cat/1.png", "dog/2.png", "fox/3.png"])
    folder = list_inputs(str(tmp_path / "tree"), classes=("dog", "cat"))
    assert folder.classes == ["dog", "cat"]
    assert [(i.key, i.label) for i in folder.items] == [("cat/1.png", 1), ("dog/2.png", 0)]
    assert [(e.key, e.error_type) for e in folder.errors] == [("fox/3.png", "UnknownLabel")]
    assert "'fox' is not one of --classes" in folder.errors[0].message
    make_tree(tmp_path, ["img/a.png", "img/b.png", "img/c.png"])
    listing = tmp_path / "l.jsonl"
    rows = [{"path": "img/a.png", "label": "cat"}, {"path": "img/b.png", "label": "wolf"}, {"path": "img/c.png"}]
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = list_inputs(str(listing), classes=("dog", "cat"))
    assert [(i.key, i.label) for i in table.items] == [("img/a.png", 1)]
    assert sorted((e.key, e.error_type) for e in table.errors) == [
        ("img/b.png", "UnknownLabel"),
        ("img/c.png", "MissingLabel"),
    ]
    numbers = tmp_path / "n.jsonl"
    numbers.write_text(
        json.dumps({"path": "img/a.png", "label": 5}) + "\n" + json.dumps({"path": "img/b.png", "label": 1})
    )
    assert [e.error_type for e in list_inputs(str(numbers), classes=("dog", "cat")).errors] == ["UnknownLabel"]


def test_nan_label_with_fixed_classes_is_reported(tmp_path):
    make_tree(tmp_path, ["img/a.png", "img/b.png"])
    path = tmp_path / "l.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"path": "img/a.png", "label": float("nan")}, {"path": "img/b.png", "label": 1.0}]), path
    )
    listing = list_inputs(str(path), classes=("dog", "cat"))
    assert [(e.key, e.error_type) for e in listing.errors] == [("img/a.png", "InvalidLabel")]
    assert [(i.key, i.label) for i in listing.items] == [("img/b.png", 1)]
