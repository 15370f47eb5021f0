"""report.html: made from a real run, listed and verified, holding counts, errors and config, self-contained,
deterministic, and rendered by headless Chromium.
"""

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
import pytest

from pipeline.format.manifest import Manifest
from pipeline.format.reader import iter_errors
from tests.helpers import report_page as _page
from tests.helpers import report_run as _job

CHROMIUM_HELP = (
    "headless Chromium is needed to render report.html: install Debian's package "
    "(apt-get install -y --no-install-recommends chromium), or run ./run_tests.sh as root, which installs it"
)


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
    errors = list(iter_errors(str(report_job)))
    assert {e.error_type for e in errors} == {"CorruptImage", "UnknownFormat"}
    for e in errors:
        assert f"<td>{html.escape(e.key)}</td>" in page
        assert html.escape(e.message) in page
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


def test_same_run_gives_the_same_report_bytes(report_job, tmp_path):
    from pipeline.report.page import make_files

    again = _job(report_job.parent, "again")
    assert (again / "report.html").read_bytes() == (report_job / "report.html").read_bytes()
    manifest = json.loads((report_job / "manifest.json").read_text())
    manifest["files"].pop("side")  # the draft the makers see at finalize
    made = make_files(str(report_job), Manifest.from_json(manifest))["report.html"]
    assert made == (report_job / "report.html").read_bytes()


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
