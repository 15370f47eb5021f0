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


# The job's variants on the imagenet-size corpus; the baselines and the default command on both corpora (each
# variant once per corpus would double CI's time for the same code paths).
JOB_VARIANTS = ("codec_floor", "project_1w", "project_1w_1t", "project_1w_1t_pair", "project_2w")
BASELINE_VARIANTS = ("pillow", "tf_data", "tf_data_crop", "project_default")


def _compare(tmp_path, *args):
    out = tmp_path / "compare.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), "--repeats", "1", "--encodings", "uint8"]
        + [*args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def _rows(result, corpus):
    return {row["variant"]: row for row in result["corpora"][corpus]["results"]["uint8"]["rows"]}


def _check_rows(rows):
    assert all(r["images_per_s_4N_whole_run"] > 0 and r["cpu_s_per_image_4N_whole_run"] > 0 for r in rows.values())
    assert all(r["images_per_s_steady"] is None or r["images_per_s_steady"] > 0 for r in rows.values())
    assert all(r["peak_rss_mib_N"] > 0 and r["peak_rss_mib_4N"] > 0 for r in rows.values())
    assert all(r["median_cpu_s_4N"] > 0 and r["cores_busy_4N"] > 0 for r in rows.values())


def test_compare_benchmark_runs_the_jobs(tmp_path):
    """The job's variants on a tiny imagenet-size corpus report positive rates (nothing about speed is asserted)."""
    result, _ = _compare(tmp_path, "--corpus", "imagenet", "--n", "3", "--variants", ",".join(JOB_VARIANTS))
    assert set(result["corpora"]) == {"imagenet"}
    rows = _rows(result, "imagenet")
    assert set(rows) == {*JOB_VARIANTS}
    _check_rows(rows)
    assert rows["project_1w_1t_pair"]["jobs_per_run"] == 2 and rows["project_2w"]["jobs_per_run"] == 1
    pair = rows["project_1w_1t_pair"]
    # the pair's rates count both jobs' images: 2 x 4N = 24 images over the run's wall time, CPU summed
    assert abs(pair["images_per_s_4N_whole_run"] - 24 / pair["median_s_4N"]) < 0.01
    raw = result["corpora"]["imagenet"]["raw_runs"]["uint8"]["project_1w_1t_pair"]["4N"][0]["cpu_s"]
    assert abs(pair["cpu_s_per_image_4N_whole_run"] * 24 - raw) < 0.01
    host = result["corpora"]["imagenet"]["host_check"]
    assert len(host["runs"]) == 1 and host["alone_cpu_s_median"] > 0 and host["two_at_once_cpu_s_median"] > 0
    assert len(host["runs"][0]["two_at_once_cpu_s"]) == 2
    check = result["corpora"]["imagenet"]["check"]["uint8"]
    assert check["reference"] == "project_1w" and check["project_2w_same_shards_as_1w"]
    runners = result["environment"]["runners"]
    assert set(runners) == {"project_1w", "project_1w_1t", "project_2w"}
    assert runners["project_1w_1t"]["tf_threads_per_worker"] == 1
    ran = {variant: {v["runner"] for v in info["ran"]} for variant, info in runners.items()}
    # batch DirectRunner jobs skip the Prism attempt: augbeam's FnApiRunner, whose worker processes start quietly
    assert ran["project_2w"] == {"QuietWorkersFnApiRunner"}


def test_compare_benchmark_runs_both_corpora(tmp_path):
    """``--corpus both`` (the default): the baselines and the default command on tiny imagenet-size and camera
    corpora, the baselines' records the job's (same params; pixels within a level, so EXIF orientation too)."""
    result, stdout = _compare(
        tmp_path,
        "--corpus",
        "both",
        "--n",
        "2",
        "--camera-n",
        "2",
        "--camera-scale",
        "0.03",
        "--variants",
        ",".join(BASELINE_VARIANTS),
    )
    assert list(result["corpora"]) == ["imagenet", "camera"]
    assert result["corpora"]["camera"]["camera_scale"] == 0.03 and result["corpora"]["camera"]["n_4n"] == 8
    assert isinstance(result["baselines_crop_resizes"]["value"], bool) and result["baselines_crop_resizes"]["why"]
    assert set(result["environment"]["runners"]) == {"project_default"}
    assert result["environment"]["runners"]["project_default"]["beam_args"] == []
    for corpus in ("imagenet", "camera"):
        rows = _rows(result, corpus)
        assert set(rows) == {*BASELINE_VARIANTS}
        _check_rows(rows)
        ratios = result["corpora"][corpus]["results"]["uint8"]["ratios"]
        assert ratios["project_default/tf_data"]["whole_run_4N"] > 0
        assert ratios["project_default/tf_data_crop"]["whole_run_4N"] > 0
        check = result["corpora"][corpus]["check"]["uint8"]
        assert check["reference"] == "project_default" and check["images"] == 2
        for variant in ("pillow", "tf_data", "tf_data_crop"):
            c = check[variant]
            assert c["same_params"] and c["same_labels"] and c["same_source_sha256"], (corpus, variant)
        for variant in ("tf_data", "tf_data_crop"):  # a crop turned the wrong way would be tens of levels off
            assert check[variant]["mean_abs_diff_levels"] < 0.5, (corpus, variant, check[variant])
    assert "corpus=camera, encoding=uint8" in stdout


# ---------------------------------------------------------------------------------------------- camera corpus


def _bench_module(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_camera_corpus_is_seeded_and_laid_out_like_a_camera(tmp_path):
    """Two makes give the same bytes; per 12 images: orientations 6, 6, 8, 3, one PNG; JPEG 4:2:0 with EXIF."""
    from PIL import Image, JpegImagePlugin

    camera = _bench_module("make_camera_corpus")
    first = camera.make_camera_corpus(12, tmp_path / "a", seed=5, scale=0.02)
    again = camera.make_camera_corpus(12, tmp_path / "b", seed=5, scale=0.02)
    other = camera.make_camera_corpus(2, tmp_path / "c", seed=6, scale=0.02)
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in again]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in other] != [p.read_bytes() for p in first[:2]]
    assert sorted(p.parent.name for p in first) == ["class0"] * 4 + ["class1"] * 4 + ["class2"] * 4
    orientations, suffixes = [], []
    for i, path in enumerate(first):
        suffixes.append(path.suffix)
        with Image.open(path) as image:
            shown = camera.CAMERA_SIZES[i % 4]
            orientation = image.getexif().get(0x0112) if image.format == "JPEG" else None
            orientations.append(orientation)
            stored = (image.size[1], image.size[0]) if orientation in (6, 8) else image.size
            if orientation in (6, 8) and shown[0] > shown[1]:
                shown = shown[::-1]  # portrait shot, landscape sensor
            assert stored == (round(shown[0] * 0.02), round(shown[1] * 0.02))
            if image.format == "JPEG":
                assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0
                assert image.getexif().get(0x010F) == "augbeam"
    assert orientations == [1, 6, 1, 8, 1, 6, 1, 1, 3, 1, None, 1]
    assert suffixes.count(".png") == 1 and suffixes[10] == ".png"


