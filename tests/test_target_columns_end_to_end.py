"""A job on a tiny listing with ``labels``, ``values`` and ``mask``: records, bad masks as error rows, the same
bytes on a rerun, ``augbeam.load`` giving the targets back, ``augbeam verify``, and the mask carried through the
default preset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.format.records import MASK_ENCODED, iter_records, parse_example
from tests.helpers import in_process, read_errors, shard_bytes

PHOTOMETRIC = [{"op": "brightness", "delta": [-0.2, 0.2]}, {"op": "contrast", "factor": [0.8, 1.2], "p": 0.5}]


def _png(path, array: np.ndarray) -> str:
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(array).numpy())
    return path.name


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """Five images (6 high, 8 wide) with masks of class ids; two masks are bad; one row has bad values."""
    root = tmp_path_factory.mktemp("targets")
    rng = np.random.default_rng(0)
    ids = np.zeros((6, 8, 1), np.uint8)
    ids[:, 4:] = 2  # the right half is class 2
    for i in range(5):
        _png(root / f"img/{i}.png", rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    _png(root / "masks/ok.png", ids)
    _png(root / "masks/small.png", ids[:4])  # MaskSizeMismatch
    _png(root / "masks/rgb.png", np.repeat(ids, 3, axis=2))  # MaskNotSingleChannel
    rows = [
        "path,label,labels,values,mask",
        "img/0.png,cat,cat;dog,0.5;1.5,masks/ok.png",
        "img/1.png,dog,,2;3,masks/ok.png",
        "img/2.png,dog,dog,2;3,masks/small.png",
        "img/3.png,dog,dog,2;3,masks/rgb.png",
        "img/4.png,cat,dog,7,masks/ok.png",  # one value: InvalidValues
    ]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    config = root / "ops.json"
    config.write_text(json.dumps(PHOTOMETRIC))
    return root


def _run(root, out, *extra) -> int:
    argv = ["run", "--input", str(root / "list.csv"), "--output", str(out), "--image-size", "12", "16"]
    argv += ["--copies", "2", "--seed", "3", "--num-shards", "2", "--max-error-rate", "0.9", "--progress", "none"]
    return main(in_process([*argv, "--config", str(root / "ops.json"), *extra]))


@pytest.fixture(scope="module")
def output(listing, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "out"
    assert _run(listing, out) == 0
    return out


def test_records_hold_the_targets_and_bad_annotations_are_error_rows(output):
    records = [parse_example(r) for p in sorted(output.glob("train-*.tfrecord")) for r in iter_records(str(p))]
    by_key = {(bytes(r["key"][0]).decode(), r["copy"][0]): r for r in records}
    assert sorted(by_key) == [("img/0.png", 0), ("img/0.png", 1), ("img/1.png", 0), ("img/1.png", 1)]
    first, second = by_key[("img/0.png", 0)], by_key[("img/1.png", 1)]
    assert first["labels"] == [0, 1] and first["values"] == [0.5, 1.5] and first["label"] == [0]
    assert second["labels"] == [] and second["values"] == [2.0, 3.0]
    assert first["image/segmentation/class/format"] == [b"png"]
    errors = {(e["key"], e["stage"], e["error_type"]) for e in read_errors(output)}
    assert errors == {
        ("img/2.png", "decode", "MaskSizeMismatch"),
        ("img/3.png", "decode", "MaskNotSingleChannel"),
        ("img/4.png", "listing", "InvalidValues"),
    }
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["splits"]["train"]["columns"] == ["labels", "mask", "values"]
    assert manifest["splits"]["train"]["values_dim"] == 2
    assert MASK_ENCODED in manifest["features"] and manifest["classes"] == ["cat", "dog"]


def test_a_rerun_writes_the_same_bytes(listing, output, tmp_path):
    again = tmp_path / "again"
    assert _run(listing, again) == 0
    assert shard_bytes(again) == shard_bytes(output)


def test_load_gives_labels_values_and_the_mask_resized_as_the_image(output):
    import augbeam

    batches = list(augbeam.load(str(output), batch_size=4))
    assert len(batches) == 1
    images, targets = batches[0]
    assert images.shape == (4, 12, 16, 3)
    assert sorted(map(tuple, targets["labels"].to_list())) == [(), (), (0, 1), (0, 1)]  # a RaggedTensor
    assert targets["values"].shape == (4, 2) and targets["values"].dtype.name == "float32"
    masks = targets["mask"].numpy()
    assert masks.shape == (4, 12, 16) and masks.dtype == np.uint8
    expected = np.zeros((12, 16), np.uint8)
    expected[:, 8:] = 2  # nearest-neighbour: the right half stays class 2, no new ids
    assert all((m == expected).all() for m in masks)
    single = next(iter(augbeam.load(str(output))))
    assert set(single[1]) == {"label", "labels", "values", "mask"}


def test_verify_passes_on_records_with_targets(output, capsys):
    assert main(["verify", str(output), "--sample", "2"]) == 0, capsys.readouterr()


def test_verify_regenerates_the_masks_from_the_mask_files(listing, output, tmp_path, capsys):
    """A mask file that no longer gives the stored mask is reported: verify carries it through the params."""
    import shutil

    source = tmp_path / "source"
    shutil.copytree(listing, source)
    ids = np.zeros((6, 8, 1), np.uint8)
    ids[:, :4] = 2  # the left half now, where the records hold the right
    _png(source / "masks/ok.png", ids)
    assert main(["verify", str(output), "--sample", "2", "--source", str(source)]) == 1
    said = capsys.readouterr()
    said = said.out + said.err
    assert "its semantic mask differs from" in said and "masks/ok.png" in said, said
    assert main(["verify", str(output), "--sample", "2", "--source", str(listing)]) == 0, capsys.readouterr()


def test_a_mask_column_goes_through_the_default_preset(listing, tmp_path, capsys):
    """The mask follows flips, crops and warps: each record's mask is the carry of its params; verify passes."""
    from pipeline.format.manifest import IndexRow
    from pipeline.format.reader import read_manifest
    from pipeline.format.tables import iter_table
    from pipeline.job.mask_carry import read_mask
    from pipeline.job.options import JobConfig
    from transforms.targets.carry import carry_semantic_mask

    out = tmp_path / "o"
    argv = ["run", "--input", str(listing / "list.csv"), "--output", str(out), "--image-size", "12", "16"]
    argv += ["--copies", "2", "--seed", "3", "--max-error-rate", "0.9", "--progress", "none"]
    assert main(in_process(argv)) == 0, capsys.readouterr().err
    manifest = read_manifest(str(out))
    ops = JobConfig.create(input="x", output="y", image_size=(12, 16)).train_ops()
    mask = read_mask((listing / "masks/ok.png").read_bytes())
    rows = {(r.key, r.copy): r for r in iter_table(str(out), manifest.index_tables(), IndexRow)}
    checked = 0
    for shard in sorted(out.glob("train-*.tfrecord")):
        for record in iter_records(str(shard)):
            f = parse_example(record)
            row = rows[(bytes(f["key"][0]).decode(), int(f["copy"][0]))]
            expected = carry_semantic_mask(mask, ops, json.loads(row.params), (6, 8, 3), (12, 16), "stretch")
            assert (read_mask(bytes(f[MASK_ENCODED][0])) == expected).all()
            checked += 1
    assert checked == 4
    assert main(["verify", str(out), "--sample", "2"]) == 0, capsys.readouterr()


def test_tfds_reads_labels_values_and_the_mask(output):
    """``tfds.builder_from_directory`` gives the listing's columns as the records hold them."""
    import tensorflow_datasets as tfds

    from pipeline.job.mask_carry import read_mask

    builder = tfds.builder_from_directory(str(output))
    got = {(ex["key"].decode(), int(ex["copy"])): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert builder.info.features["labels"].feature.names == ["cat", "dog"]
    records = [parse_example(r) for p in sorted(output.glob("train-*.tfrecord")) for r in iter_records(str(p))]
    assert len(got) == len(records) == 4
    for rec in records:
        ex = got[(bytes(rec["key"][0]).decode(), rec["copy"][0])]
        assert list(ex["labels"]) == rec["labels"] and list(ex["values"]) == rec["values"]
        assert ex[MASK_ENCODED].shape == (12, 16, 1)
        assert (ex[MASK_ENCODED][:, :, 0] == read_mask(bytes(rec[MASK_ENCODED][0]))).all()
