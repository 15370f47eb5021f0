"""Listing on the workers: the same inputs, errors, classes and counts as the one-process listing, and a graph
whose size does not grow with the input.
"""

from __future__ import annotations

import json
import os
import shutil

import apache_beam as beam
import pytest

from pipeline.cli import main
from pipeline.format.manifest import ErrorRow
from pipeline.job.chunks import Packed, pack, unpack
from pipeline.job.list_stage import ListInputs, expand_work
from pipeline.job.listing import InputItem, list_inputs, open_source
from pipeline.job.options import JobConfig
from pipeline.job.run import graph_size
from tests.helpers import DATA, in_process


def _collect(source: str, output: str, classes: tuple[str, ...] | None = None, spill_dir: str | None = None):
    """Runs ListInputs and expands its work with the plan: the inputs, listing errors and plan the job plans with
    (brought back through files: the runner may use other processes)."""
    import pickle
    import tempfile
    import uuid

    config = JobConfig.create(input=source, output=output, classes=classes, config="none")
    src = open_source(source, classes)
    where = tempfile.mkdtemp()

    def dump(value, name):
        with open(os.path.join(where, f"{name}-{uuid.uuid4().hex}.pkl"), "wb") as handle:
            pickle.dump(value, handle)

    with beam.Pipeline() as p:
        work, plan = p | ListInputs(config, src, spill_dir=spill_dir)
        found = work | "Expand" >> beam.FlatMap(
            lambda element, plan: list(expand_work(element, src, plan)), beam.pvalue.AsSingleton(plan)
        )
        _ = found | "DumpFound" >> beam.Map(dump, "found")
        _ = plan | "DumpPlan" >> beam.Map(dump, "plan")
    got: dict[str, list] = {"found": [], "plan": []}
    for name in os.listdir(where):
        with open(os.path.join(where, name), "rb") as handle:
            got[name.split("-")[0]].append(pickle.load(handle))
    shutil.rmtree(where)
    items = sorted((i for i in got["found"] if isinstance(i, InputItem)), key=lambda i: i.key)
    errors = sorted((e for e in got["found"] if isinstance(e, ErrorRow)), key=lambda e: (e.key, e.message))
    (plan,) = got["plan"]
    json.dumps(plan.to_json())  # the plan goes to run.json as is
    return items, errors, plan


def _make_tree(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / "gray.png", path)


@pytest.mark.parametrize("layout", ["classes", "splits"])
def test_folder_listing_on_workers_is_the_one_process_listing(tmp_path, layout):
    files = ["dogs/a b ü.png", "cats/x/nested.png", "cats/1.png", "README.png", ".hidden/c.png", "cats/.d.png"]
    if layout == "splits":
        files = [f"train/{f}" for f in files] + ["validation/cats/v.png", "validation/stray.png", "test/birds/t.png"]
    files += [".stash/s.png", ".stash/deeper/t.png"]
    _make_tree(tmp_path / "in", files)
    cats = tmp_path / "in" / ("train/cats" if layout == "splits" else "cats")
    os.symlink(DATA / "gray.png", cats / "link.png")  # out of the input folder: a listing error row
    os.symlink("..", cats / "up")  # a loop
    os.symlink(os.path.relpath(tmp_path / "in" / ".stash", cats), cats / "stash")  # hidden: followed, once
    os.symlink(os.path.relpath(tmp_path / "in" / ".stash" / "deeper", cats), cats / "again")  # reached already
    os.symlink(os.path.relpath(tmp_path / "in", cats.parent), cats.parent / "loop")  # a class folder that loops
    for classes in (None, ("dogs", "cats")):
        one = list_inputs(str(tmp_path / "in"), classes)
        assert {e.error_type for e in one.errors} >= {"SymlinkOutsideRoot", "SymlinkLoop", "DuplicateInput"}
        assert sorted(i.key.rsplit("/", 1)[1] for i in one.items if "/stash/" in i.key or "/again/" in i.key) == [
            "s.png",
            "t.png",
        ]  # each hidden file once
        items, errors, plan = _collect(str(tmp_path / "in"), str(tmp_path / "out"), classes)
        assert items == sorted(one.items, key=lambda i: i.key)
        assert errors == sorted(one.errors, key=lambda e: (e.key, e.message))
        assert list(plan.classes) == one.classes
        assert dict(plan.listed) == dict(one.listed)
        assert sum(plan.inputs.values()) == len(one.items)


