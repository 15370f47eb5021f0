"""TIFF, WebP, DICOM, 16-bit depth, EXIF orientation, CMYK, palettes, unsupported and hostile files.

Tolerances against Pillow: TIFF, PNG, BMP and lossless WebP exact; lossy WebP within 3 levels (both use
libwebp, in practice equal); JPEG within 12 levels and 1.5 on average (TensorFlow's default fast integer
IDCT differs from Pillow's), EXIF orientation exact against our own unrotated decode; libtiff's
premultiplied alpha within 1 level of straight compositing; 16-bit mappings and DICOM windows exact
(MONOCHROME1 within 1, its inversion in DCMTK rounds).
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.helpers import DATA
from tests.helpers import read_data as read
from transforms.decode import DecodeError, Decoder, peek_size, sniff_format


def pil_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int64)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def assert_close(actual, expected, atol: int, mean: float | None = None) -> None:
    diff = np.abs(np.asarray(actual).astype(np.int64) - np.asarray(expected).astype(np.int64))
    assert diff.max() <= atol, f"max difference {diff.max()} > {atol}"
    if mean is not None:
        assert diff.mean() <= mean, f"mean difference {diff.mean():.2f} > {mean}"


def scale16(values: np.ndarray) -> np.ndarray:
    return np.round(values.astype(np.float64) / 257).astype(np.int64)


def stretch(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.floor((values - values.min()) * 255 / (values.max() - values.min()) + 0.5).astype(np.int64)


def window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear VOI to 0..255, rounded half up."""
    y = ((x.astype(np.float64) - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.floor(np.clip(y, 0, 255) + 0.5).astype(np.int64)


def png16_values(data: bytes) -> np.ndarray:
    """The 16-bit RGB samples of a PNG whose rows all use filter 0 (as make_fixtures writes them)."""
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 6)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].copy().view(">u2").reshape(height, width, 3).astype(np.int64)


def dicom_pixels(name: str) -> np.ndarray:
    """Stored values of a make_fixtures DICOM: OW pixel data is the last element, 12 x 16 samples."""
    data = read(name)
    signed = struct.unpack("<H", data[data.index(b"\x28\x00\x03\x01US") + 8 :][:2])[0] == 1
    return np.frombuffer(data[-12 * 16 * 2 :], "<i2" if signed else "<u2").reshape(12, 16).astype(np.int64)


# ---------------------------------------------------------------- formats decode to the expected pixels


def test_tiff_8bit_rgb_is_exact(decoder):
    data = read("rgb8.tif")
    assert sniff_format(data) == "tiff" and peek_size(data, "tiff") == (32, 48)
    image = decoder(data).numpy()
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, pil_rgb(data))


def test_tiff_big_endian_palette_one_bit_and_alpha(decoder):
    rocket = Image.open(DATA / "rocket_small.jpg").convert("RGB")
    for image in (rocket.convert("P"), rocket.convert("1"), rocket.convert("CMYK")):
        data = encode(image, "TIFF")
        np.testing.assert_array_equal(decoder(data).numpy(), pil_rgb(data))
    gray16 = np.asarray(Image.open(DATA / "gray16.tif"))
    big_endian = encode(Image.frombytes("I;16B", (32, 24), gray16.astype(">u2").tobytes()), "TIFF")
    assert big_endian[:4] == b"MM\0*"
    expected = scale16(gray16)
    np.testing.assert_array_equal(decoder(big_endian).numpy()[..., 0], expected)
    rgba = rocket.convert("RGBA")
    alpha = np.full((64, 96), 255, np.uint8)
    alpha[:, 48:] = 100
    alpha[:10] = 0
    rgba.putalpha(Image.fromarray(alpha))
    straight = np.asarray(rgba).astype(np.float64)
    weight = straight[..., 3:] / 255
    for fill in (255, 0):
        image = Decoder(alpha_fill=fill)(encode(rgba, "TIFF", compression="tiff_adobe_deflate")).numpy()
        assert_close(image, np.round(straight[..., :3] * weight + fill * (1 - weight)), atol=1)


