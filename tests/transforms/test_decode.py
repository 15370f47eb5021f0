"""Decoding by content (gray, alpha, GIF, BMP, renamed files, bad files), header sizes and --max-pixels,
the depth option, and the same pixels in every process.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.helpers import DATA
from tests.helpers import read_data as read
from transforms.decode import DecodeError, Decoder, check_image_bytes, header_shape


def test_gray_is_repeated_to_three_channels(decoder):
    from PIL import Image

    image = decoder((DATA / "gray.png").read_bytes()).numpy()
    gray = np.asarray(Image.open(DATA / "gray.png"))
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray)


def test_alpha_is_composited_over_the_fill(decoder):
    from PIL import Image

    rgba = np.asarray(Image.open(DATA / "rgba.png").convert("RGBA")).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    for fill in (255, 0):
        image = Decoder(alpha_fill=fill)((DATA / "rgba.png").read_bytes()).numpy()
        expected = np.round(rgba[..., :3] * alpha + fill * (1 - alpha))
        np.testing.assert_allclose(image, expected, atol=1)
    transparent = alpha[..., 0] == 0
    assert transparent.any()
    assert (Decoder(alpha_fill=255)((DATA / "rgba.png").read_bytes()).numpy()[transparent] == 255).all()


def test_gif_first_frame_and_bmp(decoder):
    from PIL import Image

    gif = decoder((DATA / "animated.gif").read_bytes()).numpy()
    first = np.asarray(Image.open(DATA / "animated.gif").convert("RGB"))
    assert gif.shape == (30, 45, 3)
    np.testing.assert_array_equal(gif, first)
    bmp = decoder((DATA / "rgb.bmp").read_bytes()).numpy()
    np.testing.assert_array_equal(bmp, np.asarray(Image.open(DATA / "rgb.bmp").convert("RGB")))


def test_format_is_recognised_by_content_not_name(decoder, tmp_path):
    png_named_jpg = tmp_path / "really_png.jpg"
    png_named_jpg.write_bytes((DATA / "gray.png").read_bytes())
    assert decoder(png_named_jpg.read_bytes()).shape == (40, 40, 3)
    assert decoder((DATA / "trailing_garbage.jpg").read_bytes()).shape == (64, 96, 3)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("empty.jpg", "EmptyFile", "empty"),
        ("not_an_image.jpg", "UnknownFormat", "not an image"),
        ("page.jpg", "UnknownFormat", "HTML page"),
        ("truncated_half.jpg", "CorruptImage", "Invalid JPEG data"),
        ("huge_header.png", "TooLarge", "30000x30000"),
    ],
)
def test_bad_inputs_give_readable_reasons(decoder, name, kind, message):
    with pytest.raises(DecodeError, match=message) as info:
        decoder((DATA / name).read_bytes())
    assert info.value.kind == kind
    assert "node" not in str(info.value) and "Traceback" not in str(info.value)


def test_all_zero_alpha_is_ignored(decoder):
    """A 32-bit BMP with a zero fourth byte must keep its colours, not become all fill."""
    image = decoder((DATA / "zero_alpha32.bmp").read_bytes()).numpy()
    np.testing.assert_array_equal(image, decoder((DATA / "rgb.bmp").read_bytes()).numpy())


def test_header_shape_is_upright_and_only_for_plain_jpeg_and_png():
    assert header_shape((DATA / "exif_rotate6.jpg").read_bytes()) == (96, 64, 6)  # stored 96 x 64, turned
    assert header_shape((DATA / "rgba.png").read_bytes())[2] == 1
    for name in ("rgb16.png", "rgb.bmp", "animated.gif", "rgb8.tif", "lossy.webp"):
        assert header_shape((DATA / name).read_bytes()) is None, name
    with pytest.raises(DecodeError, match="empty"):
        header_shape(b"")


def test_one_pixel_and_renamed_files_decode_by_content(decoder, tmp_path):
    assert decoder(read("one_pixel.png")).numpy().tolist() == [[[200, 30, 60]]]
    for source, fake in (("one_pixel.png", "photo.jpg"), ("lossy.webp", "photo.png"), ("rgb8.tif", "scan.webp")):
        renamed = tmp_path / fake
        renamed.write_bytes(read(source))
        np.testing.assert_array_equal(decoder(renamed.read_bytes()).numpy(), decoder(read(source)).numpy())


def test_depth_option_is_checked():
    with pytest.raises(ValueError, match="depth"):
        Decoder(depth="clip")


# ---------------------------------------------------------------- --max-pixels from headers


def _tiff_with_size(width: int, height: int) -> bytes:
    data = bytearray(read("rgb8.tif"))
    offset = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            data[entry + 8 : entry + 12] = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    return bytes(data)


def test_max_pixels_refuses_big_headers_before_decoding(monkeypatch):
    import tensorflow_io as tfio

    def never(*args, **kwargs):
        raise AssertionError("decoded although the header was too big")

    monkeypatch.setattr(tfio.experimental.image, "decode_tiff", never)
    monkeypatch.setattr(tfio.image, "decode_webp", never)
    monkeypatch.setattr(tfio.image, "decode_dicom_image", never)
    webp = bytearray(read("alpha_lossless.webp"))
    webp[21:25] = struct.pack("<I", (15999 << 14) | 15999)  # VP8L: width-1 and height-1, 14 bits each
    dicom = bytearray(read("window.dcm"))
    for tag in (b"\x28\x00\x10\x00US", b"\x28\x00\x11\x00US"):  # (0028,0010) Rows, (0028,0011) Columns
        value = dicom.index(tag) + 8
        dicom[value : value + 2] = struct.pack("<H", 30000)
    for data, size in ((_tiff_with_size(30000, 30000), "30000x30000"), (webp, "16000x16000"), (dicom, "30000x30000")):
        with pytest.raises(DecodeError, match=size) as info:
            Decoder()(bytes(data))
        assert info.value.kind == "TooLarge"
    assert check_image_bytes(read("lossy.webp"), max_pixels=96 * 64) == "webp"
    with pytest.raises(DecodeError, match="96x64"):
        check_image_bytes(read("lossy.webp"), max_pixels=96 * 64 - 1)


def test_a_header_without_a_size_is_refused_before_decoding(monkeypatch):
    import tensorflow_io as tfio

    def never(*args, **kwargs):
        raise AssertionError("decoded although the header gave no size")

    monkeypatch.setattr(tfio.experimental.image, "decode_tiff", never)
    monkeypatch.setattr(tfio.image, "decode_webp", never)
    no_width = bytearray(read("rgb8.tif"))
    offset = struct.unpack("<I", no_width[4:8])[0]
    for i in range(struct.unpack("<H", no_width[offset : offset + 2])[0]):
        entry = offset + 2 + 12 * i
        if struct.unpack("<H", no_width[entry : entry + 2])[0] == 256:  # ImageWidth becomes an unknown tag
            no_width[entry : entry + 2] = struct.pack("<H", 65000)
    webp = bytearray(read("lossy.webp"))
    webp[12:16] = b"ABCD"  # no VP8 / VP8L / VP8X chunk first
    for data, name in ((bytes(no_width), "TIFF"), (bytes(webp), "WebP")):
        with pytest.raises(DecodeError, match=f"{name} header is unreadable") as info:
            Decoder()(data)
        assert info.value.kind == "CorruptImage"


def test_a_header_that_understates_its_size_is_caught_after_decoding(monkeypatch):
    import transforms.decode as decode
    from transforms.budget import DecodedSize

    monkeypatch.setattr(decode, "decoded_size", lambda data, fmt, limit=0: DecodedSize(1, 1, 3))
    with pytest.raises(DecodeError, match="decodes to 48x32 = 1536 pixels, over --max-pixels 1000") as info:
        Decoder(max_pixels=1000)(read("rgb8.tif"))
    assert info.value.kind == "TooLarge"
    with pytest.raises(DecodeError, match="decodes to 48x32 x 3 channels = 4608 bytes, over --max-image-bytes") as info:
        Decoder(max_bytes=4607)(read("rgb8.tif"))
    assert info.value.kind == "TooLarge"
    assert Decoder(max_pixels=48 * 32, max_bytes=4608)(read("rgb8.tif")).shape == (32, 48, 3)


# ---------------------------------------------------------------- --max-image-bytes from headers


def _png_header(width: int, height: int, depth: int, color: int) -> bytes:
    """A PNG whose IHDR says this, with one tiny IDAT: its header can be judged, its pixels never decode."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_16_bit_png_under_max_pixels_is_refused_by_its_decoded_bytes():
    """The users' 9400x9400 16-bit PNG (7.5 GB peak): 88.4 Mpx passes --max-pixels, 530 MB decoded does not."""
    data = _png_header(9400, 9400, 16, 2)
    with pytest.raises(DecodeError) as info:
        Decoder()(data)
    assert info.value.kind == "TooLarge"
    assert str(info.value) == (
        "PNG header says 9400x9400 x 3 channels x 2 bytes = 530160000 bytes (505.6 MiB) decoded, "
        "over --max-image-bytes 268435456 (256.0 MiB); raise it to decode this image"
    )
    assert check_image_bytes(_png_header(9400, 9400, 8, 2)) == "png"  # 8-bit RGB: 265 MB, inside the budget