@pytest.mark.parametrize("spilled", [False, True])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_table_listing_on_workers_is_the_one_process_listing(tmp_path, fmt, spilled):
    """Also with the rows going through files between stages (the DirectRunner's path: ``spill_dir``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    _make_tree(tmp_path, ["img/a.png", "img/b.png", "img/c.png", "img/d.png"])
    rows = [
        {"path": "img/a.png", "label": "dog", "split": "train"},
        {"path": str(tmp_path / "img/b.png"), "label": "cat", "split": "validation"},
        {"path": "img/c.png", "label": "cat", "split": None},
        {"path": "img/a.png", "label": "dog", "split": "train"},  # a duplicate
        {"path": "img/b.png", "label": "dog", "split": "train"},  # a duplicate, another split and label
        {"path": "", "label": "dog", "split": "train"},  # no path
        {"path": "img/d.png", "label": None, "split": "train"},  # no label
    ] * 3  # every file three times more: duplicates across row groups and chunks
    table = pa.Table.from_pylist(rows)
    listing = tmp_path / f"list.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(table, listing)
    elif fmt == "parquet":
        pq.write_table(table, listing, row_group_size=4)  # several row groups, read in parallel
    else:
        listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one = list_inputs(str(listing))
    spill_dir = tmp_path / "spill"
    items, errors, plan = _collect(str(listing), str(tmp_path / "out"), spill_dir=str(spill_dir) if spilled else None)
    assert spill_dir.is_dir() == spilled and (not spilled or any(spill_dir.iterdir()))
    assert items == sorted(one.items, key=lambda i: i.key)
    assert errors == sorted(one.errors, key=lambda e: (e.key, e.message))
    assert list(plan.classes) == one.classes == ["cat", "dog"]
    assert dict(plan.listed) == dict(one.listed)
    assert plan.refused["DuplicateInput"] == sum(e.error_type == "DuplicateInput" for e in one.errors) > 3


def test_integer_labels_without_names_get_numbered_classes(tmp_path):
    _make_tree(tmp_path, ["a.png", "b.png"])
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.png,0\nb.png,3\n")
    _items, _errors, plan = _collect(str(listing), str(tmp_path / "out"))
    assert plan.classes == ("0", "1", "2", "3") and tuple(list_inputs(str(listing)).classes) == plan.classes


def test_mistakes_found_on_workers_are_one_line_errors(tmp_path, capsys):
    _make_tree(tmp_path, ["img/a.png"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an older run")
    bad_split = tmp_path / "split.csv"
    bad_split.write_text("path,split\nimg/a.png,Train Set\n")
    inside = tmp_path / "inside.csv"
    shutil.copy(DATA / "gray.png", out / "mine.png")
    inside.write_text(f"path\n{out / 'mine.png'}\n")
    for listing, expected in (
        (bad_split, "split 'Train Set' is not a lowercase name"),
        (inside, "holds inputs of the listing"),
    ):
        code = main(in_process(["run", "--input", str(listing), "--output", str(out), "--overwrite"]))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith("augbeam: error: ") and expected in err[-1], err
        assert "Traceback" not in "\n".join(err)
        assert (out / "keep.txt").read_text() == "an older run"  # refused before --overwrite deleted anything


def test_a_listing_of_local_files_is_refused_for_remote_workers(tmp_path):
    """Workers on other machines cannot read this machine's files: the listing worker says so in one line."""
    from pipeline.errors import refusal_in

    _make_tree(tmp_path, ["img/a.png"])
    listing = tmp_path / "list.csv"
    listing.write_text("path\ngs://bucket/b.png\nimg/a.png\n")
    config = JobConfig.create(input=str(listing), output="gs://bucket/out", config="none")
    with pytest.raises(Exception) as info:
        with beam.Pipeline() as p:
            _work, _plan = p | ListInputs(config, open_source(str(listing)), refuse_local=True)
    message = refusal_in(info.value)
    assert message is not None and f"lists '{tmp_path / 'img/a.png'}', a file on this machine" in message