def test_webp_lossless_exact_and_lossy_close(decoder):
    lossy = read("lossy.webp")
    assert sniff_format(lossy) == "webp" and peek_size(lossy, "webp") == (64, 96)
    assert_close(decoder(lossy).numpy(), pil_rgb(lossy), atol=3)
    lossless = read("alpha_lossless.webp")
    assert peek_size(lossless, "webp") == (32, 48)
    rgba = np.asarray(Image.open(DATA / "alpha_lossless.webp").convert("RGBA")).astype(np.float64)
    weight = rgba[..., 3:] / 255
    for fill in (255, 0):
        expected = np.round(rgba[..., :3] * weight + fill * (1 - weight))
        np.testing.assert_array_equal(Decoder(alpha_fill=fill)(lossless).numpy(), expected)


def test_cmyk_jpeg_comes_out_rgb(decoder):
    data = read("cmyk.jpg")
    assert b"Adobe" in data and Image.open(DATA / "cmyk.jpg").mode == "CMYK"
    image = decoder(data).numpy()
    assert image.shape == (32, 48, 3)
    assert_close(image, pil_rgb(data), atol=12, mean=1.5)


def test_palette_bmp_gets_its_colours(decoder):
    rocket = Image.open(DATA / "rocket_small.jpg").convert("RGB")
    for image in (rocket.convert("P"), rocket.convert("L")):
        data = encode(image, "BMP")
        np.testing.assert_array_equal(decoder(data).numpy(), pil_rgb(data))


# ---------------------------------------------------------------- EXIF orientation


def test_exif_orientation_6_is_upright(decoder):
    data = read("exif_rotate6.jpg")
    image = decoder(data).numpy()
    assert image.shape == (96, 64, 3)  # stored 96 wide x 64 high, shown turned clockwise
    upright = np.asarray(ImageOps.exif_transpose(Image.open(DATA / "exif_rotate6.jpg")).convert("RGB"))
    assert_close(image, upright, atol=12, mean=1.5)
    unrotated = decoder(data.replace(b"Exif\0\0", b"Exig\0\0")).numpy()  # same pixels, EXIF no longer found
    np.testing.assert_array_equal(image, np.rot90(unrotated, k=-1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(decoder, orientation):
    rocket = Image.open(DATA / "rocket_small.jpg")
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(rocket, "JPEG", quality=95, exif=exif.tobytes())
    plain = decoder(encode(rocket, "JPEG", quality=95)).numpy()
    # Pillow's exif_transpose mapping, applied to our own unrotated decode, is the exact reference.
    transpose = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270"}
    transpose |= {7: "TRANSVERSE", 8: "ROTATE_90"}
    expected = Image.fromarray(plain)
    if orientation in transpose:
        expected = expected.transpose(getattr(Image.Transpose, transpose[orientation]))
    np.testing.assert_array_equal(decoder(data).numpy(), np.asarray(expected))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert_close(decoder(data).numpy(), upright, atol=12, mean=1.5)


def test_the_traced_orientation_matches_the_eager_one_for_every_value():
    """orient_graph (inside the render function, branch-free) gives orient's pixels; out-of-range values are 1/8."""
    import tensorflow as tf

    from transforms.formats import orient, orient_graph

    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)  # not square: a wrong transpose shows
    traced = tf.function(
        orient_graph, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32)]
    )
    for orientation in range(1, 9):
        expected = np.asarray(orient(tf.constant(image), orientation))
        np.testing.assert_array_equal(
            traced(image, orientation).numpy(), expected, err_msg=f"orientation {orientation}"
        )
    np.testing.assert_array_equal(traced(image, 0).numpy(), image)
    np.testing.assert_array_equal(traced(image, 9).numpy(), np.asarray(orient(tf.constant(image), 8)))
    assert traced.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 3]


def test_broken_exif_decodes_as_before(decoder):
    data = read("exif_rotate6.jpg")
    start = data.index(b"Exif\0\0") + 6
    broken = data[:start] + b"\xde\xad" * 8 + data[start + 16 :]  # TIFF header of the EXIF block destroyed
    image = decoder(broken).numpy()
    assert image.shape == (64, 96, 3)
    np.testing.assert_array_equal(image, np.rot90(decoder(data).numpy(), k=1))


