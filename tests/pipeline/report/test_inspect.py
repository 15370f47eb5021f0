"""`augbeam inspect DST`: the manifest summary of a real run, and one clear line for an unfinished folder."""

from __future__ import annotations

import json
import re
import shutil

from pipeline.cli import main


def test_inspect_prints_the_summary(report_job, capsys):
    assert main(["inspect", str(report_job)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((report_job / "manifest.json").read_text())
    assert f"augbeam inspect {report_job}" in out
    assert f"augbeam v2, written by augbeam {manifest['producer']['augbeam']}" in out
    assert f"input:         {manifest['input']['root']} (folder)" in out
    assert "classes:       3: everyday, microscopy, textures" in out
    assert "preprocessing: mobilenet_v2 (mode tf, RGB, values in [-1, 1]), applied by the reader" in out
    assert "image:         32x32x3, encoding uint8 (stored uint8)" in out
    assert "random_resized_crop, horizontal_flip, rotation, some_of(brightness, saturation), randaugment" in out
    assert "copies: train 2, evaluation 1; evaluation ops: none" in out
    assert "seed:          1" in out
    # listed, failed, decoded, copies, expected, written, failed records, shards, bytes
    train = manifest["splits"]["train"]
    size = sum(s["bytes"] for s in train["shards"])
    assert re.search(rf"\n  train\s+13\s+2\s+11\s+2\s+22\s+22\s+0\s+2\s+{size:,}\n", out), out
    assert re.search(r"\n  validation\s+4\s+0\s+4\s+1\s+4\s+4\s+0\s+2\s+[\d,]+\n", out), out
    assert re.search(r"\n  total\s+17\s+2\s+15\s+26\s+26\s+0\s+4\s+[\d,]+\n", out), out
    report_size = manifest["files"]["side"]["report.html"]["bytes"]
    assert re.search(rf"\n    report\.html\s+{report_size:,} bytes\n", out), out
    assert re.search(r"\n    4 index parts \(index-\*\.parquet\)\s+[\d,]+ bytes  26 rows\n", out), out
    assert re.search(r"\n    4 error parts \(errors-\*\.parquet\)\s+[\d,]+ bytes  2 rows\n", out), out
    assert re.search(r"\n    4 shards \(\*\.tfrecord\)\s+[\d,]+ bytes\n", out), out
    assert "errors:        2 rows in errors-*.parquet: 1 decode/CorruptImage, 1 decode/UnknownFormat" in out
    assert f"report:        {report_job / 'report.html'} (open it in a browser)" in out


def test_inspect_unfinished_folder_is_one_line(report_job, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(report_job, unfinished)
    (unfinished / "manifest.json").unlink()
    for folder in (unfinished, tmp_path / "missing"):
        assert main(["inspect", str(folder)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("augbeam: error: ") and "has no manifest.json: the run did not finish" in lines[0]


def test_inspect_older_run_without_report(report_job, tmp_path, capsys):
    older = tmp_path / "older"
    shutil.copytree(report_job, older)
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["files"]["side"].pop("report.html")
    (older / "manifest.json").write_text(json.dumps(manifest))
    (older / "report.html").unlink()
    assert main(["inspect", str(older)]) == 0
    assert "report:        none (no report.html" in capsys.readouterr().out
