"""Listing columns ``labels``, ``values`` and ``mask``: each read from CSV, Parquet and JSONL, each bad cell an
error row of stage ``listing``, and the same on the workers as in one process."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.format.manifest import ErrorRow
from pipeline.job.chunks import pack, unpack
from pipeline.job.listing import InputItem, list_inputs
from pipeline.job.target_columns import parse_labels, parse_values, values_dim
from tests.pipeline.job.test_list_stage import _collect, _make_tree

FILES = ["img/a.png", "img/b.png", "img/c.png", "img/d.png", "img/e.png", "img/f.png", "m/a.png", "m/b.png"]


def _write(tmp_path, fmt: str, rows: list[dict]) -> str:
    """The rows as a listing: CSV cells as ``;``-joined strings, Parquet and JSONL cells as lists."""
    listing = tmp_path / f"list.{fmt}"
    if fmt == "csv":
        header = list(rows[0])
        lines = [",".join(header)]
        for row in rows:
            cells = [
                ";".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v)) for v in row.values()
            ]
            lines.append(",".join(cells))
        listing.write_text("\n".join(lines) + "\n")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), listing, row_group_size=3)
    else:
        listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(listing)


def _by_key(listing) -> tuple[dict[str, InputItem], dict[str, ErrorRow]]:
    return {i.key: i for i in listing.items}, {e.key: e for e in listing.errors}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_each_column_is_read_and_each_bad_cell_is_a_listing_error(tmp_path, fmt):
    _make_tree(tmp_path, FILES)
    rows = [
        {"path": "img/a.png", "labels": ["dog", "cat", "dog"], "values": [0.5, -2.0], "mask": "m/a.png"},
        {"path": "img/b.png", "labels": [], "values": [1.0, 2.0], "mask": "m/b.png"},
        {"path": "img/c.png", "labels": ["bird"], "values": [1.0], "mask": "m/a.png"},  # wrong length
        {"path": "img/d.png", "labels": ["cat"], "values": [1.0, 3.0], "mask": "m/none.png"},  # no such mask
        {"path": "img/e.png", "labels": ["cat"], "values": [1.0, 3.0], "mask": None},  # empty mask cell
        {"path": "img/f.png", "labels": ["cat"], "values": None, "mask": "m/b.png"},  # empty values cell
    ]
    listing = list_inputs(_write(tmp_path, fmt, rows))
    items, errors = _by_key(listing)
    assert listing.classes == ["bird", "cat", "dog"]  # names from labels join the class list
    assert items["img/a.png"].labels == (1, 2) and items["img/a.png"].values == (0.5, -2.0)
    assert items["img/a.png"].mask == str(tmp_path / "m/a.png")
    assert items["img/b.png"].labels == () and items["img/b.png"].label == -1  # an empty set; no label column
    assert sorted(items) == ["img/a.png", "img/b.png"]
    assert {k: (e.stage, e.error_type) for k, e in errors.items()} == {
        "img/c.png": ("listing", "InvalidValues"),
        "img/d.png": ("listing", "MaskNotFound"),
        "img/e.png": ("listing", "MissingMask"),
        "img/f.png": ("listing", "MissingValues"),
    }
    assert "values has 1 numbers, the listing's rows have 2" in errors["img/c.png"].message
    assert "m/none.png" in errors["img/d.png"].message


def test_csv_labels_and_values_are_semicolon_separated(tmp_path):
    _make_tree(tmp_path, FILES)
    (tmp_path / "list.csv").write_text(
        "path,label,labels,values\n"
        "img/a.png,0,2;0,1.5\n"  # indices; one value (a float column)
        "img/b.png,1,,2.5\n"
        "img/c.png,1,1;2.5,0.5\n"  # 2.5 is no class index
        "img/d.png,1,-1,0.5\n"
        "img/e.png,1,0,inf\n"  # (pyarrow reads a CSV "nan" as an empty cell: MissingValues)
    )
    listing = list_inputs(str(tmp_path / "list.csv"))
    items, errors = _by_key(listing)
    assert (items["img/a.png"].labels, items["img/a.png"].values) == ((0, 2), (1.5,))
    assert items["img/b.png"].labels == ()
    assert listing.classes == ["0", "1", "2"]  # numbered up to the largest index in label and labels
    assert {k: e.error_type for k, e in errors.items()} == {
        "img/c.png": "InvalidLabels",
        "img/d.png": "InvalidLabels",
        "img/e.png": "InvalidValues",
    }
    assert "not finite" in errors["img/e.png"].message


def test_unknown_class_names_with_classes_are_listing_errors(tmp_path):
    _make_tree(tmp_path, FILES)
    rows = [
        {"path": "img/a.png", "labels": ["cat", "dog"]},
        {"path": "img/b.png", "labels": ["cat", "fox"]},
        {"path": "img/c.png", "labels": ["5"]},  # one type per JSON column: digits are an index
    ]
    listing = list_inputs(_write(tmp_path, "jsonl", rows), classes=("cat", "dog"))
    items, errors = _by_key(listing)
    assert items["img/a.png"].labels == (0, 1)
    assert {k: e.error_type for k, e in errors.items()} == {"img/b.png": "UnknownLabel", "img/c.png": "UnknownLabel"}
    assert "'fox'" in errors["img/b.png"].message


def test_cell_parsers():
    index = {"cat": 0, "dog": 1}
    assert parse_labels("dog; cat", index, False) == (0, 1)
    assert parse_labels(["dog", 0, 1.0], index, False) == (0, 1)
    assert parse_labels({"a": 1}, index, False)[0] == "InvalidLabels"
    assert parse_labels([True], index, False)[0] == "InvalidLabels"
    assert parse_labels("cat;;dog", index, False)[0] == "InvalidLabels"
    assert parse_values("1;2.5", 2) == (1.0, 2.5) and parse_values(3, None) == (3.0,)
    assert parse_values("1;x", None)[0] == "InvalidValues"
    assert parse_values([1.0, float("inf")], 2)[0] == "InvalidValues"
    assert values_dim({2: 5, 3: 5, 1: 1}) == 2 and values_dim({}) is None


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_workers_list_targets_as_one_process_does(tmp_path, fmt):
    _make_tree(tmp_path, FILES)
    rows = [
        {"path": "img/a.png", "labels": ["dog", "cat"], "values": [0.5, 1.0], "mask": "m/a.png"},
        {"path": "img/b.png", "labels": ["cat"], "values": [1.0, 2.0], "mask": "m/b.png"},
        {"path": "img/c.png", "labels": ["cat"], "values": [1.0], "mask": "m/b.png"},
        {"path": "img/d.png", "labels": ["cat"], "values": [1.0, 2.0], "mask": "m/x.png"},
        {"path": "img/a.png", "labels": ["cat"], "values": [1.0, 2.0], "mask": "m/b.png"},  # a duplicate
    ]
    source = _write(tmp_path, fmt, rows)
    one = list_inputs(source)
    items, errors, plan = _collect(source, str(tmp_path / "out"), spill_dir=str(tmp_path / "spill"))
    assert items == sorted(one.items, key=lambda i: i.key)
    assert errors == sorted(one.errors, key=lambda e: (e.key, e.message))
    assert [i.key for i in items] == ["img/a.png", "img/b.png"]
    assert plan.columns == {"train": ("labels", "mask", "values")} and plan.values_dim == 2
    assert list(plan.classes) == ["cat", "dog"]


def test_packed_targets_cost_little_and_rows_without_them_pack_as_before():
    """Bytes per row crossing a stage (``chunks.pack``), 4,096 rows, without and with target columns."""
    plain = [InputItem(f"c/{i:05d}.png", f"/in/c/{i:05d}.png", i % 10, "train") for i in range(4096)]
    with_targets = [
        InputItem(i.key, i.path, i.label, i.split, (i.label, 7), (0.25 * i.label, 1.0), f"/in/m/{i.key}") for i in plain
    ]
    packed_plain, packed_targets = pack("item", plain, "/in/"), pack("item", with_targets, "/in/")
    assert unpack(packed_plain, "/in/") == plain and unpack(packed_targets, "/in/") == with_targets
    assert b"labels" not in __import__("zlib").decompress(packed_plain.data)  # no column at all when unused
    per_row = (len(packed_plain.data) / 4096, len(packed_targets.data) / 4096)
    print(f"bytes per row: {per_row[0]:.1f} without targets, {per_row[1]:.1f} with labels, values and mask")
    assert per_row[1] < 40
