"""Regenerates the small fixture files in tests/data from the sample photos (needs Pillow).

Run from the repository root: python tests/data/make_fixtures.py
The outputs are committed; tests never run this.
"""

from pathlib import Path

import numpy as np
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
    format_fixtures()


# ---------------------------------------------------------------- more formats (tests/transforms/test_formats.py)


def sixteen_bit_values(height: int, width: int) -> np.ndarray:
    """A ramp over the whole 16-bit range, with values that sit at the round(v / 257) edges first."""
    values = (np.arange(height * width, dtype=np.int64) * 65535 // (height * width - 1)).astype(np.uint16)
    values[:8] = [0, 128, 129, 385, 386, 32767, 32768, 65535]
    return values.reshape(height, width)


def png16_bytes(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (Pillow cannot), filter 0 on every row."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width, _ = rgb.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def dicom_bytes(
    pixels: np.ndarray,
    *,
    window: tuple[str, str] | None = None,
    rescale: tuple[str, str] | None = None,
    bits_stored: int = 16,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = "1.2.840.10008.1.2.1",
    pixel_data: bool = True,
) -> bytes:
    """A minimal DICOM Part 10 file, explicit VR little endian, one 16-bit monochrome frame."""
    import struct

    def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if vr in (b"OB", b"OW"):
            return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
        return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value

    def text(value: str, pad: bytes = b" ") -> bytes:
        raw = value.encode("ascii")
        return raw + pad if len(raw) % 2 else raw

    def us(value: int) -> bytes:
        return struct.pack("<H", value)

    signed = pixels.dtype == np.int16
    meta = element(0x0002, 0x0001, b"OB", b"\0\1")
    meta += element(0x0002, 0x0002, b"UI", text("1.2.840.10008.5.1.4.1.1.7", b"\0"))  # secondary capture
    meta += element(0x0002, 0x0003, b"UI", text("1.2.826.0.1.3680043.2.1125.1", b"\0"))
    meta += element(0x0002, 0x0010, b"UI", text(transfer_syntax, b"\0"))
    meta = element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta
    rows, columns = pixels.shape
    body = element(0x0028, 0x0002, b"US", us(1)) + element(0x0028, 0x0004, b"CS", text(photometric))
    body += element(0x0028, 0x0010, b"US", us(rows)) + element(0x0028, 0x0011, b"US", us(columns))
    body += element(0x0028, 0x0100, b"US", us(16)) + element(0x0028, 0x0101, b"US", us(bits_stored))
    body += element(0x0028, 0x0102, b"US", us(bits_stored - 1)) + element(0x0028, 0x0103, b"US", us(int(signed)))
    if window:
        body += element(0x0028, 0x1050, b"DS", text(window[0])) + element(0x0028, 0x1051, b"DS", text(window[1]))
    if rescale:
        body += element(0x0028, 0x1052, b"DS", text(rescale[1])) + element(0x0028, 0x1053, b"DS", text(rescale[0]))
    if pixel_data:
        body += element(0x7FE0, 0x0010, b"OW", pixels.astype("<i2" if signed else "<u2").tobytes())
    return b"\0" * 128 + b"DICM" + meta + body


DEFLATED_TS = "1.2.840.10008.1.2.1.99"


def deflated_dicom(pixels: np.ndarray, *, padding: int = 0, **options) -> bytes:
    """``dicom_bytes`` with a deflated data set (transfer syntax 1.2.840.10008.1.2.1.99).

    ``padding``: zero bytes of Data Set Trailing Padding (FFFC,FFFC) after the pixel data, inside the stream:
    about a thousandth of that on disk, what a deflate bomb is. Built in 16 MiB blocks, each compressed once and
    repeated (a full flush resets the compressor, so every block compresses to the same bytes).
    """
    import struct
    import zlib

    plain = dicom_bytes(pixels, transfer_syntax=DEFLATED_TS, **options)
    pos = 132
    while plain[pos : pos + 2] == b"\x02\x00":  # the file meta group stays as it is
        vr = plain[pos + 4 : pos + 6]
        long = vr in (b"OB", b"OW", b"UN")
        length = (
            struct.unpack("<I", plain[pos + 8 : pos + 12])[0]
            if long
            else struct.unpack("<H", plain[pos + 6 : pos + 8])[0]
        )
        pos += (12 if long else 8) + length
    dataset = plain[pos:]
    if padding:
        dataset += struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, padding)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(dataset) + packer.flush(zlib.Z_FULL_FLUSH)]
    block_size = 1 << 24
    blocks, rest = divmod(padding, block_size)
    if blocks:
        block = packer.compress(bytes(block_size)) + packer.flush(zlib.Z_FULL_FLUSH)
        parts += [block] * blocks
    parts.append(packer.compress(bytes(rest)) + packer.flush())
    return plain[:pos] + b"".join(parts)