def test_baselines_turn_the_crop_upright_as_exif_transpose_does(tmp_path):
    """For every EXIF orientation, the crop of the stored pixels turned upright is the crop of the upright image."""
    import numpy as np
    from PIL import Image, ImageOps

    compare = _bench_module("compare")
    rng = np.random.default_rng(0)
    stored = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        stored.save(path, quality=100, exif=exif.tobytes())
        height, width, read, jpeg = compare.read_header(str(path))
        assert (height, width, read, jpeg) == (30, 40, orientation, True)
        image = stored.copy()
        image.getexif()[0x0112] = orientation
        upright = np.asarray(ImageOps.exif_transpose(image))
        assert upright.shape == compare.upright_shape(height, width, orientation)
        box = (3, 5, 11, 17)  # y, x, h, w in the upright picture
        y, x, h, w = compare.stored_box(box, height, width, orientation)
        crop = np.asarray(stored)[y : y + h, x : x + w]
        rows, cols, transpose = compare.ORIENT_STEPS[orientation]
        crop = crop[::-1] if rows else crop
        crop = crop[:, ::-1] if cols else crop
        crop = crop.transpose(1, 0, 2) if transpose else crop
        np.testing.assert_array_equal(crop, upright[3 : 3 + 11, 5 : 5 + 17], err_msg=f"orientation {orientation}")
    from transforms.formats import ORIENT_STEPS

    assert tuple(compare.ORIENT_STEPS[o] for o in range(1, 9)) == ORIENT_STEPS  # the job's convention


