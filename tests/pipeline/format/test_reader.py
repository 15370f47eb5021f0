"""pipeline/format/reader.py: the model's value range, refusals (size, checksum, model, split, unfinished run,
incomplete manifest), a start that reads no shard, the index and error parts streamed, and a Keras model training
on what it reads; a folder replaced by another run while it is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.format import reader
from pipeline.format.reader import ReaderError, read_manifest
from tests.helpers import SYNTHETIC_SHAPE, run, write_output
from tests.helpers import sample_manifest as _manifest


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
        reader.load(str(broken), split="train", verify="full")
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


def test_reader_refuses_an_incomplete_manifest_in_one_line(tmp_path):
    data = _manifest().to_json()
    del data["image"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ReaderError) as caught:
        read_manifest(str(tmp_path))
    assert "not a complete augbeam manifest (the manifest has no 'image')" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A folder written by the format's rules: 2 splits of 3 shards, a failed input and a failed copy."""
    out = tmp_path_factory.mktemp("made") / "out"
    keys = [f"cat/{i}.jpg" for i in range(7)] + [f"dog/{i}.jpg" for i in range(6)]
    write_output(
        out,
        {"train": keys, "validation": ["cat/v.jpg", "dog/v.jpg"]},
        copies=2,
        failed_inputs={"cat/2.jpg": "decode/CorruptImage"},
        failed_records={("dog/1.jpg", 1): "augment/RangeError"},
    )
    return out


def test_load_reads_no_shard_before_the_first_batch(made, tmp_path, monkeypatch):
    """The default check is a stat per file: a same-size change passes load(), then fails tf.data's CRC on read."""
    import shutil

    import tensorflow as tf

    from pipeline import fsutil

    changed = tmp_path / "changed"
    shutil.copytree(made, changed)
    shard = changed / "train-00001-of-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[-40] ^= 1  # inside the last record's image
    shard.write_bytes(bytes(data))

    read: list[str] = []
    for name in ("open_read", "read_bytes"):
        real = getattr(fsutil, name)
        monkeypatch.setattr(fsutil, name, lambda path, real=real: read.append(path) or real(path))
    ds = reader.load(str(changed), split="train")
    assert [Path(p).name for p in read] == ["manifest.json"]
    monkeypatch.undo()
    with pytest.raises(tf.errors.DataLossError):
        for _ in ds:
            pass
    with pytest.raises(ReaderError, match="does not match its checksum"):
        reader.load(str(changed), split="train", verify="full")
    good = [label for _, label in reader.load(str(made), split="train", verify="full")]
    assert len(good) == read_manifest(str(made)).splits["train"].counts.written


def test_load_refuses_a_changed_size_or_a_missing_part(made, tmp_path):
    import shutil

    resized = tmp_path / "resized"
    shutil.copytree(made, resized)
    with open(resized / "validation-00000-of-00003.tfrecord", "ab") as handle:
        handle.write(b"\0")
    reader.load(str(resized), split="train")  # the other split is not looked at
    with pytest.raises(ReaderError, match="shard .*validation-00000-of-00003.tfrecord has .* bytes, the manifest says"):
        reader.load(str(resized), split="validation")
    (resized / "index-train-00002-of-00003.parquet").unlink()
    with pytest.raises(ReaderError, match="index part index-train-00002-of-00003.parquet listed in the manifest is"):
        reader.load(str(resized), split="train")
    reader.load(str(resized), split="train", verify="none")
    with pytest.raises(ReaderError, match="verify='fast': choose one of size, full, none"):
        reader.load(str(made), split="train", verify="fast")


def test_load_gives_the_records_with_their_metadata(made):
    ds = reader.load(str(made), split="train", with_metadata=True)
    seen = {(meta["key"].numpy().decode(), int(meta["copy"])) for _, _, meta in ds}
    assert seen == {(row.key, row.copy) for row in reader.iter_index(str(made), "train")}
    image, label = next(iter(reader.load(str(made), split="validation")))
    assert image.shape == SYNTHETIC_SHAPE and -1.0 <= float(image.numpy().min()) and int(label) in (0, 1)