@pytest.mark.parametrize(
    ("name", "nbytes"),
    [
        ("rocket_small.jpg", 64 * 96 * 3),
        ("rgb16.png", 16 * 24 * 3 * 2),
        ("rgb.bmp", 30 * 45 * 3),
        ("animated.gif", None),  # every frame, counted from the file
        ("rgb8.tif", 32 * 48 * 4),
        ("gray16.tif", 24 * 32 * 4 * 2),
        ("alpha_lossless.webp", 32 * 48 * 4),
        ("window.dcm", 12 * 16 * 4),
    ],
)
def test_every_format_is_refused_one_byte_over_its_decoded_bytes_and_decoded_at_them(monkeypatch, name, nbytes):
    from transforms.budget import decoded_size
    from transforms.decode import sniff_format

    data = read(name)
    size = decoded_size(data, sniff_format(data) or "")
    assert size is not None and (nbytes is None or size.nbytes == nbytes)
    assert Decoder(max_bytes=size.nbytes)(data).shape[2] == 3

    def never(*args, **kwargs):
        raise AssertionError("decoding started")

    monkeypatch.setattr(Decoder, "_decode", never)  # had it run, the input would fail as CorruptImage
    with pytest.raises(
        DecodeError, match=f"= {size.nbytes} bytes .* over --max-image-bytes {size.nbytes - 1} "
    ) as info:
        Decoder(max_bytes=size.nbytes - 1)(data)
    assert info.value.kind == "TooLarge"
    assert check_image_bytes(data, max_bytes=size.nbytes) == sniff_format(data)


