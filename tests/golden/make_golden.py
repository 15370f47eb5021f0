"""Regenerates the golden files. Run it only for an intended change, and bump the op's ``version``.

    python tests/golden/make_golden.py

params.json: the params every registered op draws for fixed (seed, key, copy,
shape). pixels/<op>.png: a few ops applied with fixed params to the small test
photo, rounded to 8 bits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import example_op  # noqa: E402
from transforms.augment import Augmenter  # noqa: E402
from transforms.ops import registered_ops  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 1234
KEYS = ("golden/a.jpg", "golden/b.png")
COPIES = (0, 7)
SHAPE = (48, 64, 3)
# op -> the copy of key "pixels" whose params are applied to the photo
PIXEL_OPS = (
    "rotation",
    "affine",
    "equalize",
    "gaussian_blur",
    "hue",
    "sharpness",
    "random_erasing",
    "randaugment",
    "random_resized_crop",
)


def golden_params() -> dict:
    out = {}
    for name in sorted(registered_ops()):
        op = example_op(name)
        aug = Augmenter((op,), SEED)
        out[name] = {
            "version": op.version,
            "draws": [aug.sample(key, copy, SHAPE)[0] for key in KEYS for copy in COPIES],
        }
    return out


def photo() -> np.ndarray:
    from transforms.decode import Decoder

    return Decoder()((ROOT / "tests" / "data" / "rocket_small.jpg").read_bytes()).numpy()


def pixel_case(name: str, image: np.ndarray) -> tuple[dict, np.ndarray]:
    """The params (copy 3 of key "pixels", applied) and the 8-bit result."""
    op = example_op(name)
    sampled = Augmenter((op,), SEED).sample("pixels", 3, image.shape)[0]
    out = op.apply(image.astype(np.float32), sampled["params"]).numpy()
    return sampled, np.round(out).astype(np.uint8)


def main() -> None:
    from PIL import Image

    (HERE / "params.json").write_text(json.dumps(golden_params(), indent=1, sort_keys=True) + "\n")
    (HERE / "pixels").mkdir(exist_ok=True)
    image = photo()
    for name in PIXEL_OPS:
        _, out = pixel_case(name, image)
        Image.fromarray(out).save(HERE / "pixels" / f"{name}.png")
    print(f"wrote {HERE / 'params.json'} and {len(PIXEL_OPS)} pixel files")


if __name__ == "__main__":
    main()