def test_orientation_out_of_range_or_without_a_readable_header_is_upright(decoder):
    """Pillow reads the orientation; a value outside 1..8, or a header it cannot open, leaves the image as stored."""
    from transforms.formats import jpeg_orientation

    exif = Image.Exif()
    exif[0x0112] = 9
    data = encode(Image.open(DATA / "rocket_small.jpg"), "JPEG", quality=90, exif=exif.tobytes())
    assert jpeg_orientation(data) == 1 and decoder(data).numpy().shape == (64, 96, 3)
    rotated = read("exif_rotate6.jpg")
    cut = rotated[: rotated.index(b"\xff\xda")]  # EXIF and SOF intact, no scan: Pillow will not open it
    assert jpeg_orientation(rotated) == 6 and jpeg_orientation(cut) == 1
    with pytest.raises(DecodeError, match="cannot decode"):  # and the decoder refuses it anyway
        decoder(cut)


def test_an_xmp_only_orientation_is_not_applied(decoder):
    """Only the EXIF block counts (as before Pillow read it): Pillow's getexif() would take XMP's tiff:Orientation."""
    from transforms.formats import jpeg_orientation

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    data = encode(Image.open(DATA / "rocket_small.jpg"), "JPEG", quality=90, xmp=xmp)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif().get(0x0112) == 6  # the XMP value is there for anyone who asks Pillow
    assert jpeg_orientation(data) == 1 and decoder(data).numpy().shape == (64, 96, 3)


# ---------------------------------------------------------------- bit depth


def test_png16_scale_and_range():
    data = read("rgb16.png")
    values = png16_values(data)
    assert values.min() == 0 and values.max() == 65535 and {128, 129, 385, 386} <= set(values.ravel().tolist())
    scaled = Decoder()(data).numpy()
    np.testing.assert_array_equal(scaled, scale16(values))
    assert scaled[0, 0].tolist() == [0, 255, scale16(values[0, 0])[2]] and scaled[0, 7, 0] == 255
    ranged = Decoder(depth="range")(data).numpy()
    np.testing.assert_array_equal(ranged, stretch(values))


def test_tiff16_scale_range_and_compressed_layouts():
    values = np.asarray(Image.open(DATA / "gray16.tif")).astype(np.int64)
    assert values.min() == 0 and values.max() == 65535
    image = Decoder()(read("gray16.tif")).numpy()
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], scale16(values))
    assert image[0, :8, 0].tolist() == [0, 0, 1, 1, 2, 127, 128, 255]
    low = (values // 4 + 1000).astype(np.uint16)  # a dim image: range mapping stretches it
    dim = Image.fromarray(low)
    for options in ({}, {"compression": "tiff_adobe_deflate", "tiffinfo": {317: 2}}):
        data = encode(dim, "TIFF", **options)
        np.testing.assert_array_equal(Decoder()(data).numpy()[..., 0], scale16(low))
        ranged = Decoder(depth="range")(data).numpy()[..., 0]
        assert ranged.min() == 0 and ranged.max() == 255
        np.testing.assert_array_equal(ranged, stretch(low))


# ---------------------------------------------------------------- DICOM


def test_dicom_window_follows_the_standard_formula(decoder):
    data = read("window.dcm")
    assert sniff_format(data) == "dicom" and peek_size(data, "dicom") == (12, 16)
    image = decoder(data).numpy()
    expected = window(dicom_pixels("window.dcm"), 2000, 2000)
    assert image.shape == (12, 16, 3) and expected.min() == 0 and expected.max() == 255
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], expected)


def test_dicom_rescale_and_inverted_window(decoder):
    hounsfield = dicom_pixels("ct_window.dcm") - 1024  # RescaleSlope 1, RescaleIntercept -1024, signed storage
    np.testing.assert_array_equal(decoder(read("ct_window.dcm")).numpy()[..., 0], window(hounsfield, 40, 400))
    inverted = 255 - window(dicom_pixels("mono1_window.dcm"), 2000, 3000)  # MONOCHROME1: low values white
    assert_close(decoder(read("mono1_window.dcm")).numpy()[..., 0], inverted, atol=1)


