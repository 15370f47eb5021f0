"""Annotated runs (``--annotations``) end to end on the 3 hand-annotated photos, default preset, 64x64:
COCO (masks and keypoints), VOC and YOLO-pose jobs; 1 and 2 workers give the same bytes; ``augbeam verify
--sample`` regenerates the targets and catches a tampered box; ``augbeam.load`` dicts train a box head; an
annotation that does not fit its image is an error row and the job goes on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from tests.helpers import in_process, read_errors, shard_bytes

DATA = Path(__file__).parent / "data" / "annotated"
SIZE = 64
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _run(images: Path, annotations: Path, out: Path, *beam: str) -> int:
    argv = ["run", "--input", str(images), "--annotations", str(annotations), "--output", str(out)]
    argv += ["--image-size", str(SIZE), str(SIZE), "--copies", "2", "--seed", "5", "--progress", "none"]
    argv += ["--max-error-rate", "0.5"]
    return main([*argv, "--", *beam] if beam else in_process(argv))


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """The 3 photos plus ``bad.jpg`` (chelsea again), whose COCO entry declares another size: its error row."""
    root = tmp_path_factory.mktemp("coco")
    images = root / "images"
    shutil.copytree(DATA / "images", images)
    shutil.copy(images / "chelsea.jpg", images / "bad.jpg")
    data = json.loads((DATA / "coco.json").read_text())
    data["images"].append({"id": 999, "file_name": "bad.jpg", "width": 100, "height": 100})
    data["annotations"].append({"id": 9999, "image_id": 999, "category_id": 3, "bbox": [1, 1, 20, 20], "iscrowd": 0})
    (root / "coco.json").write_text(json.dumps(data))
    out = root / "out"
    assert _run(images, root / "coco.json", out) == 0
    return root, out


def test_coco_records_hold_boxes_masks_keypoints_and_the_manifest_says_so(coco):
    _, out = coco
    manifest = json.loads((out / "manifest.json").read_text())
    targets = manifest["targets"]
    assert targets["tasks"] == ["detection", "instance_segmentation", "keypoints"]
    assert targets["source_format"] == "coco" and targets["classes"][0] == "cat"
    assert targets["rules"] == {
        "min_area": 1.0,
        "min_visibility": 0.0,
        "min_side": 0.0,
        "erasing_hides_keypoints": False,
    }
    assert len(targets["keypoints"]["names"]) == 17
    train = manifest["splits"]["train"]
    assert set(train["removed_objects"]) == {"outside", "min_area", "min_visibility", "min_side"}
    assert train["counts"]["written"] == 6 and train["counts"]["failed_inputs_by_stage"]["annotation"] == 1
    assert manifest["config"]["annotations"][0][0] == "train"
    assert "image/object/mask" in manifest["features"] and "label" not in manifest["features"]
    assert (out / "dataset_info.json").exists()


def test_an_annotation_that_does_not_fit_its_image_is_an_error_row(coco):
    _, out = coco
    rows = read_errors(out)
    assert [(r["key"], r["stage"], r["error_type"], r["copy"]) for r in rows] == [
        ("bad.jpg", "annotation", "BadAnnotation", None)
    ]
    assert "100x100" in rows[0]["message"]


def test_removal_counts_in_params_sum_to_the_manifest(coco):
    import pyarrow.parquet as pq

    _, out = coco
    total = {"outside": 0, "min_area": 0, "min_visibility": 0, "min_side": 0}
    for part in out.glob("index-*.parquet"):
        for row in pq.read_table(part).to_pylist():
            removed = json.loads(row["params"])[-1]["removed"]
            assert len(removed["ids"]) == sum(removed[r] for r in total)
            for reason in total:
                total[reason] += removed[reason]
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["removed_objects"] == total


def test_two_workers_rerun_gives_the_same_bytes(coco, tmp_path):
    root, out = coco
    again = tmp_path / "again"
    assert _run(root / "images", root / "coco.json", again, *TWO_WORKERS) == 0
    assert shard_bytes(again) == shard_bytes(out)


def test_verify_regenerates_targets(coco, capsys):
    _, out = coco
    assert main(["verify", str(out), "--sample", "3"]) == 0
    assert "3 records' targets regenerated" in capsys.readouterr().out


def test_verify_catches_a_tampered_box(coco):
    """A record whose box was moved (its checksums made to agree) is caught by the targets' regeneration."""
    from pipeline.checks.verify import _RecordTargets, config_from_manifest
    from pipeline.format.manifest import IndexRow
    from pipeline.format.reader import read_manifest
    from pipeline.format.records import example_class, iter_records
    from pipeline.format.tables import iter_table
    from transforms.decode import Decoder

    root, out = coco
    manifest = read_manifest(str(out))
    config = config_from_manifest(manifest, str(out))
    row = next(r for r in iter_table(str(out), manifest.index_tables(), IndexRow) if r.key == "astronaut.jpg")
    record = list(iter_records(str(out / row.shard)))[row.position]
    data = (root / "images" / row.key).read_bytes()
    ops = config.ops_for("train")
    sampled = json.loads(row.params)[:-1]
    decoder = Decoder(config.alpha_fill, config.max_pixels, config.high_bit_depth, config.max_image_bytes)
    checker = _RecordTargets(config, manifest, str(root / "images"))
    assert checker.check(row, data, ops, sampled, bytes(record), decoder) == ""
    example = example_class()().FromString(bytes(record))
    example.features.feature["image/object/bbox/xmin"].float_list.value[0] += 0.1
    tampered = example.SerializeToString(deterministic=True)
    assert checker.check(row, data, ops, sampled, tampered, decoder) == "its boxes differ from the regenerated ones"


