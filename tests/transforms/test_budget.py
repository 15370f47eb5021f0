"""Decoded bytes from headers (``transforms.budget``): channels, bytes per sample, frames and a progressive JPEG's
coefficients counted for every format, on small real files.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.data.make_fixtures import deflated_dicom, dicom_bytes
from tests.helpers import read_data as read
from transforms.budget import DecodedSize, decoded_size
from transforms.decode import sniff_format


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _size(data: bytes) -> DecodedSize:
    size = decoded_size(data, sniff_format(data) or "")
    assert size is not None
    return size


def test_decoded_bytes_count_channels_bytes_per_sample_and_frames():
    rgb = Image.new("RGB", (40, 30), (10, 20, 30))
    palette = rgb.convert("P")
    palette.info["transparency"] = 0
    frames = [Image.new("RGB", (60, 50), (i * 20, 0, 0)) for i in range(12)]
    cases = {
        "baseline RGB JPEG": (_encoded(rgb, "JPEG"), 30 * 40 * 3),
        "gray JPEG (made RGB)": (_encoded(rgb.convert("L"), "JPEG"), 30 * 40 * 3),
        "CMYK JPEG": (read("cmyk.jpg"), 32 * 48 * 4),
        "RGBA PNG": (read("rgba.png"), 41 * 50 * 4),
        "16-bit RGB PNG": (read("rgb16.png"), 16 * 24 * 3 * 2),
        "palette PNG with tRNS": (_encoded(palette, "PNG"), 30 * 40 * 4),
        "palette PNG": (_encoded(rgb.convert("P"), "PNG"), 30 * 40 * 3),
        "GIF, every frame": (_encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), 12 * 50 * 60 * 3),
        "24-bit BMP": (read("rgb.bmp"), 30 * 45 * 3),
        "32-bit BMP": (read("zero_alpha32.bmp"), 30 * 45 * 4),
        "8-bit TIFF (libtiff's RGBA)": (read("rgb8.tif"), 32 * 48 * 4),
        "16-bit gray TIFF": (read("gray16.tif"), 24 * 32 * 4 * 2),
        "WebP (RGBA)": (read("lossy.webp"), 64 * 96 * 4),
        "DICOM (uint32)": (read("window.dcm"), 12 * 16 * 4),
        "deflated DICOM": (deflated_dicom(np.zeros((12, 16), np.uint16)), 12 * 16 * 4),
    }
    for name, (data, expected) in cases.items():
        assert _size(data).nbytes == expected, name
    multi = bytearray(dicom_bytes(np.zeros((6, 4), np.uint16)))  # (0028,0008) Number of Frames, inserted
    at = bytes(multi).index(b"\x28\x00\x10\x00US")
    multi[at:at] = b"\x28\x00\x08\x00IS\x02\x003 "
    size = _size(bytes(multi))
    assert (size.frames, size.nbytes) == (3, 3 * 6 * 4 * 4)


def test_a_progressive_jpeg_counts_its_coefficients_even_for_a_window():
    """libjpeg keeps every DCT coefficient (2 bytes a sample) of a progressive JPEG: measured 231 MiB at 9000x9000."""
    rgb = Image.new("RGB", (100, 60), (200, 100, 50))
    baseline = _size(_encoded(rgb, "JPEG", subsampling=2))
    progressive = _size(_encoded(rgb, "JPEG", subsampling=2, progressive=True))
    assert baseline.extra == 0
    # 4:2:0: luma 100x60 in 13x8 blocks, each chroma 50x30 in 7x4 blocks; 64 coefficients of 2 bytes a block
    assert progressive.extra == (13 * 8 + 2 * 7 * 4) * 64 * 2
    assert progressive.nbytes == 60 * 100 * 3 + progressive.extra
    window = progressive.window(8, 10)
    assert window.nbytes == 8 * 10 * 3 + progressive.extra and baseline.window(8, 10).nbytes == 8 * 10 * 3
    assert "DCT coefficients" in progressive.describe()


def test_describe_names_each_factor():
    assert DecodedSize(9400, 9400, 3, 2).describe() == "9400x9400 x 3 channels x 2 bytes"
    assert DecodedSize(50, 60, 3, 1, 12).describe() == "60x50 x 12 frames x 3 channels x 1 byte"
