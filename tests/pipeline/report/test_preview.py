"""`augbeam preview`: the captioned grid, a bad image in one line, what ran, keys as the job's."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli import main
from tests.helpers import PHOTOS

EVERYDAY = PHOTOS / "train" / "everyday"


def test_preview_writes_a_captioned_grid(tmp_path, capsys):
    from PIL import Image

    from pipeline.report.preview import CAPTION_LINES, LINE_HEIGHT

    out = tmp_path / "sheet" / "grid.png"
    images = [str(EVERYDAY / "rocket.jpg"), str(EVERYDAY / "horse.png")]
    assert (
        main(["preview", *images, "--copies", "3", "--tile", "64", "--config", "randaugment", "--out", str(out)]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    cell_h = 64 + CAPTION_LINES * LINE_HEIGHT + 6
    assert sheet.shape == (2 * cell_h + 6, 4 * (64 + 6) + 6, 3)
    tiles = [sheet[6 : 6 + 64, 6 + j * 70 : 6 + j * 70 + 64] for j in range(4)]
    assert len({t.tobytes() for t in tiles}) == 4  # the input and three different copies
    assert not list(out.parent.glob(".*.tmp"))


def test_preview_bad_image_is_one_line(tmp_path, capsys):
    from tests.helpers import DATA

    code = main(["preview", str(DATA / "not_an_image.jpg"), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "not_an_image.jpg" in err and "not a usable image" in err


def test_preview_describes_what_ran():
    from pipeline.report.preview import describe

    sampled = [
        {"op": "rotation", "applied": True, "params": {"angle": -7.25}},
        {"op": "horizontal_flip", "applied": False, "params": {}},
        {
            "op": "randaugment",
            "applied": True,
            "params": {"layers": [{"op": "shear", "kind": "shear_x", "applied": True, "params": {"x": 5.0, "y": 0.0}}]},
        },
    ]
    assert describe(sampled) == ["rotation -7.25", "randaugment: shear_x 5"]


def test_preview_keys_are_the_jobs_keys_with_root():
    from pipeline.job.listing import list_inputs
    from pipeline.report.preview import key_for

    job_keys = {item.key for item in list_inputs(str(PHOTOS)).items}
    path = str(EVERYDAY / "rocket.jpg")
    assert key_for(path, str(PHOTOS)) in job_keys
    assert key_for(path, None) == "rocket.jpg"
    with pytest.raises(Exception, match="not inside --root"):
        key_for(path, str(PHOTOS / "validation"))
