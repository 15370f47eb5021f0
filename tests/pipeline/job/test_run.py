"""run_job: what it refuses before anything starts or is touched (overlapping or non-empty output, a bad
progress mode, local paths for remote workers, a listing over the error rate), and the Beam options it makes.
"""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from tests.helpers import FLINK_CLUSTER, PHOTOS, ROOT, cli_args, in_process, shard_bytes
from tests.helpers import SETUP_FILE_ARG as SETUP


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


def test_a_bad_progress_mode_fails_before_the_output_is_touched(small_input, tmp_path):
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("older run")
    config = JobConfig.create(input=str(small_input), output=str(out), max_error_rate=0.5, overwrite=True)
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        run_job(config, [], progress="fancy")
    assert (out / "keep.txt").read_text() == "older run"


def test_output_not_empty_is_refused_then_overwritten(photos_with_bad, run_b, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run_b, out)
    (out / "stale-from-older-run.tfrecord").write_bytes(b"old")
    args = cli_args(photos_with_bad, out)
    assert main(args) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert main(in_process([*args, "--overwrite"])) == 0
    assert shard_bytes(out) == shard_bytes(run_b)


def test_run_job_refuses_local_paths_for_remote_workers_before_anything_starts(tmp_path):
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job
    from tests.helpers import PHOTOS

    out = tmp_path / "out"
    config = JobConfig.create(input=str(PHOTOS), output=str(out), image_size=(32, 32))
    with pytest.raises(UserError, match=f"^--output '{out}' is on this machine, which FlinkRunner workers"):
        run_job(config, FLINK_CLUSTER)
    assert not out.exists()
    config = JobConfig.create(input=str(PHOTOS), output="gs://bucket/out", image_size=(32, 32))
    with pytest.raises(UserError, match=f"^--input '{PHOTOS}' is on this machine, which FlinkRunner workers"):
        run_job(config, FLINK_CLUSTER)


def test_pipeline_options_adds_the_setup_file_and_says_so(capsys):
    from apache_beam.options.pipeline_options import SetupOptions

    from pipeline.job.run import pipeline_options

    options = pipeline_options(["--runner", "FlinkRunner", "--flink_master=localhost:8081"])
    assert options.view_as(SetupOptions).setup_file == str(ROOT / "setup.py")
    err = capsys.readouterr().err
    assert f"FlinkRunner workers get the project through {SETUP} (added)" in err
    assert len(err.strip().splitlines()) == 1
    options = pipeline_options(["--direct_num_workers=2"])
    assert options.view_as(SetupOptions).setup_file is None
    assert capsys.readouterr().err == ""


def test_listing_over_the_error_rate_fails_before_touching_the_output(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an older run")
    args = ["run", "--input", str(PHOTOS), "--output", str(out), "--classes", "everyday", "--overwrite"]
    assert main(in_process(args)) == 2
    err = capsys.readouterr().err
    assert "refused while listing, over --max-error-rate 0.1" in err and "UnknownLabel" in err
    assert (out / "keep.txt").read_text() == "an older run"
    assert main(in_process([*args[:-1], "--classes", "everyday,", "--overwrite"])) == 2
    assert "distinct, non-empty class names" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["output", "parent", "work folder"])
def test_a_file_in_the_way_of_the_output_is_one_line(tmp_path, capsys, where):
    """The output is a file, sits under one, or its work folder's name is taken by a file: one line, nothing run."""
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    out = {"output": blocker, "parent": blocker / "run1" / "out", "work folder": tmp_path / "out"}[where]
    if where == "work folder":
        out.mkdir()
        (out / ".augbeam-work").write_text("not a folder")
        blocker = out / ".augbeam-work"
    assert main(in_process(cli_args(PHOTOS, out))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("augbeam: error: ") and "Traceback" not in err, err
    expected = "is a file; give a folder" if where == "output" else f"{str(blocker)!r} is a file, not a folder"
    assert expected in err, err
    assert blocker.read_text() == "not a folder"
