"""`augbeam preview`: the captioned grid, a bad image in one line, what ran, keys as the job's."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli import main
from tests.helpers import DATA, PHOTOS

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


ANNOTATED = DATA / "annotated"
# The COCO file's classes (sorted by category id) and the images' objects.
COCO_CLASSES = ("cat", "cup", "eye", "helmet", "nose", "person", "saucer", "shuttle", "spoon")


def _tiles(path, tile: int, rows: int, cols: int) -> list[list[np.ndarray]]:
    from PIL import Image

    from pipeline.report.preview import CAPTION_LINES, LINE_HEIGHT

    sheet = np.asarray(Image.open(path).convert("RGB"))
    cell_h = tile + CAPTION_LINES * LINE_HEIGHT + 6
    return [
        [
            sheet[6 + i * cell_h : 6 + i * cell_h + tile, 6 + j * (tile + 6) : 6 + j * (tile + 6) + tile]
            for j in range(cols)
        ]
        for i in range(rows)
    ]


def _count(tile: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((tile == np.array(rgb)).all(axis=2).sum())


def test_preview_with_annotations_draws_the_boxes_on_every_tile(tmp_path, capsys):
    """Chelsea's cat, eyes and nose (COCO) drawn on the input and on each copy; without --annotations, none."""
    from pipeline.report.draw_targets import colour

    image = str(ANNOTATED / "images" / "chelsea.jpg")
    common = [image, "--root", str(ANNOTATED / "images"), "--copies", "2", "--tile", "96", "--seed", "3"]
    drawn, plain = tmp_path / "drawn.png", tmp_path / "plain.png"
    assert main(["preview", *common, "--annotations", str(ANNOTATED / "coco.json"), "--out", str(drawn)]) == 0
    assert main(["preview", *common, "--out", str(plain)]) == 0
    assert capsys.readouterr().err == ""
    eye, cat = colour(COCO_CLASSES.index("eye")), colour(COCO_CLASSES.index("cat"))
    for with_boxes, without in zip(_tiles(drawn, 96, 1, 3)[0], _tiles(plain, 96, 1, 3)[0], strict=True):
        # Two eye boxes of at least 4x4 px after any crop, and the cat's box (its name's patch at least).
        assert _count(with_boxes, eye) >= 24 and _count(with_boxes, cat) >= 40
        assert _count(without, eye) < 3 and _count(without, cat) < 3
        assert (with_boxes != without).any(axis=2).mean() < 0.5  # drawn on the same picture


def test_preview_boxes_are_the_jobs_carried_boxes(tmp_path):
    """The copy's tile shows the boxes ``carry_objects`` gives for the sampled params at the tile size, ``pad``."""
    from pipeline.annotations.lookup import AnnotationLookup
    from pipeline.report.draw_targets import TileTargets, draw_targets
    from pipeline.report.preview import ImageTargets, PreviewTargets, make_sheet
    from transforms.config import load_ops

    ops = load_ops("standard", (64, 64))
    lookup = AnnotationLookup.read(str(ANNOTATED / "coco.json"), str(ANNOTATED / "images"), ["coffee.jpg"])
    mask = np.zeros((160, 240), np.uint8)  # a semantic mask carried too: left half class 1, rest ignored
    mask[:, :120], mask[:, 120:] = 1, 255

    def targets_for(key, height, width):
        return ImageTargets(lookup.objects(key, height, width), mask)

    targets = PreviewTargets(lookup.targets.classes, lookup.targets.keypoints, targets_for)
    image = str(ANNOTATED / "images" / "coffee.jpg")
    drawn = make_sheet([image], ops, 1, 5, 64, root=str(ANNOTATED / "images"), targets=targets)
    plain = make_sheet([image], ops, 1, 5, 64, root=str(ANNOTATED / "images"))
    from transforms.augment import Augmenter
    from transforms.targets.carry import carry_objects, carry_semantic_mask
    from transforms.targets.types import TargetRules

    objects = lookup.objects("coffee.jpg", 160, 240)
    sampled = Augmenter(ops, 5).sample("coffee.jpg", 0, (160, 240, 3))
    carried, removed = carry_objects(objects, ops, sampled, (160, 240, 3), (64, 64), "pad", TargetRules())
    semantic = carry_semantic_mask(mask, ops, sampled, (160, 240, 3), (64, 64), "pad")
    copy = plain.pixels[6 : 6 + 64, 6 + 70 : 6 + 70 + 64]
    expected = draw_targets(copy, TileTargets.from_objects(carried, semantic), lookup.targets.classes)
    assert np.array_equal(drawn.pixels[6 : 6 + 64, 6 + 70 : 6 + 70 + 64], expected)
    assert drawn.captions[0][1][0].startswith(f"copy 0 | {len(carried)} object")
    assert drawn.captions[0][0][1] == "input | 3 objects"


def test_preview_images_without_or_with_a_refused_annotation_are_shown_and_said(tmp_path, capsys):
    """An image the source does not list: no targets, 'no annotation'; one it refuses: one line on stderr."""
    import json
    import shutil

    root = tmp_path / "images"
    root.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(ANNOTATED / "images" / name, root / name)
    shutil.copy(EVERYDAY / "rocket.jpg", root / "rocket.jpg")
    coco = json.loads((ANNOTATED / "coco.json").read_text())
    for ann in coco["annotations"]:
        if ann["image_id"] == 102:  # coffee.jpg: a box far outside its 240x160 image
            ann["bbox"] = [500, 7, 98, 116]
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    out = tmp_path / "p.png"
    images = [str(root / n) for n in ("chelsea.jpg", "coffee.jpg", "rocket.jpg")]
    args = ["preview", *images, "--root", str(root), "--annotations", str(tmp_path / "coco.json"), "--copies", "1"]
    assert main([*args, "--tile", "64", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"augbeam: preview: {images[1]}: coffee.jpg: object 0")
    assert "outside the 240x160 image" in err[0] and "fix the annotation" in err[0]

    from pipeline.cli import _preview_targets, build_parser
    from pipeline.report.preview import make_sheet

    parsed = build_parser().parse_args([*args, "--out", str(out)])
    sheet = make_sheet(images, (), 1, 0, 32, root=str(root), targets=_preview_targets(parsed))
    assert [row[0][1] for row in sheet.captions] == [
        "input | 4 objects",
        "input | annotation refused: BadAnnotation",
        "input | no annotation",
    ]
    assert [row[1][0] for row in sheet.captions] == ["copy 0 | 4 objects", "copy 0", "copy 0"]
    assert len(sheet.notes) == 1 and "coffee.jpg: object 0" in sheet.notes[0]


def test_preview_annotations_errors_are_one_line(tmp_path, capsys):
    image = str(ANNOTATED / "images" / "chelsea.jpg")
    cases = [
        (["--annotations", str(ANNOTATED / "coco.json")], "--annotations needs --root"),
        (["--root", str(ANNOTATED / "images"), "--annotations", str(tmp_path / "none.json")], "does not exist"),
    ]
    for extra, said in cases:
        assert main(["preview", image, *extra, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err
    assert not (tmp_path / "x.png").exists()


def test_a_copy_caption_counts_the_removals_by_reason():
    from pipeline.report.preview import _objects_caption
    from transforms.targets.types import Removed

    assert (
        _objects_caption(2, Removed(outside=1, min_side=2, ids=(0, 3, 4)))
        == "2 objects, 3 removed (1 outside, 2 min_side)"
    )
    assert _objects_caption(1, Removed()) == "1 object"
    assert _objects_caption(0, None) == "0 objects"
