"""COCO JSON: each kind of bad annotation refuses its image with one error row; good ones read as declared."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from pipeline.annotations.coco import read_coco
from pipeline.annotations.objects import to_objects
from pipeline.annotations.source import ImageAnnotation
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow


def _write(tmp_path, annotations, images=None, categories=None):
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 10)).save(root / name)
    data = {
        "images": images
        or [
            {"id": 1, "file_name": "a.png", "width": 20, "height": 10},
            {"id": 2, "file_name": "b.png", "width": 20, "height": 10},
            {"id": 3, "file_name": "sub/c.png", "width": 20, "height": 10},
        ],
        "annotations": annotations,
        "categories": categories or [{"id": 7, "name": "dog"}, {"id": 2, "name": "cat"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path), str(root)


def _rows(tmp_path, annotations, **kw):
    path, root = _write(tmp_path, annotations, **kw)
    targets, rows = read_coco(path, root)
    return targets, {r.key if isinstance(r, ErrorRow) else r.file: r for r in rows}


def _ann(image_id=1, bbox=(1, 1, 4, 4), category=2, **extra):
    return {"id": 1, "image_id": image_id, "category_id": category, "bbox": list(bbox), "iscrowd": 0, **extra}


def test_classes_are_ranked_by_category_id_and_unannotated_images_are_kept(tmp_path):
    targets, rows = _rows(tmp_path, [_ann(category=7), _ann(image_id=3)])
    assert targets.classes == ("cat", "dog") and targets.keypoints is None
    assert rows["a.png"].objects[0].category == 1 and rows["a.png"].objects[0].box == (1, 1, 5, 5)
    assert rows["b.png"] == ImageAnnotation("b.png", 20, 10, ())
    assert rows["sub/c.png"].objects[0].category == 0


@pytest.mark.parametrize(
    ("bbox", "kind", "words"),
    [
        ((15, 1, 7, 4), "BadAnnotation", "2 px outside the 20x10 image"),
        ((1, 1, -2, 4), "BadAnnotation", "negative or zero size"),
        ((1, 1, 0, 4), "BadAnnotation", "negative or zero size"),
        ((1, float("nan"), 3, 4), "BadAnnotation", "non-finite"),
        ((1, 1, 3), "BadAnnotation", "not four numbers"),
    ],
)
def test_a_bad_box_refuses_the_whole_image_with_one_row(tmp_path, bbox, kind, words):
    _, rows = _rows(tmp_path, [_ann(), _ann(bbox=bbox), _ann(image_id=2)])
    row = rows["a.png"]
    assert isinstance(row, ErrorRow) and row.error_type == kind and row.stage == "listing" and row.copy is None
    assert row.message.startswith("a.png: object 1: ") and words in row.message and "\n" not in row.message
    assert isinstance(rows["b.png"], ImageAnnotation)  # the job goes on


def test_a_box_out_by_at_most_one_pixel_is_clipped(tmp_path):
    _, rows = _rows(tmp_path, [_ann(bbox=(-0.5, -1, 21, 11))])
    assert rows["a.png"].objects[0].box == (0, 0, 20, 10)


def test_unknown_category_unknown_image_and_missing_file(tmp_path):
    annotations = [_ann(category=99), {**_ann(image_id=42), "id": 5}]
    images = [
        {"id": 1, "file_name": "a.png", "width": 20, "height": 10},
        {"id": 2, "file_name": "gone.png", "width": 20, "height": 10},
        {"id": 3, "file_name": "../outside.png", "width": 20, "height": 10},
    ]
    _, rows = _rows(tmp_path, annotations, images=images)
    assert rows["a.png"].error_type == "UnknownCategory" and "category_id 99" in rows["a.png"].message
    assert rows["gone.png"].error_type == "MissingImage" and "not found under" in rows["gone.png"].message
    assert rows["instances.json#image-3"].error_type == "MalformedAnnotation"
    orphan = rows["instances.json#annotation-5"]
    assert orphan.error_type == "BadAnnotation" and "image_id 42" in orphan.message


def test_polygon_rle_and_crowd_masks(tmp_path):
    full = np.zeros((10, 20), np.uint8, order="F")
    full[2:5, 3:9] = 1
    compressed = coco_mask.encode(np.asfortranarray(full))["counts"].decode()
    uncompressed = [23, 3, 7, 3, 7, 3, 7, 3, 7, 3, 7, 3, 124]  # column-major runs: columns 2..7, rows 3..5
    annotations = [
        _ann(segmentation=[[3, 2, 9, 2, 9, 5, 3, 5]]),
        _ann(segmentation={"size": [10, 20], "counts": compressed}),
        _ann(segmentation={"size": [10, 20], "counts": uncompressed}, iscrowd=1),
    ]
    _, rows = _rows(tmp_path, annotations)
    objects = to_objects(rows["a.png"], 10, 20)
    np.testing.assert_array_equal(objects.masks[0], full)
    np.testing.assert_array_equal(objects.masks[1], full)
    assert objects.masks[2].sum() == 18 and objects.masks[2][3:6, 2:8].all()
    assert objects.iscrowd.tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("segmentation", "words"),
    [
        ({"size": [20, 10], "counts": [200]}, "mask of another size: RLE is 10x20, the image is 20x10"),
        ({"size": [10, 20], "counts": [199]}, "add up to 10*20"),
        ({"size": [10, 20], "counts": "not~rle"}, "compressed RLE counts"),
        ([[1, 1, 2, 2]], "at least 6"),
    ],
)
def test_a_bad_mask_refuses_the_image(tmp_path, segmentation, words):
    _, rows = _rows(tmp_path, [_ann(segmentation=segmentation)])
    assert rows["a.png"].error_type == "BadAnnotation" and words in rows["a.png"].message


def test_keypoints_skeleton_and_flip_pairs(tmp_path):
    categories = [
        {"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]]}
    ]
    annotations = [
        _ann(category=1, keypoints=[5, 5, 2, 4, 4, 1, 0, 0, 0]),
        _ann(image_id=2, category=1, keypoints=[5, 5, 2, 30, 4, 2, 0, 0, 0]),
        _ann(image_id=3, category=1, keypoints=[5, 5, 2]),
    ]
    targets, rows = _rows(tmp_path, annotations, categories=categories)
    assert targets.keypoints.flip_pairs == ((1, 2),) and targets.keypoints.skeleton == ((0, 1), (0, 2))
    objects = to_objects(rows["a.png"], 10, 20)
    assert objects.keypoints.shape == (1, 3, 3) and objects.keypoints[0, 1].tolist() == [4, 4, 1]
    assert "keypoint 1 (30, 4) lies 10 px outside" in rows["b.png"].message
    assert "3 keypoint values where the category names 3 keypoints" in rows["sub/c.png"].message


def test_a_malformed_or_missing_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}', encoding="utf-8")
    (tmp_path / "images").mkdir()
    with pytest.raises(UserError, match=r"broken.json: line 2, column 12: not valid JSON"):
        read_coco(str(path), str(tmp_path / "images"))
    with pytest.raises(UserError, match=r"does not exist"):
        read_coco(str(tmp_path / "nope.json"), str(tmp_path / "images"))
    with pytest.raises(UserError, match=r"image root .* is not a folder"):
        read_coco(str(path), str(tmp_path / "no-images"))
