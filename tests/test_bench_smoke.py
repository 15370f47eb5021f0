"""A tiny run of the benchmark so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT


def test_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "job_throughput.py"),
            "--n",
            "2",
            "--repeats",
            "1",
            "--shards",
            "2",
            "--json",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert [row["workers"] for row in result["rows"]] == [1, 2]
    assert all(len(v) == 1 for v in result["raw_seconds"].values())


def test_render_batching_benchmark_runs(tmp_path):
    out = tmp_path / "batching.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "render_batching.py"), "--n", "4", "--repeats", "1", "--batch", "2"]
        + ["--size", "40", "50", "--json", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = json.loads(out.read_text())["results"]
    assert set(result) == {"standard", "resize_first"}
    assert all(r["images_per_s_one"] > 0 and r["images_per_s_batch2"] > 0 for r in result.values())


VARIANTS = (
    "codec_floor",
    "pillow",
    "tf_data",
    "project_1w",
    "project_1w_1t",
    "project_1w_1t_pair",
    "project_2w",
)


def test_compare_benchmark_runs(tmp_path):
    """Every variant runs on a tiny corpus and reports positive rates (untimed: nothing about speed is asserted)."""
    out = tmp_path / "compare.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--n", "3", "--repeats", "1", "--encodings", "uint8"]
        + ["--json", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    rows = {row["variant"]: row for row in result["results"]["uint8"]["rows"]}
    assert set(rows) == {*VARIANTS}
    assert all(r["images_per_s_4N_whole_run"] > 0 and r["cpu_s_per_image_4N_whole_run"] > 0 for r in rows.values())
    assert all(r["images_per_s_steady"] is None or r["images_per_s_steady"] > 0 for r in rows.values())
    assert all(r["peak_rss_mib_N"] > 0 and r["peak_rss_mib_4N"] > 0 for r in rows.values())
    assert rows["project_1w_1t_pair"]["jobs_per_run"] == 2 and rows["project_2w"]["jobs_per_run"] == 1
    pair = rows["project_1w_1t_pair"]
    # the pair's rates count both jobs' images: 2 x 4N = 24 images over the run's wall time, CPU summed
    assert abs(pair["images_per_s_4N_whole_run"] - 24 / pair["median_s_4N"]) < 0.01
    assert (
        abs(
            pair["cpu_s_per_image_4N_whole_run"] * 24
            - result["raw_runs"]["uint8"]["project_1w_1t_pair"]["4N"][0]["cpu_s"]
        )
        < 0.01
    )
    host = result["host_check"]
    assert len(host["runs"]) == 1 and host["alone_cpu_s_median"] > 0 and host["two_at_once_cpu_s_median"] > 0
    assert len(host["runs"][0]["two_at_once_cpu_s"]) == 2
    check = result["check"]["uint8"]
    assert check["pillow"]["same_params"] and check["tf_data"]["same_params"]
    assert check["project_2w_same_shards_as_1w"]
    assert result["environment"]["runners"]["project_1w_1t"]["tf_threads_per_worker"] == 1
    ran = {variant: {v["runner"] for v in info["ran"]} for variant, info in result["environment"]["runners"].items()}
    assert ran["project_2w"] == {"FnApiRunner"}  # batch DirectRunner jobs skip the Prism attempt
    assert {v["runner"] for info in result["environment"]["runners"].values() for v in info["ran"]}
