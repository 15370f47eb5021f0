"""Regenerates the small fixture files in tests/data from the sample photos (needs Pillow).

Run from the repository root: python tests/data/make_fixtures.py
The outputs are committed; tests never run this.
"""

from pathlib import Path

from PIL import Image

HERE = Path(__file__).parent
PHOTOS = HERE.parent.parent / "examples" / "photos"


def main() -> None:
    rocket = Image.open(PHOTOS / "train/everyday/rocket.jpg").convert("RGB").resize((96, 64))
    rocket.save(HERE / "rocket_small.jpg", quality=90)
    data = (HERE / "rocket_small.jpg").read_bytes()
    (HERE / "truncated_half.jpg").write_bytes(data[: len(data) // 2])
    (HERE / "trailing_garbage.jpg").write_bytes(data + b"GARBAGE" * 20)
    (HERE / "empty.jpg").write_bytes(b"")
    (HERE / "not_an_image.jpg").write_bytes(b"This is a text file, not an image.\n")
    (HERE / "page.jpg").write_bytes(b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    camera = Image.open(PHOTOS / "train/everyday/camera.png").resize((40, 40))
    camera.convert("L").save(HERE / "gray.png")
    # The horse silhouette with a real cut-out alpha: background transparent, a half-opaque band.
    horse = Image.open(PHOTOS / "train/everyday/horse.png").convert("RGB").resize((50, 41))
    alpha = horse.convert("L").point(lambda v: 0 if v > 128 else 255)
    alpha.paste(128, (0, 0, 50, 6))
    horse.putalpha(alpha)
    horse.save(HERE / "rgba.png")
    chelsea = Image.open(PHOTOS / "train/everyday/chelsea.png").convert("RGB").resize((45, 30))
    chelsea.save(HERE / "rgb.bmp")
    # A 32-bit BMP whose fourth byte is zero everywhere, as many writers leave it.
    bgra = chelsea.copy()
    bgra.putalpha(0)
    bgra.save(HERE / "zero_alpha32.bmp")
    frames = [chelsea.convert("P"), chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
    frames[0].save(HERE / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    # A PNG whose header claims 30000x30000 (CRC fixed up so only the size is a lie).
    import struct
    import zlib

    png = (HERE / "gray.png").read_bytes()
    ihdr = png[12:29]
    fake = b"IHDR" + struct.pack(">II", 30000, 30000) + ihdr[12:17]
    fake_chunk = fake + struct.pack(">I", zlib.crc32(fake))
    (HERE / "huge_header.png").write_bytes(png[:12] + fake_chunk + png[33:])


if __name__ == "__main__":
    main()
