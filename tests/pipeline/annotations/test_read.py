"""``read_annotations`` tells the format from the path and refuses what is none of them in one line."""

from __future__ import annotations

import pytest

from pipeline.annotations.read import annotation_format, read_annotations
from pipeline.errors import UserError
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "annotated"


@pytest.mark.parametrize(("path", "fmt"), [("coco.json", "coco"), ("voc", "voc"), ("yolo/labels", "yolo")])
def test_format_is_told_by_the_path_and_every_format_reads_the_same_images(path, fmt):
    assert annotation_format(str(DATA / path)) == fmt
    info, rows = read_annotations(str(DATA / path), str(DATA / "images"))
    assert info.format == fmt
    keys = sorted(row.file for row in rows)
    assert keys == sorted(p.name for p in (DATA / "images").iterdir())


def test_a_path_that_is_no_annotation_source_is_one_line(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(UserError, match="neither a COCO .json file"):
        annotation_format(str(other))
    with pytest.raises(UserError, match="does not exist"):
        annotation_format(str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="choose one of auto, coco, voc, yolo"):
        annotation_format(str(other), "kitti")


def test_a_folder_of_images_is_no_annotation_source(tmp_path):
    """The images' folder given as --annotations: one line, not a YOLO run whose images all have no objects."""
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(UserError, match=r"holds no \.xml \(Pascal VOC\) or \.txt \(YOLO\) files"):
        annotation_format(str(tmp_path))
    assert annotation_format(str(tmp_path), "yolo") == "yolo"  # an explicit format is taken as given


def test_a_split_name_the_rule_refuses_is_named_not_taken_for_a_path(tmp_path):
    from pipeline.cli import annotation_source

    assert annotation_source("validation=a/b.json") == ("validation", "a/b.json")
    assert annotation_source("a/b.json") == ("train", "a/b.json")
    with pytest.raises(UserError, match="split 'Val' is not a split name"):
        annotation_source("Val=a/b.json")
    odd = tmp_path / "x=y.json"  # a path that holds a "=" and exists is a path
    odd.write_text("{}")
    assert annotation_source(str(odd)) == ("train", str(odd))