def test_dicom_header_skips_undefined_length_sequences(decoder):
    data = read("window.dcm")
    item = b"\x08\x00\x50\x11UI\x04\x001.2\x00"  # (0008,1150) inside an undefined-length item
    nested = (
        b"\x08\x00\x99\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\x0c\0\0\0" + item + b"\xfe\xff\xdd\xe0\0\0\0\0"
    )
    sequence = b"\x08\x00\x40\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item + nested
    sequence += b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"  # item and sequence delimiters
    at = data.index(b"\x28\x00\x02\x00US")
    with_sequence = data[:at] + sequence + data[at:]
    assert peek_size(with_sequence, "dicom") == (12, 16)
    np.testing.assert_array_equal(decoder(with_sequence).numpy(), decoder(data).numpy())


def test_dicom_without_window_uses_its_own_range(decoder):
    image = decoder(read("nowindow.dcm")).numpy()
    np.testing.assert_array_equal(image[..., 1], stretch(dicom_pixels("nowindow.dcm")))
    assert image.min() == 0 and image.max() == 255


# ---------------------------------------------------------------- unsupported and refused


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("image.avif", "AVIF"),
        ("image.jp2", "JPEG 2000"),
        ("no_pixels.dcm", "DICOM file without pixel data"),
        ("j2k_syntax.dcm", "DICOM with JPEG 2000"),
    ],
)
def test_unsupported_files_are_named(decoder, name, message):
    with pytest.raises(DecodeError, match=message) as info:
        decoder(read(name))
    assert info.value.kind == "UnsupportedFormat" and "supported:" in str(info.value)


