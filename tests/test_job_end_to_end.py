"""End to end on real photos: counts, determinism, workers, errors, reader, training."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.format import reader
from pipeline.format.manifest import Manifest, record_order
from tests.conftest import run, shard_bytes

TRAIN_GOOD = 11  # sample photos in train/ (all decode)
EVAL_GOOD = 4
COPIES = 3


def cli_args(input_dir, out) -> list[str]:
    """Run A's command line: the same config as ``conftest.run``'s defaults."""
    size = ["--image-size", "32", "32"]
    return [
        "run",
        "--input",
        str(input_dir),
        "--output",
        str(out),
        *size,
        "--copies",
        "3",
        "--seed",
        "1",
        "--num-shards",
        "3",
        "--max-error-rate",
        "0.5",
    ]


@pytest.fixture(scope="module")
def run_a(photos_with_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("a") / "out"
    code = main(cli_args(photos_with_bad, out))
    assert code == 0
    return out


@pytest.fixture(scope="module")
def run_b(photos_with_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "out"
    run(photos_with_bad, out)
    return out


def test_manifest_file_is_exactly_what_its_dataclass_writes(run_a):
    """The typed manifest reads every field back and writes the file's bytes again."""
    raw = (run_a / "manifest.json").read_bytes()
    manifest = reader.read_manifest(str(run_a))
    assert (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode() == raw
    assert Manifest.from_json(json.loads(raw)) == manifest
    assert manifest.side_files and "report.html" in manifest.side_files


def test_counts_reconcile(run_a):
    manifest = json.loads((run_a / "manifest.json").read_text())
    assert not list(run_a.glob("*.idx"))  # DALI indexes only with --dali-index
    train = manifest["splits"]["train"]["counts"]
    assert train["listed"] == TRAIN_GOOD + 2
    assert train["failed_inputs"] == 2
    assert train["decoded"] == TRAIN_GOOD
    assert train["written"] == TRAIN_GOOD * COPIES
    val = manifest["splits"]["validation"]["counts"]
    assert (val["written"], val["copies"]) == (EVAL_GOOD, 1)
    assert not manifest["splits"]["validation"]["augmented"]
    index = pq.read_table(run_a / "index.parquet").to_pylist()
    assert len(index) == TRAIN_GOOD * COPIES + EVAL_GOOD
    assert len({(r["key"], r["copy"]) for r in index}) == len(index)
    for info in manifest["splits"].values():
        assert sum(s["records"] for s in info["shards"]) == info["counts"]["written"]
        assert info["num_shards"] == 3
        for s in info["shards"]:
            assert (run_a / s["file"]).stat().st_size == s["bytes"]
    names = {p.name for p in run_a.iterdir()}
    listed = {s["file"] for info in manifest["splits"].values() for s in info["shards"]}
    side = set(manifest["files"]["side"])  # report.html and the other side files
    assert "report.html" in side
    assert names == listed | {"manifest.json", "index.parquet", "errors.parquet"} | side


def test_bad_files_land_in_errors(run_a):
    errors = pq.read_table(run_a / "errors.parquet").to_pylist()
    by_key = {e["key"]: e for e in errors}
    assert set(by_key) == {"train/textures/truncated.jpg", "train/everyday/notes.jpg"}
    assert by_key["train/textures/truncated.jpg"]["stage"] == "decode"
    assert by_key["train/textures/truncated.jpg"]["error_type"] == "CorruptImage"
    assert "Invalid JPEG" in by_key["train/textures/truncated.jpg"]["message"]
    assert by_key["train/everyday/notes.jpg"]["error_type"] == "UnknownFormat"


def test_same_seed_gives_identical_bytes(run_a, run_b):
    assert shard_bytes(run_a) == shard_bytes(run_b)


def test_other_seed_changes_records(photos_with_bad, run_a, tmp_path):
    out = tmp_path / "out"
    run(photos_with_bad, out, seed=2)
    a, c = shard_bytes(run_a), shard_bytes(out)
    assert a["manifest.json"] != c["manifest.json"]
    assert a["train-00000-of-00003.tfrecord"] != c["train-00000-of-00003.tfrecord"]
    # Evaluation splits are not augmented: the seed does not touch them.
    for name in a:
        if name.startswith("validation-"):
            assert a[name] == c[name]


def test_two_worker_processes_give_identical_bytes(photos_with_bad, run_a, tmp_path):
    out = tmp_path / "out"
    run(photos_with_bad, out, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert shard_bytes(out) == shard_bytes(run_a)


def test_copies_differ_and_params_match_index(run_a):
    ds = reader.load(str(run_a), split="train", with_metadata=True)
    by_key: dict[str, dict[int, tuple]] = {}
    for image, _label, meta in ds:
        key, copy = meta["key"].numpy().decode(), int(meta["copy"])
        by_key.setdefault(key, {})[copy] = (image.numpy(), meta["params"].numpy().decode())
    assert len(by_key) == TRAIN_GOOD
    index = {(r["key"], r["copy"]): r for r in pq.read_table(run_a / "index.parquet").to_pylist()}
    for key, copies in by_key.items():
        assert sorted(copies) == list(range(COPIES))
        params = [copies[c][1] for c in range(COPIES)]
        assert len(set(params)) == COPIES, f"{key}: copies share parameters"
        assert not np.array_equal(copies[0][0], copies[1][0])
        for c in range(COPIES):
            assert index[(key, c)]["params"] == copies[c][1]
            ops = json.loads(copies[c][1])
            assert [o["op"] for o in ops] == [
                op["op"] for op in json.loads((run_a / "manifest.json").read_text())["config"]["ops"]
            ]


def test_reader_mobilenet_v2_range(run_a):
    manifest = reader.read_manifest(str(run_a))
    assert manifest.preprocessing["name"] == "mobilenet_v2"
    assert manifest.preprocessing["applied"] == "by_reader"
    ds = reader.load(str(run_a), split="train", batch_size=8, expect_model="mobilenet_v2")
    assert ds.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    values = np.concatenate([x.numpy() for x, _ in ds])
    assert values.dtype == np.float32
    assert values.min() >= -1.0 and values.max() <= 1.0
    assert values.min() < -0.9 and values.max() > 0.9  # really scaled to [-1, 1], not [0, 1]


@pytest.fixture(scope="module")
def run_resnet(photos_with_bad, tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet") / "out"
    run(photos_with_bad, out, model="resnet50", encoding="float32", copies=1, num_shards=2)
    return out


def test_reader_resnet50_caffe_values(run_resnet, run_a):
    manifest = reader.read_manifest(str(run_resnet))
    assert manifest.preprocessing["applied"] == "in_records"
    assert manifest.preprocessing["channel_order"] == "BGR"
    ds = reader.load(str(run_resnet), split="validation", with_metadata=True, expect_model="resnet50")
    assert ds.element_spec[0].shape.as_list() == [32, 32, 3]
    # The unaugmented validation images equal caffe preprocessing of run_a's uint8 pixels.
    raw = {}
    for image, _label, meta in reader.load(str(run_a), split="validation", with_metadata=True):
        raw[meta["key"].numpy()] = image.numpy()  # mobilenet_v2: x / 127.5 - 1
    low, high = manifest.preprocessing["output_range"]
    for image, _label, meta in ds:
        x = image.numpy()
        assert low <= x.min() and x.max() <= high
        pixels = (raw[meta["key"].numpy()] + 1.0) * 127.5
        expected = pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
        np.testing.assert_allclose(x, expected, atol=0.51)  # uint8 rounding in run_a only


def test_reader_refuses_unfinished_and_corrupt(run_b, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_b, broken)
    shard = broken / "train-00000-of-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(reader.ReaderError, match="checksum"):
        reader.load(str(broken), split="train")
    with pytest.raises(reader.ReaderError, match="mobilenet_v2.*resnet50"):
        reader.load(str(run_b), split="train", expect_model="resnet50")
    with pytest.raises(reader.ReaderError, match="no split"):
        reader.load(str(run_b), split="test")
    (broken / "manifest.json").unlink()
    with pytest.raises(reader.ReaderError, match="did not finish"):
        reader.load(str(broken), split="train")


def test_keras_model_trains_on_reader_output(run_a):
    import keras

    manifest = reader.read_manifest(str(run_a))
    ds = reader.load(str(run_a), split="train", batch_size=8, shuffle_files=True, seed=0)
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=manifest.num_classes
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_output_not_empty_is_refused_then_overwritten(photos_with_bad, run_b, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run_b, out)
    (out / "stale-from-older-run.tfrecord").write_bytes(b"old")
    args = cli_args(photos_with_bad, out)
    assert main(args) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert shard_bytes(out) == shard_bytes(run_b)


def test_listing_with_duplicate_and_vanished_file(tmp_path):
    """A CSV listing: a duplicate row and a file deleted after listing are reported, the rest written."""
    import shutil

    from pipeline.job.listing import list_inputs
    from tests.conftest import DATA

    src = tmp_path / "src"
    src.mkdir()
    for name in ("rocket_small.jpg", "gray.png", "rgba.png"):
        shutil.copy(DATA / name, src / name)
    listing = tmp_path / "src" / "list.csv"
    listing.write_text(
        "path,label,split\nrocket_small.jpg,rocket,train\ngray.png,camera,train\n"
        "rocket_small.jpg,rocket,train\nrgba.png,horse,validation\n"
    )
    assert len(list_inputs(str(listing)).items) == 3
    from pipeline.job import shard as shard_worker
    original = shard_worker.fsutil.read_bytes

    def vanish_gray(path):  # the file disappears between listing and reading
        if path.endswith("gray.png"):
            (src / "gray.png").unlink(missing_ok=True)
        return original(path)

    shard_worker.fsutil.read_bytes = vanish_gray
    try:
        manifest = run(listing, tmp_path / "out", copies=2, num_shards=1)
    finally:
        shard_worker.fsutil.read_bytes = original
    train = manifest.splits["train"].counts
    assert (train.listed, train.decoded, train.written) == (3, 1, 2)
    assert train.failed_inputs_by_stage == {"listing": 1, "read": 1, "decode": 0}
    assert manifest.classes == ("camera", "horse", "rocket")
    errors = {
        (e["key"], e["stage"], e["error_type"]) for e in pq.read_table(tmp_path / "out/errors.parquet").to_pylist()
    }
    assert errors == {("rocket_small.jpg", "listing", "DuplicateInput"), ("gray.png", "read", "FileNotFound")}
    assert manifest.splits["validation"].counts.written == 1


def test_file_failing_in_one_shard_only_is_counted_per_copy(tmp_path, monkeypatch):
    """Copies of a key in two shards: the first read works, the second finds the file gone."""
    import shutil

    from pipeline.job import shard as shard_worker
    from tests.conftest import DATA

    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    shutil.copy(DATA / "rocket_small.jpg", src / "a.jpg")
    shutil.copy(DATA / "gray.png", src / "b.png")
    shards = {record_order("cls/a.jpg", c) % 3 for c in range(3)}
    assert len(shards) >= 2, "the test needs a.jpg's copies in more than one shard"
    original, reads = shard_worker.fsutil.read_bytes, []

    def read_once(path):
        if path.endswith("a.jpg"):
            reads.append(path)
            if len(reads) > 1:
                (src / "a.jpg").unlink(missing_ok=True)
        return original(path)

    monkeypatch.setattr(shard_worker.fsutil, "read_bytes", read_once)
    manifest = run(tmp_path / "src", tmp_path / "out", copies=3, num_shards=3)
    counts = manifest.splits["train"].counts
    assert counts.decoded == 2 and counts.failed_inputs == 0
    assert 1 <= counts.failed_records <= 2
    assert counts.written + counts.failed_records == 6
    errors = pq.read_table(tmp_path / "out/errors.parquet").to_pylist()
    assert {(e["key"], e["stage"], e["error_type"]) for e in errors} == {("cls/a.jpg", "read", "FileNotFound")}
    assert all(e["copy"] is not None for e in errors)