def test_iter_index_and_errors_stream_the_parts_in_shard_order(made):
    manifest = read_manifest(str(made))
    rows = list(reader.iter_index(str(made)))
    assert len(rows) == manifest.index_rows
    shards = [shard.file for _, shard in manifest.iter_shards()]
    order = [(shards.index(r.shard), r.position) for r in rows]
    assert order == sorted(order)
    assert {r.split for r in reader.iter_index(str(made), "validation")} == {"validation"}
    errors = list(reader.iter_errors(str(made), "train"))
    assert sorted((e.key, e.copy, e.reason) for e in errors) == [
        ("cat/2.jpg", None, "decode/CorruptImage"),
        ("dog/1.jpg", 1, "augment/RangeError"),
    ]
    with pytest.raises(ReaderError, match="no split 'test'"):
        list(reader.iter_errors(str(made), "test"))


# --- a folder replaced while it is read ----------------------------------------------------------------------------


def _with_run_id(out: Path, run: str) -> Path:
    """Gives a synthetic folder's manifest a run id, as the job's finalize does."""
    path = out / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "run": run}, indent=2, sort_keys=True) + "\n")
    return out


def _replace_folder(out: Path, other: Path) -> None:
    """What ``--overwrite`` does to the folder, in its order: the manifest first, the rest, the new manifest last."""
    (out / "manifest.json").unlink()
    for old in out.iterdir():
        old.unlink()
    for new in sorted(other.iterdir()):
        if new.name != "manifest.json":
            (out / new.name).write_bytes(new.read_bytes())
    tmp = out / "manifest.json.tmp"
    tmp.write_bytes((other / "manifest.json").read_bytes())
    tmp.rename(out / "manifest.json")


def test_a_reader_reads_on_through_the_same_run_and_stops_at_another_one(made, tmp_path):
    import shutil

    import tensorflow as tf

    out = _with_run_id(shutil.copytree(made, tmp_path / "out"), "1" * 32)
    other = tmp_path / "other"
    write_output(other, {"train": ["cat/x.jpg", "dog/y.jpg"]}, copies=1)
    _with_run_id(other, "2" * 32)
    ds = reader.load(str(out), split="train", with_metadata=True)
    unwatched = reader.load(str(out), split="train", verify="none")

    def keys() -> list[str]:
        return sorted(meta["key"].numpy().decode() for _, _, meta in ds)

    first = keys()
    manifest = out / "manifest.json"
    data = manifest.read_bytes()
    manifest.unlink()  # a rerun of the same input and config: new file, same bytes
    manifest.write_bytes(data)
    assert keys() == first
    manifest.unlink()  # --overwrite begins
    with pytest.raises(tf.errors.InvalidArgumentError) as gone:
        keys()
    assert (
        f"the folder {out} was replaced by another run while reading (its manifest.json is gone" in gone.value.message
    )
    manifest.write_bytes(data)
    _replace_folder(out, other)
    with pytest.raises(tf.errors.InvalidArgumentError) as replaced:
        keys()
    message = replaced.value.message
    assert "was replaced by another run while reading (run 111111111111 then, 222222222222 now); reload it" in message
    assert sum(1 for _ in unwatched) == 2  # verify="none" checks nothing, as documented: the new run's 2 records


def test_the_check_after_the_open_comes_before_the_first_record(made):
    """A file that passes the check before its open but not the one after is never read from."""
    import tensorflow as tf

    shard = made / "train-00000-of-00003.tfrecord"
    seen: list[bool] = []  # whether the shard was open at each check

    class Watch(reader.FolderWatch):
        def problem(self) -> str:
            fds = Path("/proc/self/fd")
            seen.append(fds.is_dir() and any(os.path.realpath(fd) == str(shard) for fd in fds.iterdir()))
            return "" if len(seen) == 1 else "replaced after the open"

    watch = Watch(str(made), None, read_manifest(str(made)), "train")
    served = []
    with pytest.raises(tf.errors.InvalidArgumentError, match="replaced after the open"):
        for record, _ in reader.open_watched(tf.constant(str(shard)), watch):
            served.append(record)
    assert served == []
    if Path("/proc/self/fd").is_dir():
        assert seen == [False, True]  # before the open, then after it


