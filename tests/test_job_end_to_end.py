"""End to end on real photos: counts, determinism, workers, errors, --model choices, batching, replay, bit depth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.format import reader
from tests.helpers import PHOTOS, cli_args, in_process, read_errors, read_index, run, shard_bytes
from transforms.config import load_ops

TRAIN_GOOD = 11  # sample photos in train/ (all decode)
EVAL_GOOD = 4
COPIES = 3


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
    index = read_index(run_a)
    assert len(index) == TRAIN_GOOD * COPIES + EVAL_GOOD
    assert len({(r["key"], r["copy"]) for r in index}) == len(index)
    for info in manifest["splits"].values():
        assert sum(s["records"] for s in info["shards"]) == info["counts"]["written"]
        assert info["num_shards"] == 3
        for s in info["shards"]:
            assert (run_a / s["file"]).stat().st_size == s["bytes"]
    names = {p.name for p in run_a.iterdir()}
    listed = {
        name
        for info in manifest["splits"].values()
        for s in info["shards"]
        for name in (s["file"], s["index"]["name"], s["errors"]["name"])
    }
    side = set(manifest["files"]["side"])  # report.html and the other side files
    assert "report.html" in side
    assert names == listed | {"manifest.json"} | side


def test_bad_files_land_in_errors(run_a):
    errors = read_errors(run_a)
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


def test_the_default_command_runs_a_worker_process_per_core_and_writes_the_same_bytes(
    photos_with_bad, run_a, tmp_path, monkeypatch, capfd
):
    """No Beam options on 2 cores: 2 multi_processing workers, one line says so, and the bytes are run A's (one
    in-process worker). Worker processes share this stderr (capfd reads the descriptor): they add nothing to it."""
    from pipeline.runtime import tf_threads
    from pipeline.runtime.runners import parallelism_line

    monkeypatch.setattr(tf_threads, "usable_cpus", lambda: 2)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # what `augbeam run` sets (tests/conftest.py sets 2)
    out = tmp_path / "out"
    capfd.readouterr()
    assert main([*cli_args(photos_with_bad, out), "--progress", "none"]) == 0
    err = capfd.readouterr().err
    two = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert err.strip().splitlines() == [parallelism_line(two)], err
    assert shard_bytes(out) == shard_bytes(run_a)


def test_a_mistake_found_on_a_worker_process_is_one_line(tmp_path, monkeypatch, capfd):
    """In the default mode the refusal is raised in a worker process; neither it nor Beam prints its traceback."""
    import shutil

    from pipeline.runtime import tf_threads
    from tests.helpers import DATA

    monkeypatch.setattr(tf_threads, "usable_cpus", lambda: 2)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    shutil.copy(DATA / "gray.png", tmp_path / "a.png")
    listing = tmp_path / "split.csv"
    listing.write_text("path,split\na.png,Train Set\n")
    capfd.readouterr()
    assert main(["run", "--input", str(listing), "--output", str(tmp_path / "out"), "--progress", "none"]) == 2
    mode, error = capfd.readouterr().err.strip().splitlines()
    assert mode.startswith("augbeam: DirectRunner with 2 worker processes")
    assert error.startswith("augbeam: error: ") and "split 'Train Set' is not a lowercase name" in error


def test_copies_differ_and_params_match_index(run_a):
    ds = reader.load(str(run_a), split="train", with_metadata=True)
    by_key: dict[str, dict[int, tuple]] = {}
    for image, _label, meta in ds:
        key, copy = meta["key"].numpy().decode(), int(meta["copy"])
        by_key.setdefault(key, {})[copy] = (image.numpy(), meta["params"].numpy().decode())
    assert len(by_key) == TRAIN_GOOD
    index = {(r["key"], r["copy"]): r for r in read_index(run_a)}
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


def test_listing_with_duplicate_and_vanished_file(tmp_path):
    """A CSV listing: a duplicate row and a file deleted after listing are reported, the rest written."""
    import shutil

    from pipeline.job.listing import list_inputs
    from tests.helpers import DATA

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
    errors = {(e["key"], e["stage"], e["error_type"]) for e in read_errors(tmp_path / "out")}
    assert errors == {("rocket_small.jpg", "listing", "DuplicateInput"), ("gray.png", "read", "FileNotFound")}
    assert manifest.splits["validation"].counts.written == 1


def test_model_class_name_gives_its_size_and_manifest_says_everything(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["run", "--input", str(PHOTOS), "--output", str(out), "--model", "EfficientNetB1", "--num-shards", "1"]
    code = main(in_process(args))
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    assert manifest["image"]["shape"] == [240, 240, 3]
    assert pre["name"] == "EfficientNetB1" and pre["keras_module"] == "efficientnet"
    assert pre["input_range"] == [0.0, 255.0] and pre["output_range"] == [0.0, 255.0]
    assert pre["channel_order"] == "RGB" and pre["default_size"] == [240, 240] and pre["model_rescales_inside"]
    # same preprocessing function: accepted; another one: refused naming both
    reader.load(str(out), split="validation", expect_model="efficientnet")
    with pytest.raises(reader.ReaderError, match=r"made for model preprocessing 'EfficientNetB1'.*not 'resnet50'"):
        reader.load(str(out), split="validation", expect_model="resnet50")


def test_mean_std_end_to_end(tmp_path):
    out = tmp_path / "o"
    run(PHOTOS, out, model="mean_std", mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), copies=1, encoding="uint8")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert manifest["config"]["std"] == [0.25, 0.5, 1.0]
    raw = tmp_path / "raw"
    run(PHOTOS, raw, model="none", copies=1, encoding="uint8")
    (a, _), (b, _) = (next(iter(reader.load(str(p), split="validation", batch_size=4))) for p in (out, raw))
    expected = (b.numpy() / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0])
    np.testing.assert_allclose(a.numpy(), expected, atol=1e-5)
    with pytest.raises(reader.ReaderError, match="'mean_std'"):
        reader.load(str(out), split="validation", expect_model="scale_0_1")


def test_device_cpu_and_batch_size_do_not_change_bytes(tmp_path):
    """Batches of 1 and of 8 (same-size photos share a batch), on --device cpu or auto: same shards."""
    config = tmp_path / "ops.yaml"
    config.write_text(
        "ops:\n"
        "  - {op: resize, height: 48, width: 48}\n"
        "  - {op: affine, p: 0.8}\n"
        "  - {op: randaugment, num_ops: 2, magnitude: 10}\n"
        "  - {op: some_of, n: [0, 2], ops: [{op: gaussian_blur}, {op: gaussian_noise}, {op: random_erasing}]}\n"
    )
    common = dict(config=str(config), num_shards=2, copies=2, encoding="float32")
    run(PHOTOS, tmp_path / "b1", batch_size=1, **common)
    run(PHOTOS, tmp_path / "b8", batch_size=8, device="cpu", **common)
    one, eight = shard_bytes(tmp_path / "b1"), shard_bytes(tmp_path / "b8")
    assert one.keys() == eight.keys()
    for name in one:
        if name.endswith(".tfrecord") or name.endswith(".parquet"):
            assert one[name] == eight[name], name
    manifest = json.loads((tmp_path / "b8" / "manifest.json").read_text())
    assert [op["op"] for op in manifest["config"]["ops"]] == ["resize", "affine", "randaugment", "some_of"]
    assert manifest["config"]["ops"][3]["ops"][0]["op"] == "gaussian_blur"  # stored resolved, nested


@pytest.mark.parametrize("preset", ["heavy", "autoaugment"])
def test_records_replay_from_their_source(preset, tmp_path):
    """Any record can be regenerated from its source image and its stored params, to the byte."""
    import tensorflow as tf

    from pipeline.format.records import parse_spec
    from transforms.augment import Renderer
    from transforms.decode import Decoder
    from transforms.preprocess import get_preprocessing

    out = tmp_path / "out"
    run(PHOTOS, out, config=preset, copies=2, num_shards=1, image_size=(40, 40))
    ops = load_ops(preset, (40, 40))  # the job's --image-size: its resizing crop's size
    renderer = Renderer(ops, (40, 40), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    decoder = Decoder()
    shard = sorted(out.glob("train-*.tfrecord"))[0]
    checked = 0
    for raw in tf.data.TFRecordDataset(str(shard)).take(6):
        record = tf.io.parse_single_example(raw, parse_spec())
        key = record["key"].numpy().decode()
        params = json.loads(record["params"].numpy().decode())
        source = decoder.decode_for((PHOTOS / key).read_bytes(), params)  # a JPEG: the crop's window only
        payload = renderer.render(source, params)
        assert payload == record["image"].numpy(), key
        checked += 1
    assert checked == 6


def test_high_bit_depth_mapping_is_an_option_and_recorded(tmp_path):
    import numpy as np

    from pipeline.format import reader

    root = tmp_path / "in" / "train" / "x"
    root.mkdir(parents=True)
    from PIL import Image

    levels = np.linspace(1000, 3000, 24 * 24).reshape(24, 24).astype(np.uint16)  # a narrow 16-bit range
    Image.fromarray(levels).save(root / "a.png")
    outs = {}
    for mode in ("scale", "range"):
        outs[mode] = tmp_path / mode
        run(tmp_path / "in", outs[mode], config="none", copies=1, num_shards=1, high_bit_depth=mode, model="none")
        assert json.loads((outs[mode] / "manifest.json").read_text())["config"]["high_bit_depth"] == mode
    a, b = (next(iter(reader.load(str(outs[m]), split="train", batch_size=1)))[0].numpy() for m in outs)
    assert not np.array_equal(a, b) and b.min() <= a.min() and b.max() >= a.max()  # range stretches