def test_the_window_decode_is_judged_by_the_whole_image():
    """Whether a record exists must not depend on its crop: a JPEG's window decode is refused as the image is."""
    from transforms.window import ORIENTATION_KEY, RATIO_KEY, WINDOW_KEY

    data = read("rocket_small.jpg")
    params = {RATIO_KEY: 1, WINDOW_KEY: [0, 0, 8, 8], ORIENTATION_KEY: 1}
    sampled = [{"op": "random_resized_crop", "version": 1, "applied": True, "params": params}]
    assert Decoder().decode_for(data, sampled).shape == (8, 8, 3)
    with pytest.raises(DecodeError, match="over --max-image-bytes") as info:
        Decoder(max_bytes=64 * 96 * 3 - 1).decode_for(data, sampled)
    assert info.value.kind == "TooLarge"


DETERMINISM_FILES = ("rgb8.tif", "lossy.webp", "window.dcm", "rgb16.png", "exif_rotate6.jpg", "cmyk.jpg")


def _decoded_digests() -> dict[str, str]:
    import hashlib

    decoder = Decoder()
    return {name: hashlib.sha256(decoder(read(name)).numpy().tobytes()).hexdigest() for name in DETERMINISM_FILES}


def test_decoding_is_deterministic_within_and_across_processes():
    """The same bytes decode to the same pixels: twice in one process, and in a fresh Python (new TF state)."""
    import json
    import subprocess
    import sys

    here = _decoded_digests()
    assert here == _decoded_digests()
    code = (
        "import json; from tests.transforms.test_decode import _decoded_digests; print(json.dumps(_decoded_digests()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=DATA.parent.parent, capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here
