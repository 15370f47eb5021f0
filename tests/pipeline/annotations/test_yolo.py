"""YOLO txt: label files paired with images by stem, normalised boxes scaled at the decoded size, bad lines named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.annotations.checks import Problem
from pipeline.annotations.objects import to_objects
from pipeline.annotations.source import ImageAnnotation
from pipeline.annotations.yolo import read_yolo
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow


def _read(tmp_path, labels, names="names:\n  0: cat\n  1: dog\n", **kw):
    images, folder = tmp_path / "images", tmp_path / "labels"
    (images / "sub").mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.new("RGB", (40, 20)).save(images / name)
    (images / "notes.txt").write_text("not an image")
    (tmp_path / "data.yaml").write_text(names, encoding="utf-8")
    for name, text in labels.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    targets, rows = read_yolo(str(folder), str(images), **kw)
    return targets, {r.key if isinstance(r, ErrorRow) else r.file: r for r in rows}


def test_boxes_are_normalised_until_the_decoded_size_scales_them(tmp_path):
    targets, rows = _read(tmp_path, {"a.txt": "1 0.5 0.5 0.5 0.5\n\n0 0.25 0.25 0.5 0.5\n", "sub/c.txt": ""})
    assert targets.classes == ("cat", "dog") and list(rows) == ["a.png", "b.jpg", "sub/c.png"]
    a = rows["a.png"]
    assert (a.width, a.height) == (0, 0) and a.objects[0].box == (0.25, 0.25, 0.75, 0.75)
    objects = to_objects(a, 20, 40)
    np.testing.assert_allclose(objects.boxes, [[10, 5, 30, 15], [0, 0, 20, 10]])
    assert objects.classes.tolist() == [1, 0] and objects.masks is None and objects.keypoints is None
    assert rows["b.jpg"] == ImageAnnotation("b.jpg", 0, 0, ())  # no label file: no objects
    assert len(to_objects(rows["sub/c.png"], 20, 40)) == 0


def test_a_box_outside_is_refused_at_the_decoded_size_and_one_pixel_out_is_clipped(tmp_path):
    _, rows = _read(tmp_path, {"a.txt": "0 0.5 0.5 1.04 0.5\n", "b.txt": "0 0.5 0.5 1.1 0.5\n"})
    clipped = to_objects(rows["a.png"], 20, 40)
    np.testing.assert_allclose(clipped.boxes, [[0, 5, 40, 15]])
    refused = to_objects(rows["b.jpg"], 20, 40)
    assert isinstance(refused, Problem) and refused.error_type == "BadAnnotation"
    assert "b.jpg: object 0: box [-2, 5, 42, 15] lies 2 px outside the 40x20 image" in refused.message
    assert refused.row("b.jpg", "train").reason == "listing/BadAnnotation"


@pytest.mark.parametrize(
    ("line", "kind", "words"),
    [
        ("0 0.5 0.5 0.2", "MalformedAnnotation", "labels/a.txt: line 2: object 1: 4 values"),
        ("0 0.5 0.5 0.2 0.2 0.1", "MalformedAnnotation", "line 2: object 1: 6 values"),
        ("0 0.5 zero 0.2 0.2", "MalformedAnnotation", "line 2: object 1: '0 0.5 zero 0.2 0.2' is not numbers"),
        ("2 0.5 0.5 0.2 0.2", "UnknownCategory", "a.png ("),
        ("0 0.5 0.5 -0.2 0.2", "BadAnnotation", "negative or zero size"),
        ("0 0.5 nan 0.2 0.2", "BadAnnotation", "non-finite"),
    ],
)
def test_a_bad_line_refuses_its_image_naming_the_file_and_line(tmp_path, line, kind, words):
    _, rows = _read(tmp_path, {"a.txt": f"0 0.5 0.5 0.2 0.2\n{line}\n", "b.txt": "1 0.5 0.5 0.2 0.2\n"})
    row = rows["a.png"]
    assert isinstance(row, ErrorRow) and row.error_type == kind and words in row.message, row
    assert isinstance(rows["b.jpg"], ImageAnnotation)


def test_a_label_without_its_image_is_a_missing_image_row(tmp_path):
    _, rows = _read(tmp_path, {"zz.txt": "0 0.5 0.5 0.2 0.2\n"})
    assert rows["zz.txt"].error_type == "MissingImage" and "no image zz.<ext>" in rows["zz.txt"].message


def test_pose_keypoints_and_seg_polygons(tmp_path):
    names = "names: [person]\nkpt_shape: [2, 2]\nflip_idx: [1, 0]\n"
    targets, rows = _read(tmp_path, {"a.txt": "0 0.5 0.5 0.5 0.5 0.25 0.5 0 0\n"}, names=names)
    assert targets.keypoints.flip_pairs == ((0, 1),)
    objects = to_objects(rows["a.png"], 20, 40)
    assert objects.keypoints.tolist() == [[[10, 10, 2], [0, 0, 0]]]
    _, rows = _read(tmp_path, {"a.txt": "0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n"}, names="names: [cat]\n")
    assert rows["a.png"].objects[0].box == (0.25, 0.25, 0.75, 0.75)


def test_polygons_are_rasterised_at_the_decoded_size(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "classes.txt").write_text("cat\ndog\n")
    _, rows = _read(tmp_path, {"a.txt": "1 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n"}, names="broken: [")
    # classes.txt beside the labels is found first (and is no label file); data.yaml (broken) is not read
    assert list(rows) == ["a.png", "b.jpg", "sub/c.png"]
    objects = to_objects(rows["a.png"], 20, 40)
    assert objects.masks.shape == (1, 20, 40) and objects.masks[0].sum() == 20 * 10
    assert objects.masks[0][5:15, 10:30].all()


def test_missing_names_or_folders_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"names.*must be a list"):
        _read(tmp_path, {}, names="nc: 2\n")
    with pytest.raises(UserError, match=r"data.yaml: line 2: not valid YAML"):
        _read(tmp_path, {}, names="names: [cat\n")
    with pytest.raises(UserError, match=r"labels folder .* is not a folder"):
        read_yolo(str(tmp_path / "nowhere"), str(tmp_path / "images"))
