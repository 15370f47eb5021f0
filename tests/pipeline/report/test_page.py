"""report.html: made from a real run, listed and verified, deterministic, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.format.manifest import Manifest
from tests.conftest import DATA, PHOTOS, run

CONFIG = """ops:
  - {op: random_resized_crop, scale: [0.35, 1.0]}
  - {op: horizontal_flip, p: 0.5}
  - {op: rotation, degrees: [-15, 15], p: 0.5}
  - op: some_of
    n: [1, 2]
    ops: [{op: brightness, delta: [-0.15, 0.15]}, {op: saturation, factor: [0.7, 1.3]}]
  - {op: randaugment, num_ops: 1, magnitude: 5}
"""
BAD_NAME = "<b>notes & co.jpg"  # an error row whose key must be escaped
CHROMIUM_HELP = (
    "headless Chromium is needed to render report.html: install Debian's package "
    "(apt-get install -y --no-install-recommends chromium), or run ./run_tests.sh as root, which installs it"
)


def _job(root: Path, name: str) -> Path:
    src = root / "photos"
    if not src.exists():
        shutil.copytree(PHOTOS, src)
        shutil.copy(DATA / "truncated_half.jpg", src / "train" / "textures" / "truncated.jpg")
        shutil.copy(DATA / "not_an_image.jpg", src / "train" / "everyday" / BAD_NAME)
        (root / "ops.yaml").write_text(CONFIG)
    out = root / name
    run(src, out, config=str(root / "ops.yaml"), copies=2, num_shards=2)
    return out


@pytest.fixture(scope="session")
def report_job(tmp_path_factory) -> Path:
    """A real small run: random ops (a composite and a policy), a corrupt input and a text file named .jpg."""
    return _job(tmp_path_factory.mktemp("report"), "out")


def _page(out: Path) -> str:
    return (out / "report.html").read_text(encoding="utf-8")


def test_report_is_a_listed_side_file_and_verifies(report_job):
    import hashlib

    from pipeline.checks.verify import verify

    manifest = json.loads((report_job / "manifest.json").read_text())
    data = (report_job / "report.html").read_bytes()
    assert manifest["files"]["side"]["report.html"] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert list(manifest["files"]["side"])[-1] == "report.html"  # the last maker
    report = verify(str(report_job))
    assert report.ok, report.text(str(report_job))


def test_report_holds_counts_errors_and_config(report_job):
    page = _page(report_job)
    manifest = json.loads((report_job / "manifest.json").read_text())
    for split, info in manifest["splits"].items():
        row = re.search(rf'<tr class=""><td>{split}</td>(.*?)</tr>', page).group(1)
        cells = [int(v.replace(",", "")) for v in re.findall(r'<td class="n">([\d,]+)</td>', row)]
        c = info["counts"]
        stages = [c["failed_inputs_by_stage"][s] for s in ("listing", "read", "decode")]
        expected = [c["listed"], *stages, c["decoded"], c["copies"], c["expected_records"], c["written"]]
        size = sum(s["bytes"] for s in info["shards"])
        assert cells == expected + [c["failed_records"], info["num_shards"], size]
    errors = pq.read_table(report_job / "errors.parquet").to_pylist()
    assert {e["error_type"] for e in errors} == {"CorruptImage", "UnknownFormat"}
    for e in errors:
        assert f"<td>{html.escape(e['key'])}</td>" in page
        assert html.escape(e["message"]) in page
    assert "&lt;b&gt;notes &amp; co.jpg" in page and "<b>notes" not in page
    assert html.escape(json.dumps(manifest["config"], indent=2, sort_keys=True)) in page
    assert "mobilenet_v2 (mode tf, RGB, values in [-1, 1]), applied by the reader" in page
    assert "random_resized_crop, horizontal_flip, rotation, some_of(brightness, saturation), randaugment" in page


def test_report_is_self_contained(report_job):
    page = _page(report_job)
    assert not re.search(r"https?:", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "url(" not in page.lower()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert str(report_job) not in page  # no output path: the same run elsewhere gives the same bytes


def test_one_sheet_per_split_decoded_from_the_shards(report_job):
    from PIL import Image

    from pipeline.format.records import iter_records
    from pipeline.report.sheet import PAD, TILE, parse

    page = _page(report_job)
    sheets = re.findall(r'<h3>(\w+)</h3><div class="sheet"><img src="data:image/png;base64,([^"]+)"', page)
    assert [split for split, _ in sheets] == ["train", "validation"]
    assert page.count("<img ") == 2
    train = np.asarray(Image.open(io.BytesIO(base64.b64decode(sheets[0][1]))).convert("RGB"))
    # The first tile is the first record of the first shard, as stored (uint8), scaled 4x for display.
    rec = parse(next(iter_records(str(report_job / "train-00000-of-00002.tfrecord"))))
    pixels = np.frombuffer(rec["image"], np.uint8).reshape(32, 32, 3)
    tile = train[PAD : PAD + TILE, PAD : PAD + TILE]
    np.testing.assert_array_equal(tile, pixels.repeat(4, axis=0).repeat(4, axis=1))
    assert f"<td>{html.escape(rec['key'])}</td>" in page  # its caption, as text too


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


def test_same_run_gives_the_same_report_bytes(report_job, tmp_path):
    from pipeline.report.page import make_files

    again = _job(report_job.parent, "again")
    assert (again / "report.html").read_bytes() == (report_job / "report.html").read_bytes()
    manifest = json.loads((report_job / "manifest.json").read_text())
    manifest["files"].pop("side")  # the draft the makers see at finalize
    made = make_files(str(report_job), Manifest.from_json(manifest))["report.html"]
    assert made == (report_job / "report.html").read_bytes()


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


@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet50", "densenet121", "scale_0_1", "none", "mean_std"])
@pytest.mark.parametrize("encoding", ["float32", "float16"])
def test_float_records_are_shown_as_pixels(model, encoding):
    """A float record (the preprocessed tensor) comes back to its [0, 255] pixels for display."""
    from pipeline.format.records import build_example
    from pipeline.report.sheet import display_pixels, parse
    from transforms.encoding import encode, to_payload
    from transforms.preprocess import get_preprocessing

    mean_std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if model == "mean_std" else (None, None)
    pre = get_preprocessing(model, *mean_std)
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    payload = to_payload(encode(pixels.astype(np.float32), encoding, pre), encoding)
    record = build_example(
        image=payload, shape=(5, 7, 3), dtype=encoding, encoding=encoding, label=0, key="k", copy=0, params="[]",
        source_sha256="0",
    )  # fmt: skip
    shown = display_pixels(parse(record), pre.describe())
    assert shown.dtype == np.uint8 and shown.shape == (5, 7, 3)
    assert np.abs(shown.astype(int) - pixels).max() <= (0 if encoding == "float32" else 1)


@pytest.mark.parametrize("encoding", ["uint8", "png", "jpeg"])
def test_pixel_records_are_shown_as_stored(encoding):
    """uint8/png records are their pixels; jpeg ones close to what TensorFlow's decoder (the reader's) gives.

    The report decodes with Pillow (the driver does not import TensorFlow), whose JPEG decoder rounds its
    IDCT and colour conversion differently: a few levels on this noise image, invisible on a thumbnail.
    """
    import tensorflow as tf

    from pipeline.format.records import build_example
    from pipeline.report.sheet import display_pixels, parse
    from transforms.encoding import encode, to_payload
    from transforms.preprocess import get_preprocessing

    pre = get_preprocessing("mobilenet_v2")
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    payload = to_payload(encode(pixels.astype(np.float32), encoding, pre), encoding)
    record = build_example(
        image=payload, shape=(6, 9, 3), dtype="uint8", encoding=encoding, label=0, key="k", copy=0, params="[]",
        source_sha256="0",
    )  # fmt: skip
    shown = display_pixels(parse(record), pre.describe())
    if encoding == "jpeg":
        expected = tf.io.decode_jpeg(payload).numpy()
        diff = np.abs(shown.astype(int) - expected)
        assert shown.shape == expected.shape and diff.mean() < 3 and diff.max() <= 12
    else:
        np.testing.assert_array_equal(shown, pixels)


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if not found:
        pytest.fail(CHROMIUM_HELP)
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,2000",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


# Added to a copy of the page only (the report has no script): writes what the browser made of each image.
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth,
    height: i.naturalHeight, top: Math.round(i.getBoundingClientRect().top + window.scrollY)}));
  const out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({images, svgs: document.querySelectorAll("svg").length});
  document.body.appendChild(out);
});</script>"""


