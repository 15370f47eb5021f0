"""The TFRecord framing and record schema, shard planning, and the CLI's user errors."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest

from pipeline.cli import build_parser, job_config, main
from pipeline.format.records import FIELD_ORDER, TFRecordWriter, build_example, parse_example, parse_spec
from pipeline.job.options import JobConfig
from tests.conftest import PHOTOS, ROOT


def test_tfrecord_framing_reads_back_in_tensorflow(tmp_path):
    import tensorflow as tf

    records = [
        build_example(
            image=bytes([i]) * 10,
            shape=(1, 2, 3),
            dtype="uint8",
            encoding="uint8",
            label=i,
            key=f"k/{i} ü.png",
            copy=i,
            params="[]",
            source_sha256="ab",
        )
        for i in range(5)
    ]
    buffer = io.BytesIO()
    writer = TFRecordWriter(buffer)
    for record in records:
        writer.write(record)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(buffer.getvalue())
    assert writer.records == 5 and writer.bytes == len(buffer.getvalue())
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert read == records
    parsed = tf.io.parse_single_example(read[3], parse_spec())
    assert parsed["key"].numpy().decode() == "k/3 ü.png" and int(parsed["label"]) == 3
    assert parsed["image/shape"].numpy().tolist() == [1, 2, 3]


@pytest.mark.parametrize("label", [-1, 0, 7, 2**40])
def test_parse_example_without_tensorflow_equals_tensorflows_parse(label):
    """The driver's reader (protobuf, schema declared without TensorFlow) gives what TensorFlow's parser gives,
    negatives and big ints included, with TensorFlow's own Example classes loaded beside it."""
    import tensorflow as tf

    from pipeline.format.records import parse_example

    record = build_example(
        image=bytes(range(256)) * 3,
        shape=(16, 16, 3),
        dtype="uint8",
        encoding="uint8",
        label=label,
        key="train/ü/é 1.png",
        copy=300,
        params='[{"op": "x"}]',
        source_sha256="ab" * 32,
    )
    ours = parse_example(record)
    theirs = tf.train.Example.FromString(record).features.feature
    assert set(ours) == set(theirs)
    for name, feature in theirs.items():
        kind = feature.WhichOneof("kind")
        assert ours[name] == list(getattr(feature, kind).value), name
    assert ours["label"] == [label] and ours["image/shape"] == [16, 16, 3]

    def delimited(field: int, body: bytes) -> bytes:
        return bytes([field << 3 | 2, len(body)]) + body

    # An int64 list written unpacked (one varint per value), as older writers may: -2 is 10 varint bytes.
    minus_two = bytes([0xFE] + [0xFF] * 8 + [0x01])
    int64_list = b"\x08\x03" + b"\x08" + minus_two
    entry = delimited(1, b"n") + delimited(2, delimited(3, int64_list))
    data = delimited(1, delimited(1, entry))
    assert tf.train.Example.FromString(data).features.feature["n"].int64_list.value == [3, -2]
    assert parse_example(data)["n"] == [3, -2]


def test_examples_are_deterministic():
    kwargs = dict(
        image=b"x",
        shape=(1, 1, 3),
        dtype="uint8",
        encoding="png",
        label=0,
        key="k",
        copy=0,
        params="[]",
        source_sha256="00",
    )
    assert build_example(**kwargs) == build_example(**kwargs)


def _protobuf_example(**fields) -> bytes:
    """The reference: the same Example through TensorFlow's protobuf classes, deterministic serialisation."""
    from tensorflow.core.example import example_pb2, feature_pb2

    def b(value: bytes) -> feature_pb2.Feature:
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[value]))

    def i(values: list[int]) -> feature_pb2.Feature:
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))

    feature = {
        "image": b(fields["image"]),
        "image/shape": i(list(fields["shape"])),
        "image/dtype": b(fields["dtype"].encode()),
        "image/encoding": b(fields["encoding"].encode()),
        "label": i([fields["label"]]),
        "key": b(fields["key"].encode("utf-8")),
        "copy": i([fields["copy"]]),
        "params": b(fields["params"].encode("utf-8")),
        "source_sha256": b(fields["source_sha256"].encode()),
    }
    return example_pb2.Example(features=feature_pb2.Features(feature=feature)).SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"image": b"", "label": 0, "copy": 0, "key": "", "params": "", "shape": (0, 0, 3)},
        {"image": bytes(range(256)) * 3, "label": -1, "copy": 7, "key": "a/ü €.png", "params": "[]"},
        {"image": b"\x00" * (224 * 224 * 3 * 4), "label": 2**40, "copy": 127, "key": "k" * 300, "shape": (224, 224, 3)},
        {"image": b"\xff" * 200, "label": 128, "copy": 16384, "key": "x", "params": "p" * 70000, "dtype": "float16"},
        {"image": b"jpeg", "label": -(2**63), "copy": 2**63 - 1, "key": "k", "encoding": "jpeg", "shape": (1, 1, 3)},
    ],
)
def test_examples_are_the_bytes_protobuf_writes(fields):
    """build_example writes the Example by hand; it must equal protobuf's deterministic bytes, field for field."""
    import tensorflow as tf
    from google.protobuf.internal import api_implementation

    full = {"shape": (2, 3, 3), "params": "[]", "dtype": "uint8", "encoding": "uint8", "source_sha256": "ab" * 32}
    full |= fields
    ours = build_example(**full)
    reference = _protobuf_example(**full)
    if api_implementation.Type() == "upb":  # the pinned backend: its deterministic map order is FIELD_ORDER
        assert ours == reference
    assert len(ours) == len(reference)
    assert sorted(parse_example(ours).items()) == sorted(parse_example(reference).items())
    # The map entries in FIELD_ORDER (a parser gives its own map order): each entry's key, then its Feature.
    heads = [b"\x0a" + bytes([len(name)]) + name.encode() + b"\x12" for name in FIELD_ORDER]
    assert all(ours.count(head) == 1 for head in heads)
    assert sorted(heads, key=ours.index) == heads
    parsed = tf.io.parse_single_example(ours, parse_spec())
    assert int(parsed["label"]) == full["label"] and parsed["image"].numpy() == full["image"]
    assert parsed["key"].numpy().decode("utf-8") == full["key"]