def test_baselines_follow_the_jobs_crop_semantics(monkeypatch, tmp_path):
    """The preset's crop resizes to the output size: the baselines resize right after it; ``resize: false``
    keeps the crop's pixels, and the baselines resize last."""
    compare = _bench_module("compare")
    value, why = compare.crop_resizes_detect()
    assert value is True and "crops and resizes to (224, 224)" in why
    config = tmp_path / "keep.yaml"
    config.write_text("ops:\n  - {op: random_resized_crop, resize: false}\n")
    monkeypatch.setattr(compare, "CONFIG", str(config))
    value, why = compare.crop_resizes_detect()
    assert value is False and "keeps the crop's size" in why


# ---------------------------------------------------------------------------------------------- bench/scale.py


def _scale_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_scale_inputs_are_hard_links_to_distinct_tiny_images(tmp_path, monkeypatch):
    """16 distinct 16x16 images, the same bytes for the same seed; N inputs in 10 class folders, grown in place."""
    import errno
    import hashlib
    import os

    from PIL import Image

    scale = _scale_module()
    sources = scale.make_sources(tmp_path / "sources", seed=3)
    again = scale.make_sources(tmp_path / "again", seed=3)
    assert len(sources) == scale.SOURCES == 16
    assert [p.read_bytes() for p in sources] == [p.read_bytes() for p in again]
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}) == 16
    assert {p.suffix for p in sources} == {".jpg", ".png"}
    for p in sources:
        with Image.open(p) as image:
            assert image.size == (16, 16)

    corpus = scale.Corpus(tmp_path / "in" / scale.CORPUS_PATH, sources)
    corpus.grow_to(37)
    corpus.grow_to(123)
    files = sorted(p for p in corpus.root.rglob("*") if p.is_file())
    assert len(files) == 123
    assert sorted(p.name for p in corpus.root.iterdir()) == [f"class{c:02d}" for c in range(10)]
    inodes = {os.stat(p).st_ino for p in sources}
    assert all(os.stat(p).st_ino in inodes for p in files)  # hard links, no copies
    assert os.path.exists(corpus.path(122)) and not os.path.exists(corpus.path(123))

    listing = tmp_path / "listing.csv"
    corpus.write_listing(listing)
    lines = listing.read_text().splitlines()
    assert lines[0] == "path,label" and len(lines) == 124
    assert lines[1] == f"{corpus.path(0)},class00" and sorted(r.split(",")[0] for r in lines[1:]) == list(
        map(str, files)
    )

    # a file holding as many links as the filesystem allows (EMLINK): the rest link to a fresh copy of it
    real_link, calls = os.link, []

    def link(src, dst):
        calls.append(src)
        if str(src) == str(sources[0]):
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(scale.os, "link", link)
    corpus.grow_to(160)
    assert len([p for p in corpus.root.rglob("*") if p.is_file()]) == 160
    new = [p for p in corpus.root.rglob("*") if p.is_file() and os.stat(p).st_ino not in inodes]
    assert len(new) == 2 and all(p.read_bytes() == sources[0].read_bytes() for p in new)  # inputs 128 and 144


