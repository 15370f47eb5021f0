"""`augbeam ops`, `augbeam preview`, --device, and the job with batching and policies end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import main
from tests.conftest import PHOTOS, run, shard_bytes
from transforms.config import load_ops
from transforms.ops import registered_ops

EVERYDAY = PHOTOS / "train" / "everyday"


def test_ops_lists_every_op_with_fields_and_presets(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in registered_ops():
        assert f"\n{name} (v" in "\n" + out, name
    assert "fields:  p=0.5, fill_mode=constant" not in out  # rotation's p is its own default
    assert "rotation (v1): Rotates about the centre" in out
    assert "degrees=[-15, 15]" in out
    assert "presets (--config NAME): none, light, standard, heavy, randaugment" in out


def test_ops_json_and_preset_dump(capsys, tmp_path):
    assert main(["ops", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in entries} == set(registered_ops())
    assert main(["ops", "--preset", "heavy"]) == 0
    path = tmp_path / "heavy.yaml"
    path.write_text(capsys.readouterr().out)
    assert load_ops(str(path)) == load_ops("heavy")


def test_preview_writes_a_captioned_grid(tmp_path, capsys):
    from PIL import Image

    from pipeline.report.preview import CAPTION_LINES, LINE_HEIGHT

    out = tmp_path / "sheet" / "grid.png"
    images = [str(EVERYDAY / "rocket.jpg"), str(EVERYDAY / "horse.png")]
    assert (
        main(["preview", *images, "--copies", "3", "--tile", "64", "--config", "randaugment", "--out", str(out)]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    cell_h = 64 + CAPTION_LINES * LINE_HEIGHT + 6
    assert sheet.shape == (2 * cell_h + 6, 4 * (64 + 6) + 6, 3)
    tiles = [sheet[6 : 6 + 64, 6 + j * 70 : 6 + j * 70 + 64] for j in range(4)]
    assert len({t.tobytes() for t in tiles}) == 4  # the input and three different copies
    assert not list(out.parent.glob(".*.tmp"))


def test_preview_bad_image_is_one_line(tmp_path, capsys):
    from tests.conftest import DATA

    code = main(["preview", str(DATA / "not_an_image.jpg"), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "not_an_image.jpg" in err and "not a usable image" in err


def test_preview_describes_what_ran():
    from pipeline.report.preview import describe

    sampled = [
        {"op": "rotation", "applied": True, "params": {"angle": -7.25}},
        {"op": "horizontal_flip", "applied": False, "params": {}},
        {
            "op": "randaugment",
            "applied": True,
            "params": {"layers": [{"op": "shear", "kind": "shear_x", "applied": True, "params": {"x": 5.0, "y": 0.0}}]},
        },
    ]
    assert describe(sampled) == ["rotation -7.25", "randaugment: shear_x 5"]


def test_device_gpu_without_gpu_is_one_line(tmp_path, capsys):
    import tensorflow as tf

    args = ["run", "--input", str(PHOTOS), "--output", str(tmp_path / "o"), "--device", "gpu", "--image-size", "8", "8"]
    code = main(args)
    err = capsys.readouterr().err
    if tf.config.list_physical_devices("GPU"):
        assert code == 0, err  # a GPU machine runs it
    else:
        assert code == 2 and "--device gpu: TensorFlow sees no GPU" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


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
    ops = load_ops(preset)
    renderer = Renderer(ops, (40, 40), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    decoder = Decoder()
    shard = sorted(out.glob("train-*.tfrecord"))[0]
    checked = 0
    for raw in tf.data.TFRecordDataset(str(shard)).take(6):
        record = tf.io.parse_single_example(raw, parse_spec())
        key = record["key"].numpy().decode()
        source = decoder((PHOTOS / key).read_bytes())
        payload = renderer.render(source, json.loads(record["params"].numpy().decode()))
        assert payload == record["image"].numpy(), key
        checked += 1
    assert checked == 6


def test_docs_op_table_is_the_registry():
    from tests.conftest import ROOT
    from transforms.catalog import format_markdown

    assert format_markdown() in (ROOT / "docs" / "ops-and-presets.md").read_text(), (
        "regenerate the table in docs/ops-and-presets.md: augbeam ops --format markdown"
    )


def test_preview_keys_are_the_jobs_keys_with_root():
    from pipeline.job.listing import list_inputs
    from pipeline.report.preview import key_for

    job_keys = {item.key for item in list_inputs(str(PHOTOS)).items}
    path = str(EVERYDAY / "rocket.jpg")
    assert key_for(path, str(PHOTOS)) in job_keys
    assert key_for(path, None) == "rocket.jpg"
    with pytest.raises(Exception, match="not inside --root"):
        key_for(path, str(PHOTOS / "validation"))


def test_device_gpu_on_remote_workers_fails_the_job_not_each_record(tmp_path, capsys, monkeypatch):
    """Where the driver cannot check (a cluster), a worker without a GPU fails the job in setup."""
    import tensorflow as tf

    from pipeline import cli
    monkeypatch.setattr(cli, "_runs_here", lambda beam_args: False)
    out = tmp_path / "o"
    code = main(["run", "--input", str(PHOTOS), "--output", str(out), "--device", "gpu", "--image-size", "8", "8"])
    err = capsys.readouterr().err
    if tf.config.list_physical_devices("GPU"):
        assert code == 0, err  # a GPU machine runs it
        return
    assert code == 2 and "--device gpu: TensorFlow sees no GPU" in err.strip().splitlines()[-1]
    assert not (out / "manifest.json").exists()
