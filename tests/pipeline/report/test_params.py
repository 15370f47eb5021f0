"""The report's sampled-parameter section: a histogram per param, a bounded sample, row groups skipped unread."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

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
    manifest["files"]["errors"]["rows"] = 0
    manifest = Manifest.from_json(manifest)
    assert "No errors: every listed input became records." in report._errors(str(report_job), manifest)
    monkeypatch.setattr(report_params, "MAX_ROWS", 5)
    with open(report_job / "index.parquet", "rb") as handle:
        rows, more = report_params.read_params(handle, {"train"})
    assert len(rows) == 5 and more
    assert "the first 5 records" in report_params.section(rows, more, ["train"])
    assert "a sample" in report_params.section(rows, more, ["train"])


def test_params_skip_whole_row_groups_before_the_augmented_split(tmp_path):
    """Rows of splits sorted before the augmented one are skipped by row group, never parsed."""
    import pyarrow as pa

    from pipeline.report import params as report_params

    # Rows that would fail to parse sit in the first two row groups: read, they would raise.
    rows = [{"split": "train", "params": "not json"}] * 20 + [{"split": "train", "params": "[]"}] * 3
    path = tmp_path / "index.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10)
    with open(path, "rb") as handle:
        got, more = report_params.read_params(handle, {"train"}, skip=20)
    assert got == [[], [], []] and not more
    with open(path, "rb") as handle, pytest.raises(json.JSONDecodeError):
        report_params.read_params(handle, {"train"}, skip=0)
