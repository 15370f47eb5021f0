"""Pascal VOC XML: the exact 1-based-inclusive conversion, and one error row per refused image."""

from __future__ import annotations

import pytest
from PIL import Image

from pipeline.annotations.source import ImageAnnotation
from pipeline.annotations.voc import read_voc
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow


def _xml(filename="a.png", width=20, height=10, objects=""):
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
        f"<depth>3</depth></size>{objects}</annotation>"
    )


def _obj(name="dog", box=(1, 1, 20, 10), difficult=0, truncated=0):
    corners = "".join(f"<{c}>{v}</{c}>" for c, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><truncated>{truncated}</truncated>"
        f"<bndbox>{corners}</bndbox></object>"
    )


def _read(tmp_path, files, **kw):
    images, folder = tmp_path / "JPEGImages", tmp_path / "Annotations"
    images.mkdir(exist_ok=True)
    folder.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 10)).save(images / name)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    targets, rows = read_voc(str(folder), str(images), **kw)
    return targets, {r.key if isinstance(r, ErrorRow) else r.file: r for r in rows}


def test_one_based_inclusive_corners_become_the_continuous_frame_exactly(tmp_path):
    objects = _obj("dog", (1, 1, 20, 10)) + _obj("cat", (5, 3, 5, 3), difficult=1) + _obj("cat", (2.5, 2, 8, 9))
    targets, rows = _read(tmp_path, {"a.xml": _xml(objects=objects), "b.xml": _xml("b.png")})
    assert targets.classes == ("cat", "dog")
    whole, pixel, fractional = rows["a.png"].objects
    assert whole.box == (0, 0, 20, 10) and whole.category == 1  # the whole image
    assert pixel.box == (4, 2, 5, 3) and pixel.iscrowd  # one pixel, 1 wide; difficult -> crowd
    assert fractional.box == (1.5, 1, 8, 9)
    assert rows["b.png"] == ImageAnnotation("b.png", 20, 10, ())


@pytest.mark.parametrize(
    ("text", "key", "kind", "words"),
    [
        ("<annotation><filename>a.png</filename>", "a.xml", "MalformedAnnotation", "a.xml: line 1, column 38"),
        (_xml(objects=_obj(box=(1, 1, 22, 10))), "a.png", "BadAnnotation", "2 px outside the 20x10 image"),
        (_xml(objects=_obj(box=(6, 1, 5, 10))), "a.png", "BadAnnotation", "negative or zero size"),
        (_xml(objects=_obj(box=("nan", 1, 5, 10))), "a.png", "BadAnnotation", "non-finite"),
        (_xml(objects=_obj("horse")), "a.png", "UnknownCategory", "class 'horse' is not one of the classes"),
        (_xml(objects=_obj(truncated="yes")), "a.png", "BadAnnotation", "<truncated> is 'yes'"),
        (_xml(width=0), "a.png", "MalformedAnnotation", "<size> needs positive whole"),
        (_xml("gone.png"), "gone.png", "MissingImage", "not found under"),
    ],
)
def test_each_bad_annotation_is_one_row_and_the_others_go_on(tmp_path, text, key, kind, words):
    files = {"a.xml": text, "b.xml": _xml("b.png", objects=_obj())}
    _, rows = _read(tmp_path, files, classes=("cat", "dog"))
    row = rows[key]
    assert isinstance(row, ErrorRow) and row.error_type == kind and words in row.message, row
    assert isinstance(rows["b.png"], ImageAnnotation)


def test_a_folder_without_xml_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .xml files"):
        read_voc(str(tmp_path / "empty"), str(tmp_path))
