"""End to end on real photos: three hand-annotated sample photos, written as COCO, VOC and YOLO, read alike.

The photos are decoded (Pillow) and each reader's annotation is turned into
``Objects`` at the decoded size, as the worker will: the boxes agree (VOC
within its whole-pixel rounding), the keypoints and flip pairs of COCO and
YOLO-pose agree, and the cup's polygon mask is the same from COCO and YOLO-seg.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.annotations.coco import read_coco
from pipeline.annotations.objects import to_objects
from pipeline.annotations.source import ImageAnnotation
from pipeline.annotations.voc import read_voc
from pipeline.annotations.yolo import read_yolo
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "annotated"
IMAGES = str(DATA / "images")
TRUTH = json.loads((DATA / "truth.json").read_text(encoding="utf-8"))


def _decoded(rows) -> dict:
    """key -> Objects at the photo's decoded size; every row must be an annotation (no error rows)."""
    out = {}
    for row in rows:
        assert isinstance(row, ImageAnnotation), row
        with Image.open(DATA / "images" / row.file) as image:
            pixels = np.asarray(image.convert("RGB"))
        objects = to_objects(row, pixels.shape[0], pixels.shape[1])
        assert not hasattr(objects, "error_type"), objects
        out[row.file] = objects
    return out


@pytest.fixture(scope="module")
def read():
    coco_targets, coco_rows = read_coco(str(DATA / "coco.json"), IMAGES)
    voc_targets, voc_rows = read_voc(str(DATA / "voc"), IMAGES)
    yolo_targets, yolo_rows = read_yolo(str(DATA / "yolo" / "labels"), IMAGES)
    seg_targets, seg_rows = read_yolo(str(DATA / "yolo_seg" / "labels"), IMAGES)
    targets = {"coco": coco_targets, "voc": voc_targets, "yolo": yolo_targets, "seg": seg_targets}
    rows = {"coco": coco_rows, "voc": voc_rows, "yolo": yolo_rows, "seg": seg_rows}
    return targets, {name: _decoded(r) for name, r in rows.items()}


def test_the_three_formats_give_the_hand_made_boxes(read):
    targets, objects = read
    assert {t.classes for t in targets.values()} == {tuple(TRUTH["classes"])}
    for image in TRUTH["images"]:
        truth = np.array([o["box"] for o in image["objects"]], float)
        classes = [TRUTH["classes"].index(o["class"]) for o in image["objects"]]
        for name, tolerance in (("coco", 1e-9), ("yolo", 2e-3), ("voc", 0.5)):
            got = objects[name][image["file"]]
            np.testing.assert_allclose(got.boxes, truth, atol=tolerance, err_msg=f"{name} {image['file']}")
            assert got.classes.tolist() == classes and got.ids.tolist() == list(range(len(classes)))
            assert not got.iscrowd.any()


def test_coco_and_yolo_pose_give_the_same_keypoints_and_flip_pairs(read):
    targets, objects = read
    coco_spec, yolo_spec = targets["coco"].keypoints, targets["yolo"].keypoints
    assert coco_spec.names == tuple(TRUTH["keypoint_names"])
    assert coco_spec.flip_pairs == yolo_spec.flip_pairs == tuple((k, k + 1) for k in range(1, 17, 2))
    assert coco_spec.skeleton[0] == (15, 13)  # COCO's 1-based [16, 14], 0-based
    person = np.array(TRUTH["images"][0]["objects"][0]["keypoints"], float).reshape(17, 3)
    coco_kp = objects["coco"]["astronaut.jpg"].keypoints
    yolo_kp = objects["yolo"]["astronaut.jpg"].keypoints
    np.testing.assert_allclose(coco_kp[0], person)
    np.testing.assert_allclose(yolo_kp[0], person, atol=2e-3)
    assert coco_kp.shape == yolo_kp.shape == (3, 17, 3) and not coco_kp[1:].any()  # helmet, shuttle: none
    # the flip permutation sends the subject's left eye to the right eye's slot
    assert coco_spec.flip_permutation()[1] == 2


def test_the_cups_polygon_mask_is_the_same_from_coco_and_yolo_seg_and_lies_on_the_cup(read):
    _, objects = read
    coco_masks = objects["coco"]["coffee.jpg"].masks
    seg_masks = objects["seg"]["coffee.jpg"].masks
    assert coco_masks.shape == (3, 160, 240) and coco_masks.dtype == np.uint8
    cup_coco, cup_seg = coco_masks[0].astype(bool), seg_masks[0].astype(bool)
    assert (cup_coco & cup_seg).sum() / (cup_coco | cup_seg).sum() > 0.99
    with Image.open(DATA / "images" / "coffee.jpg") as image:
        pixels = np.asarray(image.convert("RGB"), float)
    # the cup (white rim, crema) is brighter than the dark wood and saucer around it
    assert pixels[cup_coco].mean() > pixels[~cup_coco].mean() + 30
    # the saucer has no polygon: its mask is its box's pixels
    assert coco_masks[1].sum() == (190 - 30) * (156 - 27)
    assert objects["seg"]["astronaut.jpg"].masks is None and len(objects["seg"]["astronaut.jpg"]) == 0


def test_the_committed_files_are_what_make_annotations_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_annotations", DATA / "make_annotations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == 10
    stale = [str(p) for p in written if (tmp_path / p).read_bytes() != (DATA / p).read_bytes()]
    assert not stale, f"run python tests/data/annotated/make_annotations.py: {stale} differ from truth.json"


def test_annotations_survive_their_json_round_trip(read):
    _, rows = read_coco(str(DATA / "coco.json"), IMAGES)
    _, seg_rows = read_yolo(str(DATA / "yolo_seg" / "labels"), IMAGES)
    for row in [*rows, *seg_rows]:
        assert ImageAnnotation.from_json(row.to_json()) == row
    assert any(o.polygon for r in read_yolo(str(DATA / "yolo_seg" / "labels"), IMAGES)[1] for o in r.objects)


def test_fixture_photos_are_small():
    assert sum(p.stat().st_size for p in Path(IMAGES).iterdir()) < 60_000
