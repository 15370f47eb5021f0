"""The report on detection records: tiles drawn with their boxes, masks and keypoints, captions counting objects
(and removals, where a record's params say), the page's legend; removal counts read defensively.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest

from tests.pipeline.format.detection_data import CLASSES, sample_image, sample_objects, write_detection_output

KEYS = ["a.png", "b.png", "c.png"]


@pytest.fixture(scope="module")
def detection_page(tmp_path_factory):
    from pipeline.report.page import render

    out = tmp_path_factory.mktemp("det") / "out"
    manifest = write_detection_output(out, KEYS)
    return out, render(str(out), manifest)


def _sheet(page: str) -> np.ndarray:
    from PIL import Image

    sheets = re.findall(r'<h3>train</h3><div class="sheet"><img src="data:image/png;base64,([^"]+)"', page)
    assert len(sheets) == 1
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(sheets[0]))).convert("RGB"))


def test_report_draws_each_records_targets_on_its_tile(detection_page):
    from pipeline.format.detection_records import parse_detection_example
    from pipeline.format.records import iter_records
    from pipeline.report.draw_targets import colour
    from pipeline.report.sheet import CELL_W, PAD, TILE

    out, page = detection_page
    sheet = _sheet(page)
    records = [parse_detection_example(r) for r in iter_records(str(out / "train-00000-of-00001.tfrecord"))]
    assert len(records) == 6
    drawn_boxes = 0
    for n, rec in enumerate(records):
        x = PAD + n * CELL_W
        tile = sheet[PAD : PAD + TILE, x : x + TILE]
        plain = sample_image(rec.key, rec.copy).repeat(4, axis=0).repeat(4, axis=1)  # 32 px shown 4x
        assert not np.array_equal(tile, plain)  # the semantic mask (class = copy) tints every record
        for box, cls in zip(rec.boxes * 4, rec.classes, strict=True):
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            bottom = tile[y1 - 1, x0:x1]
            # The bottom edge in the class colour, except where a later box, keypoint or name covers it.
            assert (bottom == colour(cls)).all(axis=1).mean() > 0.5, (rec.key, rec.copy, box)
            drawn_boxes += 1
    assert drawn_boxes == sum(len(sample_objects(k, c)) for k in KEYS for c in range(2))


def test_report_captions_count_objects_and_removals_and_the_page_has_a_legend(detection_page):
    from pipeline.report.draw_targets import colour

    _, page = detection_page
    counts = re.findall(r'<td class="n">(\d)</td><td>(\d) objects?, 0 removed</td>', page)
    expected = [(str(c), str(len(sample_objects(k, c)))) for k in KEYS for c in range(2)]
    assert sorted(counts) == sorted(expected)
    assert "<th>objects</th>" in page and "<th>label</th>" not in page
    assert "keypoints (filled: visible, hollow: occluded)" in page
    for n, name in enumerate(CLASSES):
        assert f'background:rgb{colour(n)}">{name}</span>' in page


@pytest.mark.parametrize(
    ("params", "removed"),
    [
        (
            [
                {"op": "flip", "applied": True, "params": {}},
                {"removed": {"outside": 1, "min_area": 2, "min_visibility": 0, "min_side": 0, "ids": [3, 4, 5]}},
            ],
            3,
        ),
        ([{"op": "flip", "applied": True, "params": {}}], None),  # a classification record: say nothing
        ([{"removed": {"outside": "many"}}], None),
        ("not json", None),
    ],
)
def test_removal_counts_are_read_from_the_records_last_params_entry(params, removed):
    from pipeline.report.sheet import objects_caption, removed_count

    text = params if isinstance(params, str) else json.dumps(params)
    assert removed_count(text) == removed
    assert objects_caption(1, removed) == ("1 object" if removed is None else f"1 object, {removed} removed")


def test_params_histograms_skip_the_removal_entry():
    from pipeline.format.detection_records import ops_params
    from pipeline.report.params import flatten

    rows = [ops_params([{"op": "rotation", "applied": True, "params": {"angle": 3.0}}, {"removed": {"outside": 1}}])]
    values, applied = flatten(rows)
    assert values == {"rotation.angle": [3.0]} and applied == {"rotation": 1}


def test_the_same_detection_output_gives_the_same_report_bytes(detection_page):
    from pipeline.format.manifest import Manifest
    from pipeline.report.page import render

    out, page = detection_page
    manifest = Manifest.from_json(json.loads((out / "manifest.json").read_text()))
    assert render(str(out), manifest) == page