def test_unsupported_layouts_are_named(decoder):
    rocket = Image.open(DATA / "rocket_small.jpg")
    float_tiff = encode(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF")
    animated = encode(rocket, "WEBP", save_all=True, append_images=[rocket.rotate(180)], duration=100)
    one_bit_bmp = encode(rocket.convert("1"), "BMP")
    lzma = bytearray(read("rgb8.tif"))
    offset = struct.unpack("<I", lzma[4:8])[0]
    for i in range(struct.unpack("<H", lzma[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        if struct.unpack("<H", lzma[entry : entry + 2])[0] == 259:
            lzma[entry + 8 : entry + 10] = struct.pack("<H", 999)
    heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(32)
    cases = [
        (float_tiff, "TIFF with 32-bit floating-point"),
        (animated, "animated WebP"),
        (one_bit_bmp, "BMP with 1 bits per pixel"),
        (bytes(lzma), "TIFF compression 999"),
        (heic, "HEIC"),
        (b"8BPS\0\1" + bytes(30), "PSD"),
        (b"\xff\x0a" + bytes(30), "JPEG XL"),
    ]
    for data, message in cases:
        with pytest.raises(DecodeError, match=message) as info:
            decoder(data)
        assert info.value.kind == "UnsupportedFormat", message


def test_unknown_format_lists_the_new_formats(decoder):
    with pytest.raises(DecodeError, match="TIFF, WebP, DICOM") as info:
        decoder(read("not_an_image.jpg"))
    assert info.value.kind == "UnknownFormat"


def test_truncated_tiff_is_corrupt_not_black(decoder):
    data = read("gray16.tif")
    with pytest.raises(DecodeError, match="truncated") as info:
        decoder(data[: len(data) // 2])  # the directory (at the start) kept, the strips cut
    assert info.value.kind == "CorruptImage"


def test_hostile_files_are_refused_with_reasons_not_crashes(decoder):
    """From review: non-finite DICOM numbers, a DICOM claiming more rows than it holds, a deflate bomb, GIF frames."""
    from tests.data.make_fixtures import dicom_bytes

    pixels = np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000
    for slope in ("inf", "1e305", "nan"):
        data = dicom_bytes(pixels, window=("100", "200"), rescale=(slope, "0"))
        try:
            image = decoder(data).numpy()
            assert image.shape == (4, 4, 3)  # a non-finite number is ignored (slope 1), never a crash
        except DecodeError as exc:
            assert exc.kind in ("CorruptImage", "UnsupportedFormat")
    lying = bytearray(dicom_bytes(pixels, window=("100", "200")))
    rows_at = bytes(lying).index(b"\x28\x00\x10\x00US") + 8
    lying[rows_at : rows_at + 2] = (60000).to_bytes(2, "little")
    with pytest.raises(DecodeError, match="holds 32 of 480000 pixel bytes") as info:
        decoder(bytes(lying))
    assert info.value.kind == "CorruptImage"
    # a 4x4 16-bit TIFF whose deflate strip inflates far beyond what 4x4 pixels need
    with pytest.raises(DecodeError, match="TIFF strip 0 inflates past the 32 bytes its header gives") as info:
        decoder(tiff_with_strip(np.zeros((4, 4), np.uint16), zlib.compress(bytes(50_000_000))))
    assert info.value.kind == "CorruptImage"
    from transforms import formats

    frames = [Image.new("RGB", (60, 50), (i * 20, 0, 0)) for i in range(12)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert formats.gif_frames(gif) == 12 and formats.gif_frames(read("animated.gif")) >= 2
    with pytest.raises(DecodeError, match="60x50 x 12 frames") as info:
        Decoder(max_pixels=60 * 50 * 11)(gif)
    assert info.value.kind == "TooLarge"
    assert Decoder(max_pixels=60 * 50 * 12)(gif).shape == (50, 60, 3)


def tiff_with_strip(pixels: np.ndarray, strip: bytes) -> bytes:
    """A one-strip Deflate TIFF of ``pixels``' size and type whose strip is ``strip``, appended and pointed to."""
    small = bytearray(encode(Image.fromarray(pixels), "TIFF", compression="tiff_adobe_deflate"))
    offset = struct.unpack("<I", small[4:8])[0]
    start = len(small)
    for i in range(struct.unpack("<H", small[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack("<HH", small[entry : entry + 4])
        value = {273: start, 279: len(strip)}.get(tag)
        if value is not None:
            small[entry + 8 : entry + 12] = struct.pack(
                "<I" if kind == 4 else "<HH", value, *([0] if kind == 3 else [])
            )
    return bytes(small) + strip


def png_with_idat(width: int, height: int, idat: bytes) -> bytes:
    """An 8-bit RGB PNG whose IHDR says ``width`` x ``height`` and whose image data is ``idat``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zlib_zeros(count: int) -> bytes:
    """A zlib stream of ``count`` zero bytes, about a thousandth of that: 16 MiB blocks compressed once, repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    blocks, rest = divmod(count, 1 << 24)
    block = packer.compress(bytes(1 << 24)) + packer.flush(zlib.Z_FULL_FLUSH) if blocks else b""
    body = block * blocks + packer.compress(bytes(rest)) + packer.flush()
    return b"\x78\xda" + body + struct.pack(">I", ((count % 65521) << 16) | 1)  # adler32 of zeros: a = 1, b = n


def test_a_deflated_dicom_decodes_as_the_same_file_uncompressed(decoder):
    from tests.data.make_fixtures import deflated_dicom, dicom_bytes

    grid = (np.arange(12 * 16, dtype=np.int64).reshape(12, 16) * 21).astype(np.uint16)
    plain, deflated = dicom_bytes(grid, window=("2000", "2000")), deflated_dicom(grid, window=("2000", "2000"))
    assert deflated != plain and peek_size(deflated, "dicom") == (12, 16)
    np.testing.assert_array_equal(decoder(deflated).numpy(), decoder(plain).numpy())
    with pytest.raises(DecodeError, match="DICOM pixel data is truncated") as info:
        decoder(deflated[:-40])  # the stream ends inside the pixel data
    assert info.value.kind == "CorruptImage"


def test_a_deflated_dicom_bomb_is_refused_at_what_its_header_promises(decoder):
    """A 12x16 image whose deflated data set goes on for 2 GiB (2 MB on disk), as the users' 1.7 MB file did."""
    from tests.data.make_fixtures import deflated_dicom

    bomb = deflated_dicom(np.zeros((12, 16), np.uint16), padding=2 << 30)
    assert len(bomb) < 3 << 20
    with pytest.raises(DecodeError) as info:
        decoder(bomb)
    assert info.value.kind == "CorruptImage"
    promise = r"deflated DICOM data set inflates past the \d+ bytes its header promises \(16x12 x 1 x 16-bit samples"
    assert re.match(promise, str(info.value))
    # a header longer than the budget before its pixel data: never inflated past the budget
    long_header = deflated_dicom(np.zeros((12, 16), np.uint16), window=("1" * 60_000, "2"))
    with pytest.raises(DecodeError, match="header inflates past --max-image-bytes 50000 before its pixel data") as info:
        Decoder(max_bytes=50_000)(long_header)
    assert info.value.kind == "TooLarge"
    assert Decoder()(long_header).shape == (12, 16, 3)


HOSTILE_CHILD = """
import json, sys
import tensorflow_io  # noqa: F401  (imported before the first measure: it is part of every worker)
from transforms.decode import Decoder, DecodeError

def rss_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

decoder = Decoder()
for name in ("rgb8.tif", "gray16.tif", "gray.png", "window.dcm"):  # every decoder path warm
    decoder(open(f"tests/data/{name}", "rb").read())
for path in sys.argv[1:]:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak RSS (VmHWM) starts again from the RSS now
    before = rss_kib("VmRSS")
    try:
        outcome = list(decoder(open(path, "rb").read()).shape)
    except DecodeError as exc:
        outcome = [exc.kind, str(exc)]
    print(json.dumps({"file": path.rsplit("/", 1)[1], "outcome": outcome, "grew_kib": rss_kib("VmHWM") - before}))
"""


def test_streams_that_inflate_past_their_header_are_not_inflated_in_memory(tmp_path):
    """1 GiB bombs, about 1 MB each on disk, decoded in a fresh process: its peak RSS may not grow by 64 MiB
    (the kernel's high-water mark, reset before each file).

    Deflated DICOM and 16-bit TIFF strips are inflated here, within what the header promises; an 8-bit TIFF
    (libtiff) and a PNG with a lying IHDR (libpng) are read a strip or a row at a time by their libraries.
    """
    import subprocess
    import sys

    from tests.data.make_fixtures import deflated_dicom
    from tests.helpers import ROOT

    gib = 1 << 30
    bombs = {
        "dicom.dcm": deflated_dicom(np.zeros((12, 16), np.uint16), padding=gib),
        "tiff16.tif": tiff_with_strip(np.zeros((4, 4), np.uint16), zlib_zeros(gib)),
        "tiff8.tif": tiff_with_strip(np.zeros((4, 4), np.uint8), zlib_zeros(gib)),
        "png.png": png_with_idat(8, 8, zlib_zeros(gib // 4)),  # libpng inflates it all (about 4 s a GiB here)
    }
    for name, data in bombs.items():
        assert len(data) < 2 << 20, name
        (tmp_path / name).write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_CHILD, *(str(tmp_path / name) for name in bombs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["file"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert results["dicom.dcm"]["outcome"][0] == "CorruptImage"
    assert "inflates past the" in results["dicom.dcm"]["outcome"][1]
    assert results["tiff16.tif"]["outcome"] == ["CorruptImage", results["tiff16.tif"]["outcome"][1]]
    assert "TIFF strip 0 inflates past the 32 bytes" in results["tiff16.tif"]["outcome"][1]
    assert results["tiff8.tif"]["outcome"] == [4, 4, 3]  # libtiff reads the strip's 16 bytes, ignores the rest
    assert results["png.png"]["outcome"] == [8, 8, 3]  # libpng decodes its rows, ignores the rest
    for name, result in results.items():
        assert result["grew_kib"] < 64 * 1024, (name, result)
    print({name: result["grew_kib"] for name, result in results.items()})