def format_fixtures() -> None:
    """TIFF, 16-bit PNG/TIFF, WebP, EXIF-rotated and CMYK JPEG, DICOM, 1x1 and unsupported files."""
    rocket = Image.open(HERE / "rocket_small.jpg").convert("RGB")
    small = rocket.resize((48, 32))
    small.save(HERE / "rgb8.tif", compression="tiff_lzw")
    Image.fromarray(sixteen_bit_values(24, 32)).save(HERE / "gray16.tif")
    ramp = sixteen_bit_values(16, 24).astype(np.int64)
    (HERE / "rgb16.png").write_bytes(png16_bytes(np.stack([ramp, 65535 - ramp, ramp[::-1]], axis=-1)))
    rocket.save(HERE / "lossy.webp", quality=80, method=4)
    rgba = small.convert("RGBA")
    alpha = np.full((32, 48), 255, np.uint8)
    alpha[:, 24:] = 0
    alpha[:8, :] = 128
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(HERE / "alpha_lossless.webp", lossless=True, method=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned clockwise: rotate 90 degrees clockwise to view
    rocket.save(HERE / "exif_rotate6.jpg", quality=90, exif=exif.tobytes())
    rgb = np.asarray(small).astype(np.int64)
    black = np.tile(np.linspace(0, 160, 48).astype(np.int64), (32, 1))
    cmyk = np.stack([255 - rgb[..., 0], 255 - rgb[..., 1], 255 - rgb[..., 2], black], axis=-1).astype(np.uint8)
    Image.frombytes("CMYK", (48, 32), cmyk.tobytes()).save(HERE / "cmyk.jpg", quality=90)  # Adobe APP14, inverted CMYK
    grid = np.arange(12 * 16, dtype=np.int64).reshape(12, 16)
    (HERE / "window.dcm").write_bytes(dicom_bytes((grid * 21).astype(np.uint16), window=("2000", "2000")))
    (HERE / "nowindow.dcm").write_bytes(dicom_bytes((100 + grid * 17).astype(np.uint16), bits_stored=12))
    ct = dicom_bytes((600 + grid * 5).astype(np.int16), window=("40", "400"), rescale=("1", "-1024"))
    (HERE / "ct_window.dcm").write_bytes(ct)
    mono1 = dicom_bytes((grid * 21).astype(np.uint16), window=("2000", "3000"), photometric="MONOCHROME1")
    (HERE / "mono1_window.dcm").write_bytes(mono1)
    (HERE / "no_pixels.dcm").write_bytes(dicom_bytes(np.zeros((2, 2), np.uint16), pixel_data=False))
    j2k = dicom_bytes(np.zeros((2, 2), np.uint16), transfer_syntax="1.2.840.10008.1.2.4.90")
    (HERE / "j2k_syntax.dcm").write_bytes(j2k)
    Image.new("RGB", (1, 1), (200, 30, 60)).save(HERE / "one_pixel.png")
    # The opening boxes of an AVIF and a JPEG 2000 file: enough to be recognised, nothing to decode.
    ftyp = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"
    (HERE / "image.avif").write_bytes(ftyp + b"\0\0\0\x08free" + b"\0" * 32)
    jp2 = b"\0\0\0\x0cjP  \r\n\x87\n" + b"\0\0\0\x14ftypjp2 \0\0\0\0jp2 "
    (HERE / "image.jp2").write_bytes(jp2 + b"\0" * 32)


if __name__ == "__main__":
    main()
