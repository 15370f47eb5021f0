"""Regenerates the golden targets file. Run it only for an intended change of how targets follow the ops.

    python tests/golden/make_targets_golden.py

targets.json: for a few ops (flip, rotation, random_resized_crop, affine, a
policy) and fixed (seed, key, copy), the sampled params and the objects they
carry: boxes and keypoints (rounded to 1e-6 pixel, so a CPU's last bit of
trigonometry does not matter), each instance mask's pixel count and enclosing
box, and the removals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from transforms.augment import Augmenter  # noqa: E402
from transforms.ops import op_from_config  # noqa: E402
from transforms.targets.carry import carry_objects  # noqa: E402
from transforms.targets.types import KeypointSpec, Objects, TargetRules  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 1234
SHAPE = (48, 64, 3)
OUT = (32, 40)
RULES = TargetRules(min_area=2.0, min_visibility=0.25)
SPEC = KeypointSpec(names=("head", "left_hand", "right_hand"), flip_pairs=((1, 2),))
CASES: dict[str, dict[str, Any]] = {
    "horizontal_flip": {"op": "horizontal_flip", "p": 1.0},
    "rotation": {"op": "rotation", "degrees": [-40.0, 40.0]},
    "random_resized_crop": {"op": "random_resized_crop", "scale": [0.3, 1.0]},
    "affine": {"op": "affine", "degrees": [-30.0, 30.0], "shear_x": [-15.0, 15.0], "translate_x": [-0.2, 0.2]},
    "randaugment": {"op": "randaugment", "num_ops": 2, "magnitude": 15},
}
COPIES = 3


def source_objects() -> Objects:
    boxes = np.array([[4.0, 6.0, 30.0, 40.0], [40.5, 2.25, 63.0, 20.0], [0.0, 30.0, 10.0, 48.0]])
    masks = np.zeros((3, SHAPE[0], SHAPE[1]), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[k, y0:y1, x0:x1] = 1
    kps = np.array(
        [
            [[17.0, 8.5, 2], [8.0, 25.0, 2], [26.0, 25.0, 1]],
            [[50.0, 4.0, 2], [42.0, 15.0, 2], [60.0, 15.0, 2]],
            [[5.0, 32.0, 2], [1.0, 44.0, 0], [9.0, 44.0, 2]],
        ],
        np.float64,
    )
    return Objects(
        boxes=boxes,
        classes=np.array([0, 1, 2], np.int64),
        ids=np.array([0, 1, 2], np.int64),
        iscrowd=np.zeros(3, bool),
        masks=masks,
        keypoints=kps,
    )


def _rounded(values: np.ndarray) -> list:
    return np.round(values, 6).tolist()


def golden_targets() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    objs = source_objects()
    for name, config in CASES.items():
        op = op_from_config(config).with_output_size(OUT)
        aug = Augmenter((op,), SEED)
        out[name] = []
        for copy in range(COPIES):
            sampled = aug.sample("golden/targets.jpg", copy, SHAPE)
            carried, removed = carry_objects(objs, [op], sampled, SHAPE, OUT, "stretch", RULES, SPEC)
            assert carried.masks is not None and carried.keypoints is not None
            masks = []
            for mask in carried.masks:
                ys, xs = np.nonzero(mask)
                box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else []
                masks.append({"pixels": int(mask.sum()), "box": box})
            out[name].append(
                {
                    "sampled": sampled,
                    "ids": carried.ids.tolist(),
                    "boxes": _rounded(carried.boxes),
                    "keypoints": _rounded(carried.keypoints),
                    "masks": masks,
                    "removed": {
                        "outside": removed.outside,
                        "min_area": removed.min_area,
                        "min_visibility": removed.min_visibility,
                        "min_side": removed.min_side,
                        "ids": list(removed.ids),
                    },
                }
            )
    return out


if __name__ == "__main__":
    (HERE / "targets.json").write_text(json.dumps(golden_targets(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {HERE / 'targets.json'}")
