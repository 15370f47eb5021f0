"""Makes a benchmark corpus from the sample photos: seeded crops and re-encodes of real images.

python bench/make_corpus.py --n 500 --out /tmp/corpus
Writes N images into 3 class folders: crops of about 500x375 and up, as JPEG at
qualities 70-95 (most) and PNG (one in eight). Same N and seed, same files.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"


def make_corpus(n: int, out: Path, seed: int = 0) -> list[Path]:
    sources = sorted(p for p in PHOTOS.rglob("*") if p.suffix in (".png", ".jpg"))
    images = [Image.open(p).convert("RGB") for p in sources]
    rng = np.random.default_rng(seed)
    written = []
    for i in range(n):
        image = images[i % len(images)]
        scale = rng.uniform(1.0, 1.6)
        w, h = image.size
        big = image.resize((max(500, int(w * scale)), max(375, int(h * scale))), Image.BILINEAR)
        cw, ch = int(rng.integers(500, big.size[0] + 1)), int(rng.integers(375, big.size[1] + 1))
        x, y = int(rng.integers(0, big.size[0] - cw + 1)), int(rng.integers(0, big.size[1] - ch + 1))
        crop = big.crop((x, y, x + cw, y + ch))
        folder = out / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        if i % 8 == 7:
            crop.save(buffer, format="PNG")
            path = folder / f"img{i:06d}.png"
        else:
            crop.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
            path = folder / f"img{i:06d}.jpg"
        path.write_bytes(buffer.getvalue())
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_corpus(args.n, args.out, args.seed)


if __name__ == "__main__":
    main()