def test_scale_samples_the_driver_alone_and_its_children_apart(tmp_path):
    """A small parent whose child holds 300 MB: the parent's sampled peak stays small, the children's does not."""
    import sys

    scale = _scale_module()
    hold = "import time; b = b'x' * (300 << 20); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {hold!r}], check=True)"
    result = scale.measure([sys.executable, "-c", parent], tmp_path / "a.log", scale.child_env(), interval=0.1)
    assert result["rc"] == 0 and result["samples"] > 3 and result["children_seen"] == 1
    assert result["sampled_peak_rss_mb"] < 100 and result["sampled_children_peak_rss_mb"] > 250
    assert result["maxrss_mb"] > 250  # wait4: the largest of the process and its reaped children
    alone = scale.measure([sys.executable, "-c", hold], tmp_path / "b.log", scale.child_env(), interval=0.1)
    assert alone["sampled_peak_rss_mb"] > 250 and alone["sampled_children_peak_rss_mb"] == 0
    failed = scale.measure([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "c.log", scale.child_env())
    assert failed["rc"] == 3


def test_scale_phase_log_growth_targets_and_table(tmp_path):
    """Growth per 10x, the targets and the markdown from made-up rows; a phase log missing a phase is refused."""
    import pytest

    scale = _scale_module()
    log = tmp_path / "phases.jsonl"
    lines = [{"phase": p, "seconds": 0.5, "peak_rss_mb": 100.0 + i} for i, p in enumerate(scale.PHASES)]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert scale.read_phase_log(log)["finalize"] == {"seconds": 0.5, "peak_rss_mb": 104.0}
    log.write_text("".join(json.dumps(line) + "\n" for line in lines if line["phase"] != "graph"))
    with pytest.raises(RuntimeError, match="expected the phases"):
        scale.read_phase_log(log)

    def row(n, driver_mb, proto, verify_mb):
        phases = {p: {"seconds": n / 10_000, "peak_rss_mb": driver_mb} for p in scale.PHASES}
        return {
            "n": n,
            "input": "folder",
            "proto_bytes": proto,
            "phases": phases,
            "driver_peak_rss_mb": driver_mb,
            "job": {"sampled_peak_rss_mb": driver_mb, "sampled_children_peak_rss_mb": 900.0, "wall_s": n / 1000},
            "verify": {"wall_s": 2.0, "maxrss_mb": verify_mb},
        }

    rows = [row(1_000_000, 260.0, 30_000, 400.0), row(10_000, 150.0, 25_000, 400.0), row(100_000, 200.0, 26_000, 400.0)]
    growth = scale.growth(rows)
    assert [(g["from_n"], g["to_n"]) for g in growth] == [(10_000, 100_000), (100_000, 1_000_000)]
    assert growth[0]["per_10x"]["run_s"] == 10.0 and growth[1]["per_10x"]["driver_peak_rss_mb"] == 1.3
    assert growth[0]["proto_bytes_added"] == 1_000 and growth[1]["per_10x"]["verify_peak_rss_mb"] == 1.0
    assert scale.per_10x(100.0, 400.0, 100, 10_000) == 2.0  # x4 over two decades
    targets = {t["target"]: t for t in scale.targets(rows)}
    assert targets["proto_bytes_growth"]["value"] == 5_000 and targets["proto_bytes_growth"]["met"]
    assert targets["driver_peak_rss_ratio"]["sizes"] == [100_000, 1_000_000] and targets["driver_peak_rss_ratio"]["met"]
    assert targets["verify_rss_per_10x"]["value"] == 1.0 and targets["verify_rss_per_10x"]["met"]
    rows[0]["proto_bytes"], rows[0]["driver_peak_rss_mb"] = 40_000, 300.0
    assert not any(t["met"] for t in scale.targets(rows) if t["target"] != "verify_rss_per_10x")
    table = scale.markdown({"rows": rows, "growth": growth, "targets": scale.targets(rows)})
    assert "| 1,000,000 | folder | 100.00 s / 260 |" in table
    assert "| 100k → 1M | folder |" in table and "MISSED" in table


def test_scale_benchmark_runs(tmp_path):
    """bench/scale.py end to end at N = 50 and 500 from a folder (no timing is asserted; ``--listing`` adds the same
    sizes from a CSV listing, left out here for CI's time: the listing on workers is tested in test_list_stage)."""
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--sizes", "50", "500"]
        + ["--work", str(tmp_path / "work"), "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    phases = ["check", "listing", "graph", "run", "finalize"]
    assert sorted((r["n"], r["input"]) for r in result["rows"]) == [(50, "folder"), (500, "folder")]
    for r in result["rows"]:
        assert list(r["phases"]) == phases
        assert all(p["seconds"] >= 0 and p["peak_rss_mb"] > 0 for p in r["phases"].values())
        peaks = [r["phases"][p]["peak_rss_mb"] for p in phases]
        assert peaks == sorted(peaks)  # ru_maxrss only grows
        assert r["driver_peak_rss_mb"] == peaks[-1] and r["proto_bytes"] > 0
        assert r["job"]["rc"] == 0 and r["job"]["sampled_peak_rss_mb"] > 0 and r["job"]["wall_s"] > 0
        assert r["job"]["children_seen"] >= 2 and r["job"]["sampled_children_peak_rss_mb"] > 0  # 2 worker processes
        assert r["verify"]["rc"] == 0 and r["verify"]["maxrss_mb"] > 0
        assert r["inputs_reported"] in (None, r["n"])
    assert [(g["input"], g["from_n"], g["to_n"]) for g in result["growth"]] == [("folder", 50, 500)]
    assert len(result["targets"]) == 3 and all(isinstance(t["met"], bool) for t in result["targets"])
    assert "| 500 | folder |" in result["table_markdown"] and "| 50 → 500 | folder |" in result["table_markdown"]
    assert not (tmp_path / "work" / "out").exists()  # removed after each size


def test_detection_record_benchmark_runs(tmp_path):
    """The writers' comparison runs (it asserts itself that the hand writer gives protobuf's bytes)."""
    out = tmp_path / "detection.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "detection_record.py"), "--objects", "3", "--size", "16"]
        + ["--repeats", "1", "--json", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["float32"]["record_bytes"] > 16 * 16 * 12 and result["jpeg"]["hand_writer_ms"] > 0


def test_profile_shard_runs(tmp_path):
    """bench/profile_shard.py on a few sample photos: every record written, the parts found in the profile."""
    out = tmp_path / "profile.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "profile_shard.py"), "--corpus", str(ROOT / "examples" / "photos")]
        + ["--n", "4", "--warm", "2", "--encoding", "uint8", "--json", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["records"] == result["written"] == 4
    parts = result["parts_ms_per_record"]
    assert parts["render call (TF, decode inside)"] > 0 and parts["record sha256 (record_sha256)"] > 0


# ---------------------------------------------------------------------------------------------- timeline


def test_timeline_splits_a_run_into_phases():
    """Start-up until a worker works, rendering until the last one stops, the tail between the workers' ends."""
    timeline = _bench_module("timeline")
    track = timeline.Track
    tracks = {
        1: track("driver", [(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (9.0, 1.0), (10.0, 1.5)]),
        2: track("server", [(0.0, 0.0), (3.0, 2.9), (10.0, 2.9)]),
        3: track("worker", [(3.0, 0.0), (4.0, 1.0), (7.0, 4.0), (8.0, 4.05), (10.0, 4.1)]),  # idles after 7 s
        4: track("worker", [(3.0, 0.0), (4.0, 1.0), (9.0, 6.0), (10.0, 6.0)]),
        5: track("other", [(3.0, 0.0), (10.0, 0.0)]),
    }
    out = timeline.phases(10.0, tracks)
    assert out["workers"] == 2
    assert (out["startup_s"], out["rendering_s"], out["tail_s"], out["finalize_s"]) == (3.0, 6.0, 2.0, 1.0)
    assert out["cores_busy_startup"] == 1.3  # driver 1.0 + server 2.9 CPU-s over 3 s
    assert out["cores_busy_rendering"] == round((4.075 + 6.0) / 6.0, 2)
    assert out["cores_busy_whole_run"] == 1.45
    assert out["cpu_s_by_role"] == {"driver": 1.5, "server": 2.9, "worker": 10.1, "other": 0.0}
    assert out["worker_cpu_s"] == [4.1, 6.0]
    assert timeline.phases(2.0, {1: track("driver", [(0.0, 0.0), (2.0, 1.9)])}) == {"wall_s": 2.0, "workers": 0}


def test_timeline_runs_a_command(tmp_path):
    out = tmp_path / "timeline.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "timeline.py"), "--json", str(out), "--", sys.executable, "-c", "pass"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["runs"][0]["workers"] == 0 and result["runs"][0]["wall_s"] > 0
