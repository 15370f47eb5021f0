"""The report's sampled-parameter section: a histogram per param, a bounded sample, row groups skipped unread."""

from __future__ import annotations

import json
import re

from pipeline.format.manifest import Manifest
from tests.helpers import report_page as _page


def test_histograms_for_every_sampled_param(report_job):
    page = _page(report_job)
    names = re.findall(r'<svg class="hist"[^>]*aria-label="([^"]+)"', page)
    assert len(names) == len(set(names)) == page.count('<svg class="hist"')
    for name in (
        "random_resized_crop.width",
        "rotation.angle",
        "some_of/brightness.delta",
        "some_of/saturation.factor",
        "randaugment/magnitude",
    ):
        assert name in names, name
    assert names == sorted(names)
    assert any(n.startswith("randaugment/") and "." in n for n in names)  # a param of the op the policy ran
    assert '<svg class="rates"' in page and ">horizontal_flip</text>" in page
    written = json.loads((report_job / "manifest.json").read_text())["splits"]["train"]["counts"]["written"]
    assert f"Over all {written} records of the augmented split(s) train" in page


def test_no_errors_and_bounded_param_sample(report_job, monkeypatch):
    from pipeline.report import page as report
    from pipeline.report import params as report_params

    manifest = json.loads((report_job / "manifest.json").read_text())
    for info in manifest["splits"].values():
        for shard in info["shards"]:
            shard["errors"]["rows"] = 0
    manifest = Manifest.from_json(manifest)
    assert "No errors: every listed input became records." in report._errors(str(report_job), manifest)
    monkeypatch.setattr(report_params, "MAX_ROWS", 5)
    rows, more = report_params.read_params(str(report_job), manifest.index_tables("train"))
    assert len(rows) == 5 and more
    assert "the first 5 records" in report_params.section(rows, more, ["train"])
    assert "a sample" in report_params.section(rows, more, ["train"])


def test_params_read_only_the_parts_they_need(tmp_path, monkeypatch):
    """Empty parts and the parts after the first ``MAX_ROWS`` rows are never opened (these do not exist)."""
    from pipeline.format.manifest import IndexRow, TableInfo
    from pipeline.format.tables import write_table
    from pipeline.report import params as report_params

    row = IndexRow("k", 0, "train", "s", 0, 0, "[]", "0" * 64, "0" * 64)
    part = write_table(str(tmp_path), "index-train-00001-of-00003.parquet", [row] * 3, IndexRow)
    absent = [TableInfo(f"index-train-0000{i}-of-00003.parquet", rows, 1, "x") for i, rows in ((0, 0), (2, 4))]
    monkeypatch.setattr(report_params, "MAX_ROWS", 3)
    assert report_params.read_params(str(tmp_path), [absent[0], part, absent[1]]) == ([[], [], []], True)
    monkeypatch.setattr(report_params, "MAX_ROWS", 10)
    assert report_params.read_params(str(tmp_path), [absent[0], part]) == ([[], [], []], False)
