"""The typed seams of detection, segmentation and keypoint targets.

Coordinates: every box and keypoint is in the image's own pixels, in the
continuous frame where the image covers ``[0, W] x [0, H]`` and pixel (row
``i``, column ``j``) covers ``[j, j + 1] x [i, i + 1]`` (its centre at
``(j + 0.5, i + 0.5)``). This is COCO's, Pascal VOC's (after its 1-based
corners are converted on reading) and torchvision v2's frame. Boxes are
``xyxy`` (xmin, ymin, xmax, ymax), absolute pixels, as Keras 3's ``"xyxy"``
``bounding_box_format``. Annotations refer to the upright image (EXIF
orientation applied), as annotation tools show it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Keypoint visibility, as COCO: 0 not labelled (or outside the image), 1 labelled but occluded, 2 visible.
KP_ABSENT, KP_OCCLUDED, KP_VISIBLE = 0, 1, 2
# The value a semantic mask takes where the warp brought pixels in from outside the image (no class known).
MASK_IGNORE = 255


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """A dataset's keypoints: their names, the left/right pairs a horizontal flip swaps, and the skeleton."""

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()

    def flip_permutation(self) -> np.ndarray:
        """Index ``k`` of the flipped keypoints comes from index ``perm[k]`` of the unflipped ones."""
        perm = np.arange(len(self.names))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


@dataclasses.dataclass(frozen=True, eq=False)
class Objects:
    """An image's object instances; row ``n`` of every array is object ``n``.

    ``ids`` are the objects' indices in the source annotation (they survive
    removals, so a record says which objects were dropped). ``masks`` are
    instance masks at the image's size (0/1), ``keypoints`` ``[N, K, 3]``
    rows of (x, y, visibility). ``None`` where the annotation has none.
    """

    boxes: np.ndarray  # float64 [N, 4] xyxy
    classes: np.ndarray  # int64 [N], indices into the dataset's class names
    ids: np.ndarray  # int64 [N]
    iscrowd: np.ndarray  # bool [N]
    masks: np.ndarray | None = None  # uint8 [N, H, W]
    keypoints: np.ndarray | None = None  # float64 [N, K, 3]

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, keep: np.ndarray) -> Objects:
        """The objects where boolean ``keep`` [N] is true, every array alike."""
        return Objects(
            boxes=self.boxes[keep],
            classes=self.classes[keep],
            ids=self.ids[keep],
            iscrowd=self.iscrowd[keep],
            masks=None if self.masks is None else self.masks[keep],
            keypoints=None if self.keypoints is None else self.keypoints[keep],
        )

    @staticmethod
    def empty(num_keypoints: int = 0, with_masks: bool = False, size: tuple[int, int] = (0, 0)) -> Objects:
        """No objects (an image whose annotation lists none), with arrays of the right shapes."""
        return Objects(
            boxes=np.zeros([0, 4]),
            classes=np.zeros([0], np.int64),
            ids=np.zeros([0], np.int64),
            iscrowd=np.zeros([0], bool),
            masks=np.zeros([0, *size], np.uint8) if with_masks else None,
            keypoints=np.zeros([0, num_keypoints, 3]) if num_keypoints else None,
        )


@dataclasses.dataclass(frozen=True)
class TargetRules:
    """What happens to objects after the ops: clipped to the image, then removed when too small or hidden.

    ``min_area`` (pixels of the output image) and ``min_side`` (pixels) apply
    to the clipped box; ``min_visibility`` is the fraction of the object's
    transformed area still inside the image (0: keep any object with some
    area inside). A removed object takes its label, mask and keypoints with
    it, and is counted in the record's params. Recorded in the manifest.
    """

    min_area: float = 1.0
    min_visibility: float = 0.0
    min_side: float = 0.0
    erasing_hides_keypoints: bool = False


# The removal rules' reasons, in the order they apply: ``Removed``'s counts, the params' entry, the manifest's sums.
REASONS = ("outside", "min_area", "min_visibility", "min_side")


@dataclasses.dataclass(frozen=True)
class Removed:
    """Why objects left a record: counts by reason, and the source ids of the removed objects."""

    outside: int = 0  # no area left inside the image
    min_area: int = 0
    min_visibility: int = 0
    min_side: int = 0
    ids: tuple[int, ...] = ()

    def counts(self) -> dict[str, int]:
        """``{reason: count}`` in ``REASONS``' order."""
        return {reason: getattr(self, reason) for reason in REASONS}

    @property
    def total(self) -> int:
        return self.outside + self.min_area + self.min_visibility + self.min_side