def test_the_watch_of_a_folder_at_a_url_uses_the_manifests_update_time(made, tmp_path):
    """On ``dirfs://`` (tests/helpers.py, an object store's API): one metadata request per check."""
    import shutil

    from tests.helpers import DirFileSystem  # noqa: F401  (registers dirfs:// with Beam)

    folder = _with_run_id(shutil.copytree(made, tmp_path / "out"), "1" * 32)
    url = f"dirfs://{folder}"
    seen = reader.manifest_identity(url)
    assert seen == (os.path.getsize(folder / "manifest.json"), os.stat(folder / "manifest.json").st_mtime)
    watch = reader.FolderWatch(url, seen, read_manifest(url), "train")
    assert watch.problem() == ""
    other = tmp_path / "other"
    write_output(other, {"train": ["cat/x.jpg"]}, copies=1)
    _replace_folder(folder, _with_run_id(other, "2" * 32))
    later = os.stat(folder / "manifest.json").st_mtime + 5
    os.utime(folder / "manifest.json", (later, later))  # update times in seconds: make the rewrite's visible
    assert "(run 111111111111 then, 222222222222 now)" in watch.problem()
    (folder / "manifest.json").unlink()
    assert reader.manifest_identity(url) is None and "manifest.json is gone" in watch.problem()


# --- epoch=e: one copy of each image per epoch ---------------------------------------------------------------------


def _served(out: Path, split: str, **kwargs) -> list[tuple[str, int]]:
    """(key, copy) of every record ``load`` gives, in its order."""
    ds = reader.load(str(out), split=split, with_metadata=True, **kwargs)
    return [(meta["key"].numpy().decode(), int(meta["copy"])) for _, _, meta in ds]


def test_epoch_e_serves_each_key_once_with_copy_e_mod_copies(run_a):
    manifest = read_manifest(str(run_a))
    assert manifest.splits["train"].counts.copies == 3 and manifest.splits["train"].counts.failed_records == 0
    keys = sorted({row.key for row in reader.iter_index(str(run_a), "train")})
    everything = _served(run_a, "train")
    epochs = [_served(run_a, "train", epoch=e) for e in range(4)]
    for e, served in enumerate(epochs[:3]):
        assert sorted(key for key, _ in served) == keys  # every key, exactly once
        assert {copy for _, copy in served} == {e}
        assert served == [pair for pair in everything if pair[1] == e]  # the shards' own order, filtered
    assert epochs[3] == epochs[0]  # 3 mod 3
    assert sorted(epochs[0] + epochs[1] + epochs[2]) == sorted(everything)  # K epochs: the whole split
    batches = reader.load(str(run_a), split="train", epoch=4, batch_size=4)
    assert sum(int(labels.shape[0]) for _, labels in batches) == len(keys)
    # shuffle_files interleaves without a fixed order (as without epoch): the same records, in some order.
    assert sorted(_served(run_a, "train", epoch=2, shuffle_files=True, seed=7)) == sorted(epochs[2])


def test_epoch_on_a_split_of_one_copy_serves_every_record(run_a):
    assert read_manifest(str(run_a)).splits["validation"].counts.copies == 1  # --eval-copies 1
    everything = _served(run_a, "validation")
    assert everything and {copy for _, copy in everything} == {0}
    assert _served(run_a, "validation", epoch=0) == everything
    assert _served(run_a, "validation", epoch=5) == everything


def test_epoch_leaves_out_a_key_whose_copy_failed_and_its_error_row_says_why(made):
    """made: 2 copies, dog/1.jpg's copy 1 failed at augment, cat/2.jpg failed whole (no records)."""
    keys = {row.key for row in reader.iter_index(str(made), "train")}
    assert "cat/2.jpg" not in keys
    even = _served(made, "train", epoch=0)
    odd = _served(made, "train", epoch=1)
    assert sorted(key for key, _ in even) == sorted(keys)
    assert sorted(key for key, _ in odd) == sorted(keys - {"dog/1.jpg"})
    assert {copy for _, copy in odd} == {1}
    failed = [e for e in reader.iter_errors(str(made), "train") if e.key == "dog/1.jpg"]
    assert [(e.copy, e.reason) for e in failed] == [(1, "augment/RangeError")]
    assert _served(made, "train", epoch=np.int64(3)) == odd  # numpy's integers are epochs too


@pytest.mark.parametrize("epoch", [-1, 1.0, "1", True])
def test_a_bad_epoch_is_refused_in_one_line(made, epoch):
    with pytest.raises(ReaderError) as caught:
        reader.load(str(made), split="train", epoch=epoch)
    assert str(caught.value).startswith(f"epoch={epoch!r}: give the training epoch as a whole number >= 0")
    assert "\n" not in str(caught.value)
