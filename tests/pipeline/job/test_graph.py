"""The Beam graph's counters: those of a real run against its manifest, and duplicate listing rows."""

from __future__ import annotations

from tests.helpers import IN_PROCESS, progress_lines


def test_run_shows_progress_and_counters_agree_with_the_manifest(small_input, tmp_path, capsys):
    from pipeline.job.graph import counters
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    results = []
    config = JobConfig.create(
        input=str(small_input),
        output=str(tmp_path / "out"),
        image_size=(16, 16),
        copies=2,
        num_shards=2,
        seed=3,
        max_error_rate=0.5,
    )
    manifest = run_job(config, IN_PROCESS, progress="lines", on_result=results.append)

    lines = progress_lines(capsys.readouterr().err)
    assert lines, "no progress line on stderr"
    # 5 listed train inputs x 2 copies + 1 validation input; the stray file never reaches the pipeline.
    assert lines[-1].startswith("augbeam: processed 11/11 records (100%), 2 failed (1 input), in ")
    from pipeline.checks.verify import verify
    from pipeline.job.shard import WORK_DIR

    assert not (tmp_path / "out" / WORK_DIR).exists()  # progress files went with the work folder
    report = verify(str(tmp_path / "out"))  # every file in the folder is one the manifest names
    assert report.ok, report.text(str(tmp_path / "out"))
    assert "progress" not in manifest.config  # a display option, not part of the output

    # The counters of that run, next to the counts the manifest took from the written data.
    from apache_beam.metrics.metric import MetricsFilter

    (result,) = results
    assert result.metrics().query(MetricsFilter().with_namespace("augbeam"))["counters"]
    got = counters(result)
    for split, info in manifest.splits.items():
        c = info.counts
        assert got[f"listed/{split}"] == c.listed
        assert got[f"decoded/{split}"] == c.decoded
        assert got[f"written/{split}"] == c.written
        assert got[f"bytes/{split}"] == sum(s.bytes for s in info.shards)
        assert got[f"planned/{split}"] == (c.listed - c.failed_inputs_by_stage["listing"]) * c.copies
        assert got.get(f"records_failed/{split}", 0) == got[f"planned/{split}"] - c.written
    splits = manifest.splits.values()
    assert got["listed"] == sum(i.counts.listed for i in splits) == 7
    assert got["written"] == sum(i.counts.written for i in splits) == 9
    for stage in ("listing", "read", "decode"):
        by_stage = sum(n for name, n in got.items() if name.startswith(f"failed/{stage}/"))
        assert by_stage == sum(i.counts.failed_inputs_by_stage[stage] for i in splits)
    assert {name: n for name, n in got.items() if name.startswith("failed/")} == {
        "failed/decode/CorruptImage": 1,
        "failed/listing/NotInClassFolder": 1,
    }


def test_duplicate_listing_rows_count_as_duplicates_not_failures(tmp_path):
    """The listing runs on the workers: its refused rows are counted there, duplicates apart from failures."""
    import apache_beam as beam

    from pipeline.job.graph import PlanRecords, counters
    from pipeline.job.list_stage import ListInputs
    from pipeline.job.listing import open_source
    from pipeline.job.options import JobConfig

    images = tmp_path / "img"
    images.mkdir()
    for name in ("a.png", "b.png"):
        (images / name).write_bytes(b"not read while listing")
    listing = tmp_path / "list.csv"
    listing.write_text(
        "path,label,split\nimg/a.png,0,train\nimg/a.png,0,train\nimg/b.png,1,train\nimg/b.png,1,validation\n,0,validation\n"
    )
    config = JobConfig.create(input=str(listing), output=str(tmp_path / "out"), copies=2)
    with beam.Pipeline() as p:
        source = open_source(str(listing))
        work, plan = p | ListInputs(config, source)
        _ = work | PlanRecords(plan, source)
    assert counters(p.result) == {
        "duplicates": 2,
        "duplicates/train": 1,
        "duplicates/validation": 1,
        "failed/listing/MissingPath": 1,
        "listed": 5,
        "listed/train": 3,
        "listed/validation": 2,
        "planned": 4,
        "planned/train": 4,
    }
