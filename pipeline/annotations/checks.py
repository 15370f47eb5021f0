"""The checks every annotation format shares, and the one error row a refused image gets.

A problem is a value (``Problem``), never an exception raised deep in a
parser: the parser gathers an image's problems and refuses the whole image
with one row naming the first (a half-annotated image would teach a detector
that the dropped objects are background). Boxes may stick out of the image by
up to ``TOLERANCE`` pixels (annotation tools put corners on the border's far
side, rounding puts them half a pixel out): such a box is clipped; beyond
that it is refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import ErrorRow

TOLERANCE = 1.0  # pixels a box or keypoint may lie outside the image before it is refused

BAD = "BadAnnotation"  # a box outside the image, a negative size, a non-finite number, a mask of another size
UNKNOWN_CATEGORY = "UnknownCategory"
MISSING_IMAGE = "MissingImage"
MALFORMED = "MalformedAnnotation"  # a line or file that does not parse
STAGE = "listing"


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why an image's annotation is refused: the error row's type and its one-line message."""

    error_type: str
    message: str

    def row(self, key: str, split: str, stage: str = STAGE) -> ErrorRow:
        """The image's one error row (``copy`` None: every copy of it)."""
        return ErrorRow(key, None, split, stage, self.error_type, self.message)


def require_root(image_root: str) -> None:
    """A missing image root is the user's one mistake, not a ``MissingImage`` row for every image."""
    if not fsutil.is_dir(image_root):
        raise UserError(f"image root {image_root!r} is not a folder; give the folder the annotations' paths are in")


def refusal(problems: Sequence[Problem]) -> Problem:
    """One problem standing for all of an image's: the first, with how many more there are."""
    first = problems[0]
    if len(problems) == 1:
        return first
    more = len(problems) - 1
    return Problem(first.error_type, f"{first.message} (and {more} more problem{'s' if more > 1 else ''})")


def object_problem(where: str, index: int, text: str, error_type: str = BAD) -> Problem:
    return Problem(error_type, f"{where}: object {index}: {text}")


def finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def check_box(
    box: tuple[float, float, float, float], width: float, height: float
) -> tuple[float, float, float, float] | str:
    """The box clipped to ``[0, width] x [0, height]``, or why it cannot be: non-finite, empty, outside.

    ``box`` is xyxy in the same units as ``width`` and ``height`` (pixels);
    ``width`` 0 skips the outside check (the size is not known yet).
    """
    x0, y0, x1, y1 = box
    if not finite(box):
        return f"box {_show(box)} has a non-finite number; fix the annotation"
    if x1 <= x0 or y1 <= y0:
        return f"box {_show(box)} has a negative or zero size ({x1 - x0:g} x {y1 - y0:g}); fix the annotation"
    if width <= 0 or height <= 0:
        return box
    out = max(-x0, -y0, x1 - width, y1 - height)
    if out > TOLERANCE:
        return (
            f"box {_show(box)} lies {out:g} px outside the {width:g}x{height:g} image "
            f"(more than the {TOLERANCE:g} px allowed); fix the annotation or the image size"
        )
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))


def check_keypoints(keypoints: Sequence[float], width: float, height: float) -> str | None:
    """Why flat (x, y, v) keypoints are wrong, or None: non-finite, a bad visibility, a labelled one outside."""
    if not finite(keypoints):
        return "keypoints have a non-finite number; fix the annotation"
    for k in range(len(keypoints) // 3):
        x, y, v = keypoints[3 * k : 3 * k + 3]
        if v not in (0, 1, 2):
            return f"keypoint {k} has visibility {v:g} (0, 1 or 2 allowed); fix the annotation"
        if v and width > 0 and height > 0:
            out = max(-x, -y, x - width, y - height)
            if out > TOLERANCE:
                return (
                    f"keypoint {k} ({x:g}, {y:g}) lies {out:g} px outside the {width:g}x{height:g} image; "
                    "fix it or mark it not labelled (v=0)"
                )
    return None


def _show(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
