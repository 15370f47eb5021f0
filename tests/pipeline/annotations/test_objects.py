"""to_objects: the declared size must be the decoded one; masks and keypoints shaped for the dataset."""

from __future__ import annotations

from pipeline.annotations import masks
from pipeline.annotations.checks import Problem
from pipeline.annotations.objects import to_objects
from pipeline.annotations.source import ImageAnnotation, SourceObject


def test_an_annotation_of_another_size_is_refused_as_a_value():
    annotation = ImageAnnotation("a.jpg", 20, 10, (SourceObject((0, 0, 5, 5), 0),))
    problem = to_objects(annotation, 20, 10)  # decoded upright: 10 wide, 20 high
    assert isinstance(problem, Problem) and problem.error_type == "BadAnnotation"
    assert "annotation is for a 20x10 image but the image decodes to 10x20" in problem.message


def test_objects_without_masks_or_keypoints_get_box_masks_and_absent_keypoints():
    rle = masks.polygons_to_rle([[0, 0, 4, 0, 4, 4, 0, 4]], 10, 20)
    annotation = ImageAnnotation(
        "a.jpg",
        20,
        10,
        (SourceObject((0, 0, 4, 4), 1, mask_rle=rle, keypoints=(1, 1, 2)), SourceObject((10, 2, 12, 3), 0)),
    )
    objects = to_objects(annotation, 10, 20)
    assert objects.masks[0].sum() == 16 and objects.masks[1].sum() == 2 and objects.masks[1][2, 10:12].all()
    assert objects.keypoints.tolist() == [[[1, 1, 2]], [[0, 0, 0]]]
    assert objects.ids.tolist() == [0, 1]
    empty = to_objects(ImageAnnotation("b.jpg", 20, 10, ()), 10, 20, num_keypoints=17)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.keypoints.shape == (0, 17, 3)