def test_packed_chunks_give_back_the_same_rows():
    items = [InputItem(f"c/{i}.png", f"/in/c/{i}.png", i % 3, "train") for i in range(10)]
    items.append(InputItem("elsewhere.png", "/other/elsewhere.png", -1, "validation"))
    packed = pack("item", items, "/in/")
    assert isinstance(packed, Packed) and len(packed) == 11
    assert unpack(packed, "/in/") == items
    assert len(packed.data) < 300  # the paths under the prefix are not stored


def test_spilled_parts_load_back_as_packed(tmp_path):
    """On the DirectRunner a bundle's parts go to one file; the references load the same parts back."""
    from pipeline.job.chunks import spill

    items = [InputItem(f"c/{i}.png", f"/in/c/{i}.png", i % 3, "train") for i in range(30)]
    parts = [(("train", s), pack("item", items[s::3], "/in/")) for s in range(3)]
    refs = spill(str(tmp_path / "planned"), parts)
    assert [key for key, _ in refs] == [key for key, _ in parts]
    assert len(list((tmp_path / "planned").iterdir())) == 1
    assert [ref.load() for _, ref in refs] == [part for _, part in parts]
    assert spill(str(tmp_path / "planned"), []) == []


def test_the_graph_does_not_grow_with_the_input(tmp_path):
    """The submitted pipeline holds the config and the source's units, never the listing."""
    sizes = {}
    for n in (10_000, 1_000_000):
        listing = tmp_path / f"list-{n}.csv"
        with open(listing, "w") as handle:
            handle.write("path,label\n")
            handle.writelines(f"gs://bucket/photos/{i:040x}.jpg,{i % 10}\n" for i in range(n))
        config = JobConfig.create(input=str(listing), output=str(tmp_path / f"out{n}"), config="none")
        sizes[n] = graph_size(config)
    assert abs(sizes[1_000_000] - sizes[10_000]) <= 10_000, sizes
    folders = {}
    for n in (1_000, 20_000):
        root = tmp_path / f"folder-{n}"
        for c in range(10):
            (root / f"c{c}").mkdir(parents=True)
        for i in range(n):
            os.link(DATA / "gray.png", root / f"c{i % 10}" / f"{i:08d}.png")
        config = JobConfig.create(input=str(root), output=str(tmp_path / f"fout{n}"), config="none")
        folders[n] = graph_size(config)
    assert abs(folders[20_000] - folders[1_000]) <= 100, folders


def test_a_listing_files_spilled_rows_are_removed_after_the_run(tmp_path, monkeypatch, capsys):
    """On the DirectRunner the rows go through a temp folder outside the output: gone after a run or a refusal."""
    import tempfile

    _make_tree(tmp_path, ["img/a.png", "img/b.png"])
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    good = tmp_path / "good.csv"
    good.write_text("path,label\nimg/a.png,cat\nimg/b.png,dog\nimg/a.png,cat\n")
    assert main(in_process(["run", "--input", str(good), "--output", str(tmp_path / "out"), "--config", "none"])) == 0
    assert sorted(p.name for p in temp.iterdir()) == []
    bad = tmp_path / "bad.csv"
    bad.write_text("path,split\nimg/a.png,Train Set\n")
    assert main(in_process(["run", "--input", str(bad), "--output", str(tmp_path / "out2"), "--config", "none"])) == 2
    assert "is not a lowercase name" in capsys.readouterr().err
    assert sorted(p.name for p in temp.iterdir()) == []
