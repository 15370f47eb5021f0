"""Writes truth.json's hand-made annotations as COCO JSON, Pascal VOC XML and YOLO txt (run from anywhere).

    python tests/data/annotated/make_annotations.py

The three formats hold the same objects, so the readers can be checked
against each other: COCO keeps the continuous frame exactly; VOC rounds each
corner to whole pixels (1-based, inclusive: ``xmin = round(x0) + 1``,
``xmax = round(x1)``); YOLO normalises to 6 decimals. ``yolo/`` is a
YOLO-pose set (every line has the 17 keypoints, zeros where none);
``yolo_seg/`` holds coffee.jpg with the cup as a YOLO-seg polygon.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
FLIP_IDX = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO person: left_* <-> right_*


def category_id(index: int) -> int:
    return 2 * index + 3  # ids with gaps, as COCO's: the class index is the id's rank, not the id


def coco(truth: dict) -> dict:
    classes = truth["classes"]
    categories = []
    for n, name in enumerate(classes):
        category = {"id": category_id(n), "name": name, "supercategory": "thing"}
        if name == "person":
            category["keypoints"] = truth["keypoint_names"]
            category["skeleton"] = truth["skeleton"]
        categories.append(category)
    images, annotations = [], []
    for n, image in enumerate(truth["images"]):
        images.append({"id": 100 + n, "file_name": image["file"], "width": image["width"], "height": image["height"]})
        for obj in image["objects"]:
            x0, y0, x1, y1 = obj["box"]
            annotation = {
                "id": len(annotations) + 1,
                "image_id": 100 + n,
                "category_id": category_id(classes.index(obj["class"])),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
                "segmentation": [obj["polygon"]] if "polygon" in obj else [],
            }
            if "keypoints" in obj:
                annotation["keypoints"] = obj["keypoints"]
                annotation["num_keypoints"] = sum(1 for v in obj["keypoints"][2::3] if v)
            annotations.append(annotation)
    return {"images": images, "annotations": annotations, "categories": categories}


def voc(image: dict) -> str:
    objects = ""
    for obj in image["objects"]:
        x0, y0, x1, y1 = obj["box"]
        objects += (
            f"  <object>\n    <name>{escape(obj['class'])}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n"
            f"      <xmin>{round(x0) + 1}</xmin>\n      <ymin>{round(y0) + 1}</ymin>\n"
            f"      <xmax>{round(x1)}</xmax>\n      <ymax>{round(y1)}</ymax>\n    </bndbox>\n  </object>\n"
        )
    return (
        f"<annotation>\n  <folder>images</folder>\n  <filename>{escape(image['file'])}</filename>\n"
        f"  <size>\n    <width>{image['width']}</width>\n    <height>{image['height']}</height>\n"
        f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n{objects}</annotation>\n"
    )


def yolo_box(obj: dict, classes: list[str], width: int, height: int) -> list[str]:
    x0, y0, x1, y1 = obj["box"]
    values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    return [str(classes.index(obj["class"]))] + [f"{v:.6f}" for v in values]


def yolo_pose(image: dict, classes: list[str], count: int) -> str:
    lines = []
    for obj in image["objects"]:
        kp = obj.get("keypoints", [0] * 3 * count)
        flat = []
        for x, y, v in zip(kp[0::3], kp[1::3], kp[2::3], strict=True):
            flat += [f"{x / image['width']:.6f}", f"{y / image['height']:.6f}", str(v)]
        lines.append(" ".join(yolo_box(obj, classes, image["width"], image["height"]) + flat))
    return "\n".join(lines) + "\n"


def yolo_seg(image: dict, classes: list[str]) -> str:
    lines = []
    for obj in image["objects"]:
        if "polygon" in obj:
            xy = [v / (image["width"] if n % 2 == 0 else image["height"]) for n, v in enumerate(obj["polygon"])]
            lines.append(" ".join([str(classes.index(obj["class"]))] + [f"{v:.6f}" for v in xy]))
        else:
            lines.append(" ".join(yolo_box(obj, classes, image["width"], image["height"])))
    return "\n".join(lines) + "\n"


def main(out: Path = HERE) -> None:
    """Writes every format's files under ``out`` (the tests compare a fresh copy with the committed one)."""
    truth = json.loads((HERE / "truth.json").read_text(encoding="utf-8"))
    classes = truth["classes"]
    (out / "coco.json").write_text(json.dumps(coco(truth), indent=1) + "\n", encoding="utf-8")
    for folder in ("voc", "yolo/labels", "yolo_seg/labels"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    count = len(truth["keypoint_names"])
    names = "\n".join(f"  - {name}" for name in classes)
    (out / "yolo" / "data.yaml").write_text(
        f"names:\n{names}\nkpt_shape: [{count}, 3]\nflip_idx: {FLIP_IDX}\n", encoding="utf-8"
    )
    (out / "yolo_seg" / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    for image in truth["images"]:
        stem = Path(image["file"]).stem
        (out / "voc" / f"{stem}.xml").write_text(voc(image), encoding="utf-8")
        (out / "yolo" / "labels" / f"{stem}.txt").write_text(yolo_pose(image, classes, count), encoding="utf-8")
        if any("polygon" in obj for obj in image["objects"]):
            (out / "yolo_seg" / "labels" / f"{stem}.txt").write_text(yolo_seg(image, classes), encoding="utf-8")


if __name__ == "__main__":
    main()
