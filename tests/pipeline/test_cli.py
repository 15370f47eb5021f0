"""`augbeam` on the command line: every run option reaches JobConfig, user errors in one line, `augbeam ops`,
--device, progress and the summary, local outputs made absolute, the quick exit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from pipeline.cli import build_parser, job_config, main
from pipeline.errors import UserError
from pipeline.job import progress as pg
from pipeline.job.options import JobConfig
from tests.helpers import FLINK_CLUSTER, PHOTOS, ROOT, progress_lines
from tests.helpers import UNREACHABLE_FIX as FIX
from transforms.config import load_ops
from transforms.ops import registered_ops


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "/nonexistent/photos"], "--input '/nonexistent/photos' does not exist"),
        (["--model", "resnet51"], "--model 'resnet51' is not known"),
        (["--config", "nosuch.yaml"], "no such file, and not a preset"),
        (["--copies", "0"], "--copies and --eval-copies must be at least 1"),
        (["--eval-copies", "3"], "would write identical copies"),
        (["--image-size", "0", "10"], "--image-size 0 10"),
        (
            ["--image-size", "4096", "4096", "--max-image-bytes", "100M"],
            "4096x4096 x 3 float32 = 201326592 bytes (192.0 MiB), over --max-image-bytes 104857600",
        ),
        (["--max-image-bytes", "0"], "--max-image-bytes 0: must be positive"),
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
RUN_ONLY_OPTIONS = {"command", "progress", "shared_mount", "tf_threads", "phase_log"}


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
        *("--max-image-bytes", "512M", "--annotations", "validation=v.json", "--annotation-format", "coco"),
        *("--yolo-names", "n.yaml", "--min-box-area", "2", "--min-visibility", "0.3", "--min-box-side", "1.5"),
        *("--erasing-hides-keypoints",),
        *("--batch-size", "4", "--max-error-rate", "0.5", "--dali-index", "--overwrite"),
        *("--progress", "none", "--shared-mount", "--tf-threads", "2", "--resume", "--phase-log", "p.jsonl"),
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
        "max_image_bytes": 512 * 2**20,
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
        "resume": True,
        "annotations": (("validation", "v.json"),),
        "annotation_format": "coco",
        "yolo_names": "n.yaml",
        "min_box_area": 2.0,
        "min_visibility": 0.3,
        "min_box_side": 1.5,
        "erasing_hides_keypoints": True,
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


def test_mean_std_needs_mean_and_std_on_the_command_line(tmp_path, capsys):
    code = main(["run", "--input", str(PHOTOS), "--output", str(tmp_path / "o"), "--model", "mean_std"])
    err = capsys.readouterr().err
    assert code == 2 and "--model mean_std needs --mean R G B and --std R G B" in err
    assert not (tmp_path / "o").exists()


def test_ops_json_and_preset_dump(capsys, tmp_path):
    assert main(["ops", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in entries} == set(registered_ops())
    assert main(["ops", "--preset", "heavy"]) == 0
    path = tmp_path / "heavy.yaml"
    path.write_text(capsys.readouterr().out)
    assert load_ops(str(path)) == load_ops("heavy")


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


def test_cli_progress_with_two_worker_processes_and_the_summary(small_input, tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "out"
    args = ["run", "--input", str(small_input), "--output", str(out), "--image-size", "16", "16", "--copies", "2"]
    args += ["--num-shards", "2", "--seed", "3", "--max-error-rate", "0.5", "--progress", "lines"]
    assert main([*args, "--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]) == 0
    captured = capsys.readouterr()
    assert progress_lines(captured.err)[-1].startswith("augbeam: processed 11/11 records (100%), 2 failed (1 input)")
    assert not any(p.name.startswith(".") for p in out.iterdir())  # the work folder (and progress files) went

    manifest = json.loads((out / "manifest.json").read_text())
    summary = captured.out.splitlines()
    train = next(line for line in summary if line.startswith("  train "))
    train_bytes = pg.format_bytes(sum(s["bytes"] for s in manifest["splits"]["train"]["shards"]))
    assert train.split() == ["train", "6", "2", "2", "8", "0", *train_bytes.split(), "2"]
    assert next(line for line in summary if line.startswith("  split ")).split() == [
        "split",
        "inputs",
        "failed",
        "copies",
        "records",
        "rec.failed",
        "bytes",
        "shards",
    ]
    at = summary.index("  failures by reason (listing, read, decode: inputs; augment, range: records):")
    assert summary[at + 1].split() == ["train", "1", "decode/CorruptImage,", "1", "listing/NotInClassFolder"]
    assert not summary[at + 2].startswith("    ")  # validation had no failure: no line
    assert "9 records (" in captured.out


def test_progress_option_is_checked(tmp_path, capsys):
    from pipeline.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--progress", "fancy"])
    assert "invalid choice: 'fancy'" in capsys.readouterr().err


def test_cli_makes_a_local_output_absolute_and_keeps_input_as_given(tmp_path, monkeypatch, capsys):
    """A worker pool started in another folder writes where the job looks: the output path is absolute."""
    import pipeline.job.run
    from pipeline.cli import main

    seen = []

    def fake_run_job(config, beam_args, progress="none", shared_mount=False, tf_threads="auto", **_):
        seen.append(config)
        raise UserError("stopped")

    monkeypatch.setattr(pipeline.job.run, "run_job", fake_run_job)
    monkeypatch.chdir(tmp_path)
    for output, expected in (("out", str(tmp_path / "out")), ("../x/out", str(tmp_path.parent / "x" / "out"))):
        assert main(["run", "--input", "photos", "--output", output, "--image-size", "32", "32"]) == 2
        assert seen[-1].output == expected and seen[-1].input == "photos"  # input is in the manifest: as given
    assert main(["run", "--input", "photos", "--output", "gs://b/out/", "--image-size", "32", "32"]) == 2
    assert seen[-1].output == "gs://b/out/"
    assert "out" not in seen[-1].resolved() and seen[0].resolved() == seen[-1].resolved()  # same manifest config
    capsys.readouterr()

    monkeypatch.undo()  # the real job: refused in one line, naming the absolute output, before it is created
    monkeypatch.chdir(tmp_path)
    from tests.helpers import PHOTOS

    assert main(["run", "--input", str(PHOTOS), "--output", "out", "--", *FLINK_CLUSTER]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"augbeam: error: --output '{tmp_path / 'out'}' is on this machine, which FlinkRunner workers "
        f"cannot reach; {FIX}\n"
    )
    assert not (tmp_path / "out").exists()
