"""An image the annotation source names twice is neither written twice nor dropped unseen."""

from __future__ import annotations

import json
import shutil

from pipeline.job.annotated import unit_inputs
from pipeline.job.options import JobConfig
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "annotated"


def _coco_with(tmp_path, extra_image: dict, extra_annotations: list[dict]):
    data = json.loads((DATA / "coco.json").read_text())
    data["images"].append(extra_image)
    data["annotations"] += extra_annotations
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    images = tmp_path / "images"
    shutil.copytree(DATA / "images", images)
    return data, path, images


def _inputs(path, images):
    config = JobConfig.create(input=str(images), output="/tmp/unused", annotations=(("train", str(path)),))
    return unit_inputs(config, str(images), "train", str(path))


def test_a_file_named_twice_alike_is_kept_once_with_a_row_that_is_no_failure(tmp_path):
    original = json.loads((DATA / "coco.json").read_text())
    first = original["images"][0]
    twin = {**first, "id": 999}
    twin_objects = [
        {**a, "id": 10_000 + i, "image_id": 999}
        for i, a in enumerate(original["annotations"])
        if a["image_id"] == first["id"]
    ]
    _data, path, images = _coco_with(tmp_path, twin, twin_objects)
    _declared, items, errors, listed = _inputs(path, images)
    keys = [item.key for item in items]
    assert sorted(keys) == sorted({i["file_name"] for i in original["images"]})  # each file once
    assert [(e.key, e.error_type) for e in errors] == [(first["file_name"], "DuplicateInput")]
    assert listed == len(original["images"]) + 1


def test_a_file_named_twice_with_other_objects_is_refused_in_one_row(tmp_path):
    original = json.loads((DATA / "coco.json").read_text())
    first = original["images"][0]
    twin = {**first, "id": 999}
    _data, path, images = _coco_with(tmp_path, twin, [])  # the twin has no objects: not the same annotation
    _declared, items, errors, _listed = _inputs(path, images)
    assert first["file_name"] not in [item.key for item in items]
    assert [(e.key, e.error_type) for e in errors] == [(first["file_name"], "DuplicateAnnotation")]
    assert "merge them into one entry" in errors[0].message