def test_shard_counts_depend_on_data_and_config_only():
    cfg = JobConfig.create(input="x", output="y", encoding="float32", image_size=(224, 224))
    assert cfg.shards_for(0) == 1
    assert cfg.shards_for(100) == 1  # 100 x 602 KB < 64 MB
    assert cfg.shards_for(1000) == 9  # by size: 1000 x 602 KB / 64 MB
    jpeg = JobConfig.create(input="x", output="y", encoding="jpeg", image_size=(224, 224))
    assert jpeg.shards_for(2000) == 4  # by count: at most 512 records a shard
    assert JobConfig.create(input="x", output="y", num_shards=7).shards_for(5) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "/nonexistent/photos"], "--input '/nonexistent/photos' does not exist"),
        (["--model", "resnet51"], "--model 'resnet51' is not known"),
        (["--config", "nosuch.yaml"], "no such file, and not a preset"),
        (["--copies", "0"], "--copies and --eval-copies must be at least 1"),
        (["--eval-copies", "3"], "would write identical copies"),
        (["--image-size", "0", "10"], "--image-size 0 10"),
        (["--", "--runner=NoSuchRunner"], "NoSuchRunner"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, capsys, args, message):
    base = ["run", "--input", str(PHOTOS), "--output", str(tmp_path / "out")]
    # Later values of a repeated option win in argparse, so the bad one overrides the base.
    code = main(base + args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists(), "nothing may be written before the checks pass"


def test_beam_options_must_follow_double_dash(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--input", str(PHOTOS), "--output", str(tmp_path), "--runner=DirectRunner"])
    assert "Beam options go after a bare '--'" in capsys.readouterr().err


# The ``augbeam run`` options that are not JobConfig parameters: how the job runs, never what it writes.
RUN_ONLY_OPTIONS = {"command", "progress", "shared_mount", "tf_threads"}


def _parse_run(*options: str):
    return build_parser().parse_args(["run", "--input", "photos", "--output", "out", *options])


def test_every_run_option_is_a_jobconfig_parameter_or_run_only():
    assert set(vars(_parse_run())) - RUN_ONLY_OPTIONS == set(JobConfig.create_parameters())


def test_every_run_option_reaches_jobconfig(tmp_path, monkeypatch):
    # Every option set to a value other than its default; --shard-size-mb excludes --num-shards, so it gets its own.
    monkeypatch.chdir(tmp_path)
    args = _parse_run(
        *("--input", "list.csv", "--output", "dst", "--config", "light"),
        *("--model", "mean_std", "--image-size", "40", "48"),
        *("--mean", "0.5", "0.4", "0.3", "--std", "0.2", "0.25", "0.3"),
        *("--copies", "2", "--eval-copies", "3", "--augment-eval", "--seed", "7", "--classes", "b, a"),
        *("--num-shards", "5", "--encoding", "jpeg", "--jpeg-quality", "80", "--resize", "pad"),
        *("--alpha-fill", "0", "--max-pixels", "1000", "--high-bit-depth", "range", "--device", "cpu"),
        *("--batch-size", "4", "--max-error-rate", "0.5", "--dali-index", "--overwrite"),
        *("--progress", "none", "--shared-mount", "--tf-threads", "2"),
    )
    by_size = _parse_run("--shard-size-mb", "32")
    defaults = _parse_run()
    unset = [k for k, v in vars(defaults).items() if k != "command" and v == vars(args)[k] == vars(by_size)[k]]
    assert not unset, "give every run option a non-default value here"
    assert job_config(by_size).shard_size_mb == 32.0

    expected = {
        "input": "list.csv",
        "output": os.path.abspath("dst"),
        "model": "mean_std",
        "image_size": (40, 48),
        "copies": 2,
        "eval_copies": 3,
        "augment_eval": True,
        "seed": 7,
        "num_shards": 5,
        "shard_size_mb": 64.0,
        "encoding": "jpeg",
        "jpeg_quality": 80,
        "resize_mode": "pad",
        "alpha_fill": 0,
        "max_pixels": 1000,
        "high_bit_depth": "range",
        "classes": ("b", "a"),
        "config_source": "light",
        "ops": JobConfig.create(input="x", output="y", config="light").ops,
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.25, 0.3),
        "max_error_rate": 0.5,
        "device": "cpu",
        "batch_size": 4,
        "dali_index": True,
        "overwrite": True,
    }
    assert set(expected) == {f.name for f in dataclasses.fields(JobConfig)}, "a JobConfig field is missing here"
    config, default = job_config(args), job_config(defaults)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
        if name != "shard_size_mb":
            assert getattr(default, name) != value, f"{name}: the default would pass too"


def test_run_option_conversions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert job_config(_parse_run()).image_size == (224, 224)  # mobilenet_v2's
    assert job_config(_parse_run("--model", "inception_v3")).image_size == (299, 299)
    assert job_config(_parse_run("--output", "gs://bucket/out")).output == "gs://bucket/out"
    assert job_config(_parse_run("--output", "sub/out")).output == str(tmp_path.resolve() / "sub" / "out")
    assert job_config(_parse_run()).classes is None


def test_overwrite_never_deletes_inputs(tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(PHOTOS, data / "photos")
    for output in (data, data / "photos" / "out"):
        code = main(["run", "--input", str(data / "photos"), "--output", str(output), "--overwrite"])
        assert code == 2
        assert "overlaps --input" in capsys.readouterr().err
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{data / 'photos/train/textures/brick.png'},0\n")
    assert main(["run", "--input", str(listing), "--output", str(data), "--overwrite"]) == 2
    assert "holds inputs of the listing" in capsys.readouterr().err
    assert (data / "photos/train/textures/brick.png").exists()


def test_framing_uses_the_hardware_crc32c_and_it_equals_crcmods():
    """google-crc32c is a dependency (fast); crcmod, the fallback, gives the same checksums."""
    import os

    import crcmod.predefined
    import google_crc32c

    from pipeline.format import records
    assert records._crc32c_extend is google_crc32c.extend
    slow = crcmod.predefined.mkPredefinedCrcFun("crc-32c")
    for data in (b"", b"a", os.urandom(100_003)):
        assert google_crc32c.value(data) == slow(data)
        assert records._crc32c_extend(records._crc32c_extend(0, data[:7]), data[7:]) == slow(data)


def test_a_record_written_in_parts_is_the_record_written_whole():
    """The shard writer passes (prefix, image, suffix) unjoined: the same bytes, length, checksums and hash."""
    import hashlib
    import io

    from pipeline.format import records
    fields = dict(shape=(2, 2, 3), dtype="float32", encoding="float32", label=3, key="k/é", copy=1, params="[]")
    fields |= dict(image=bytes(range(48)) * 4, source_sha256="ab")
    parts = records.example_parts(**fields)
    whole = build_example(**fields)
    assert parts[1] is fields["image"] and b"".join(parts) == whole
    assert records.record_sha256(parts) == records.record_sha256(whole) == hashlib.sha256(whole).hexdigest()
    assert records.framed_length(parts) == records.framed_length(whole) == len(whole) + 16
    streams = []
    for record in (parts, whole):
        buffer = io.BytesIO()
        writer = TFRecordWriter(buffer)
        writer.write(record)
        streams.append((buffer.getvalue(), writer.sha256.hexdigest(), writer.bytes))
    assert streams[0] == streams[1]


def _augbeam(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it: ``python -m pipeline ...`` (or ``code`` calling ``cli.entry``), piped."""
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_quick_exit_flushes_piped_output_and_keeps_the_exit_code(tmp_path):
    done = _augbeam("ops", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert {op["name"] for op in json.loads(done.stdout)} >= {"rotation", "contrast"}  # the whole text arrived
    done = _augbeam("run", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("augbeam: error: --input")


def test_the_quick_exit_still_runs_exit_handlers(tmp_path):
    marker = tmp_path / "handler-ran"
    code = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "sys.argv = ['augbeam', 'models']\n"
        "from pipeline.cli import entry\n"
        "entry()\n"
    )
    done = _augbeam(code=code)
    assert done.returncode == 0, done.stderr
    assert "mobilenet_v2" in done.stdout
    assert marker.read_text() == "yes"