def test_report_renders_in_headless_chromium(report_job, tmp_path):
    from PIL import Image

    chromium = _chromium()
    page = _page(report_job)
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _headless(chromium, tmp_path / "profile-dom", "--dump-dom", probe_page.as_uri()).stdout
    probe = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    sheets = [Image.open(io.BytesIO(base64.b64decode(s))) for s in re.findall(r"base64,([^\"]+)", page)]
    assert [(i["complete"], i["width"], i["height"]) for i in probe["images"]] == [(True, *s.size) for s in sheets]
    assert probe["svgs"] == page.count("<svg ")

    shot = tmp_path / "report.png"
    _headless(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", (report_job / "report.html").as_uri())
    image = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert image.shape == (2000, 1200, 3)
    assert image.std() > 20, "the screenshot is blank"
    top = probe["images"][0]["top"]
    assert top + 140 < 2000, "the first contact sheet should be on the first screen"
    sheet = image[top + 8 : top + 130, 20:1100]
    assert sheet.std() > 30 and len(np.unique(sheet.reshape(-1, 3), axis=0)) > 500, "the contact sheet did not draw"
    if os.environ.get("AUGBEAM_REPORT_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["AUGBEAM_REPORT_SCREENSHOT"])


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


def test_captions_with_the_bitmap_font_keep_non_latin_keys_drawable():
    from PIL import Image, ImageDraw, ImageFont

    from pipeline.report import sheet as report_sheet
    font = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") else None
    if font is None:  # Pillow < 10.1 has no separate loader: the bitmap font is load_default() without size
        font = ImageFont.load_default()
    assert not isinstance(font, ImageFont.FreeTypeFont)
    text = report_sheet._fit("train/东京/カメラ.png", font, 120, keep_end=True)
    ImageDraw.Draw(Image.new("RGB", (200, 20))).text((0, 0), text, font=font)  # raised UnicodeEncodeError before
