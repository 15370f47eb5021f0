"""Makes a camera-size benchmark corpus from the sample photos: 8-12 MP JPEGs with sensor-like noise.

python bench/make_camera_corpus.py --n 50 --out /tmp/camera [--scale 0.05]

The ImageNet-size corpus (``make_corpus.py``, about 500x375) hides what real
photos cost: decoding 12 MP is most of the work, and a crop decoded alone
(``tf.io.decode_and_crop_jpeg``) or turned upright from EXIF changes the
picture. So each image here is a sample photo (``examples/photos``), cut to
the camera's aspect ratio at a random place, upscaled (bicubic) to a phone
or camera size (4032x3024, 4000x3000, 3264x2448, 3024x4032), with seeded
sensor-like noise (luminance noise growing with the signal, like shot noise,
plus blotchy low-frequency chroma noise), so the JPEGs are about as large as
a camera's (about 1.4 MB on average, 0.7-2.3 MB; smooth upscaled pixels alone would
compress to a few hundred kB and decode faster than a real photo).

Per 12 images: 2 carry EXIF orientation 6 and 1 orientation 8 (pixels stored
landscape, shown portrait, as phones write them), 1 orientation 3 (stored
upside down), 1 is a PNG (no EXIF); the rest are upright JPEGs. JPEGs are
4:2:0 at quality 90-94 with an EXIF block (Make, Model, Orientation), as a
camera writes them. Every image has its own random stream (seed, index), so
the first K images are the same whatever N; the same N, seed and scale give
the same bytes. ``--scale`` multiplies the sizes (the CI smoke run uses tiny
images with the same layout).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"
# (width, height) as shown; a tagged 6/8 image stores them swapped.
CAMERA_SIZES = ((4032, 3024), (4000, 3000), (3264, 2448), (3024, 4032))
# Position in each group of 12 -> EXIF orientation (absent: 1) and which position is a PNG.
ORIENTATIONS = {1: 6, 5: 6, 3: 8, 8: 3}
PNG_AT = 10
EXIF_ORIENTATION, EXIF_MAKE, EXIF_MODEL = 0x0112, 0x010F, 0x0110
# Luminance noise (levels, scaled by sqrt(0.25 + level)) and chroma noise (levels), chosen so the JPEGs are about
# 1.4 MB on average at 8-12 MP (0.7-2.3 MB) from these smooth sources.
LUMA_SIGMA = 2.0
CHROMA_SIGMA = 1.2
# How the stored pixels relate to the upright picture: stored = shown.transpose(STORE[orientation]).
STORE = {
    6: Image.Transpose.ROTATE_90,  # shown = stored turned 90 degrees clockwise
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}


def _sources() -> list[Image.Image]:
    paths = sorted(p for p in PHOTOS.rglob("*") if p.suffix in (".png", ".jpg"))
    return [Image.open(p).convert("RGB") for p in paths]


def camera_image(source: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The upright picture: ``source`` cut to the aspect of ``size`` at a random place, upscaled, noise added."""
    width, height = size
    sw, sh = source.size
    frac = rng.uniform(0.7, 1.0)
    cw = min(sw, sh * width / height) * frac
    ch = cw * height / width
    x, y = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    picture = source.resize(size, Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(picture, dtype=np.float32)
    level = pixels.mean(axis=2, keepdims=True) * np.float32(1 / 255)
    luma = rng.standard_normal((height, width, 1), dtype=np.float32)
    luma *= np.float32(LUMA_SIGMA) * np.sqrt(np.float32(0.25) + level)
    small = (max(1, width // 4), max(1, height // 4))
    chroma = np.stack(
        [
            np.asarray(
                Image.fromarray(rng.standard_normal(small[::-1], dtype=np.float32)).resize(
                    size, Image.Resampling.BILINEAR
                )
            )
            for _ in range(3)
        ],
        axis=2,
    )
    pixels += luma
    pixels += chroma * np.float32(CHROMA_SIGMA)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def encode(picture: Image.Image, orientation: int, png: bool, quality: int) -> tuple[bytes, str]:
    """File bytes and suffix: a PNG, or a camera JPEG whose stored pixels and EXIF orientation show ``picture``."""
    buffer = io.BytesIO()
    if png:
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    exif = Image.Exif()
    exif[EXIF_MAKE] = "augbeam"
    exif[EXIF_MODEL] = "bench camera"
    exif[EXIF_ORIENTATION] = orientation
    stored = picture.transpose(STORE[orientation]) if orientation in STORE else picture
    stored.save(buffer, format="JPEG", quality=quality, subsampling=2, exif=exif.tobytes())
    return buffer.getvalue(), ".jpg"


def make_camera_corpus(n: int, out: Path, seed: int = 0, scale: float = 1.0) -> list[Path]:
    """Writes N images into 3 class folders (``class0``..``class2``); returns their paths."""
    sources = _sources()
    written = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        width, height = CAMERA_SIZES[i % len(CAMERA_SIZES)]
        position = i % 12
        orientation = ORIENTATIONS.get(position, 1)
        if orientation in (6, 8) and width > height:
            width, height = height, width  # a portrait shot from a landscape sensor
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        picture = camera_image(sources[i % len(sources)], size, rng)
        data, suffix = encode(picture, orientation, position == PNG_AT, int(rng.integers(90, 95)))
        folder = out / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cam{i:06d}{suffix}"
        path.write_bytes(data)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the camera sizes (tiny for tests)")
    args = parser.parse_args()
    paths = make_camera_corpus(args.n, args.out, args.seed, args.scale)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} images, {total / 1e6:.1f} MB ({total / 1e6 / max(1, len(paths)):.2f} MB each) in {args.out}")


if __name__ == "__main__":
    main()