def test_load_gives_dicts_and_a_box_head_trains(coco):
    import keras

    import augbeam

    _, out = coco
    batch = next(iter(augbeam.load(str(out), split="train", batch_size=3)))
    assert batch["image"].shape == (3, SIZE, SIZE, 3) and batch["boxes"].shape[-1] == 4
    assert batch["masks"].shape[2:] == (SIZE, SIZE) and batch["keypoints"].shape[2:] == (17, 3)
    keras.utils.set_random_seed(0)
    ds = augbeam.load(str(out), split="train", batch_size=2, max_objects=8)
    ds = ds.map(lambda ex: (ex["image"], ex["boxes"][:, 0, :] / SIZE)).repeat()
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="box")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    losses = model.fit(ds, steps_per_epoch=1, epochs=3, verbose=0).history["loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()


@pytest.mark.parametrize(("labels", "tasks"), [("voc", ["detection"]), ("yolo/labels", ["detection", "keypoints"])])
def test_voc_and_yolo_jobs_verify(labels, tasks, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(DATA / "images", DATA / labels, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["targets"]["tasks"] == tasks and manifest["splits"]["train"]["counts"]["written"] == 6
    assert main(["verify", str(out), "--sample", "2"]) == 0, capsys.readouterr()


def test_options_that_make_no_sense_are_refused_in_one_line(tmp_path, capsys):
    base = ["run", "--input", str(DATA / "images"), "--output", str(tmp_path / "o"), "--progress", "none"]
    cases = [
        (["--annotations", str(DATA / "coco.json"), "--classes", "a,b"], "--classes with COCO --annotations"),
        (["--annotations", str(DATA / "coco.json"), "--min-visibility", "2"], "--min-visibility 2.0: use a fraction"),
        (["--min-box-area", "4"], "--min-box-area without --annotations"),
        (["--annotations", "train=/nowhere.json"], "--annotations '/nowhere.json' does not exist"),
        (["--annotations", "a.json", "--annotations", "train=b.json"], "split 'train' is given twice"),
    ]
    for extra, said in cases:
        assert main(in_process([*base, *extra])) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "manifest.json").exists()
