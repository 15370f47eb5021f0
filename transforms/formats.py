"""Format-specific header parsing and pixel readers behind ``transforms.decode``.

Headers are parsed here in plain Python (cheap, no TensorFlow): TIFF IFDs, WebP
chunks, the DICOM data set up to the pixel data and BMP palettes; a JPEG's EXIF
orientation is read by Pillow.
Pixels of TIFF, WebP and DICOM come from tensorflow-io, imported only when
such a file is met; 16-bit TIFF strips (none / Deflate, predictor 1 or 2) are
read here with numpy so their depth survives to ``map_depth``.

Deflate streams inflated here are inflated only as far as their header
promises, and refused (``DecodeError``) once they go past it, so a small file
never becomes gigabytes: 16-bit TIFF strips (RowsPerStrip rows each), and a
deflated DICOM data set (its header, then its rows x columns x frames x
samples x bits, then at most ``DICOM_TRAILING_BYTES``), which is handed to
tensorflow-io uncompressed. The other codecs' libraries decode into buffers
of the header's size (libjpeg, libpng, giflib, libwebp, libtiff's strips;
measured: a PNG or 8-bit TIFF whose data inflates to 1 GiB past its header
does not grow the process).

Bit depth: images with more than 8 bits per sample are mapped to uint8 by
``map_depth``: ``"scale"`` (default) is round(v * 255 / 65535) = round(v / 257),
so 0 -> 0 and 65535 -> 255 whatever the content; ``"range"`` stretches the
image's own min..max (over its colour channels) to 0..255 (a flat image falls
back to ``"scale"``). Alpha is always scaled. DICOM monochrome images use
their Window Center / Width (the first pair, standard linear VOI function
applied to stored value * RescaleSlope + RescaleIntercept) when present, else
their own min..max (a flat one is black).
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
import zlib
from collections.abc import Iterator
from typing import Any

NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "webp": "WebP",
    "dicom": "DICOM",
    "avif": "AVIF",
    "heic": "HEIC/HEIF",
    "jpeg2000": "JPEG 2000",
    "jpegxl": "JPEG XL",
    "psd": "Photoshop PSD",
}
SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM"
UNSUPPORTED = ("avif", "heic", "jpeg2000", "jpegxl", "psd")
DEPTH_MODES = ("scale", "range")
EXIF_ORIENTATION = 0x0112  # the EXIF (TIFF) tag

HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
# TIFF compressions the bundled libtiff decodes; anything else comes back as black, so it is refused.
TIFF_COMPRESSIONS = {1: "none", 2: "CCITT RLE", 3: "CCITT G3", 4: "CCITT G4", 5: "LZW", 6: "old JPEG", 7: "JPEG"}
TIFF_COMPRESSIONS.update({8: "Deflate", 32946: "Deflate", 32773: "PackBits", 34925: "LZMA", 50000: "ZSTD"})
TIFF_SUPPORTED = "1- to 16-bit integer samples, compression " + ", ".join(sorted(set(TIFF_COMPRESSIONS.values())))
DICOM_UNSUPPORTED_TS = {
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG 2000" for n in (90, 91, 92, 93, 201, 202, 203)},
    **{f"1.2.840.10008.1.2.4.{n}": "MPEG/HEVC video" for n in range(100, 109)},
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG XL" for n in (110, 111, 112)},
}
DICOM_SUPPORTED = "uncompressed, RLE, JPEG and JPEG-LS pixel data"


class DecodeError(ValueError):
    """An input that is not a decodable image; ``kind`` is a short error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def unsupported(what: str, supported: str = SUPPORTED) -> DecodeError:
    return DecodeError("UnsupportedFormat", f"{what} is not supported; supported: {supported}")


def sniff_more(data: bytes) -> str | None:
    """Formats beyond TensorFlow's own four, by their magic bytes."""
    if data[128:132] == b"DICM":
        return "dicom"
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        end = min(max(int.from_bytes(data[:4], "big"), 16), 64)
        brands = [data[8:12]] + [data[i : i + 4] for i in range(16, end, 4)]
        if b"avif" in brands or b"avis" in brands:
            return "avif"
        if any(brand in HEIF_BRANDS for brand in brands):
            return "heic"
    if data[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2000"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\0\0\0\x0cJXL \r\n\x87\n":
        return "jpegxl"
    if data[:4] == b"8BPS":
        return "psd"
    return None


# ---------------------------------------------------------------- depth mapping


def map_depth(image: Any, depth: str, colors: int) -> Any:
    """uint16 [H, W, C] to uint8: colour channels by ``depth``, any alpha after them scaled."""
    import tensorflow as tf

    # int32 holds every intermediate below (at most 65535 * 510 + 65535), at half int64's memory
    values = tf.cast(image, tf.int32)
    scaled = tf.cast((values + 128) // 257, tf.uint8)  # round(v / 257): v / 257 is never exactly .5
    if depth == "scale":
        return scaled
    color = values[:, :, :colors]
    lo, hi = tf.reduce_min(color), tf.reduce_max(color)
    span = tf.maximum(hi - lo, 1)
    stretched = tf.cast(((color - lo) * 510 + span) // (2 * span), tf.uint8)  # round half up of 255 (v-lo)/span
    stretched = tf.concat([stretched, scaled[:, :, colors:]], axis=2)
    return tf.cond(hi > lo, lambda: stretched, lambda: scaled)


def stretch_uint8(image: Any) -> Any:
    """uint8 [H, W, C] colour stretched to its own min..max (used where the depth was already reduced)."""
    import tensorflow as tf

    values = tf.cast(image, tf.int32)
    lo, hi = tf.reduce_min(values), tf.reduce_max(values)
    span = tf.maximum(hi - lo, 1)
    stretched = tf.cast(((values - lo) * 510 + span) // (2 * span), tf.uint8)
    return tf.cond(hi > lo, lambda: stretched, lambda: image)


# ---------------------------------------------------------------- PNG, JPEG, BMP


def png_bit_depth(data: bytes) -> int:
    """The IHDR's bit depth (8 when unreadable). Kept: Pillow has no public bit depth (16-bit RGB opens as "RGB")."""
    return data[24] if data[12:16] == b"IHDR" and len(data) > 25 else 8


def read_png16(data: bytes, depth: str) -> Any:
    """A 16-bit PNG decoded at full depth, then mapped to uint8 (alpha, if any, last)."""
    import tensorflow as tf

    image = tf.io.decode_png(data, channels=0, dtype=tf.uint16)
    channels = int(image.shape[2])
    return map_depth(image, depth, channels - 1 if channels % 2 == 0 else channels)


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """A JPEG's header segments as (marker, offset of its FF byte, offset past it), up to the first scan.

    Stand-alone markers (SOI, TEM, RSTn) and fill bytes are skipped; the walk ends at a byte that is not a
    marker, at the start of scan (yielded, with the offset of the data after its header), or at the end.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        yield marker, i, end
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        i = end


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8), read by Pillow; 1 when there is no EXIF or it is unreadable.

    ``JpegImageFile`` reads the markers up to the scan, not the pixels, and unlike ``Image.open`` applies
    no process-wide decompression-bomb limit (``--max-pixels`` was checked before). Measured against the
    former marker walk + tensorflow-io's ``decode_jpeg_exif`` (the same orientation on all 15 JPEGs of
    examples/photos, tests/data and orientations 1-8; three interleaved runs on a loaded 2-core host):
    68-160 against 132-431 us a call with EXIF, 32-97 against 3-12 us without (at most 1% of a 9-11 ms
    render), and no tensorflow-io import (134 ms) for JPEGs.
    """
    from PIL import Image, JpegImagePlugin

    try:
        with JpegImagePlugin.JpegImageFile(io.BytesIO(data)) as image:
            raw = image.info.get("exif")
        if not raw:
            return 1
        # The EXIF block alone: ``getexif()`` would fall back to an XMP tiff:Orientation, which the former
        # reader (and TensorFlow's ImageNet tooling) ignores; reading it would rotate such files differently.
        exif = Image.Exif()
        exif.load(raw)
        orientation = exif.get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken header or EXIF block must not lose the picture (the decoder judges the pixels)
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def orient(image: Any, orientation: int) -> Any:
    """Applies EXIF orientation so the image is upright as viewers show it."""
    import tensorflow as tf

    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return tf.transpose(image, [1, 0, 2])
    if orientation == 6:
        return tf.image.rot90(image, k=3)  # 90 degrees clockwise
    if orientation == 7:
        return tf.transpose(image[::-1, ::-1], [1, 0, 2])
    if orientation == 8:
        return tf.image.rot90(image, k=1)
    return image


# Each EXIF orientation as a flip then an optional transpose: (reverse rows, reverse columns, transpose), 1..8.
ORIENT_STEPS = ((0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))


def orient_graph(image: Any, orientation: Any) -> Any:
    """``orient`` with the orientation a tensor (1..8), for use inside a traced function: the same pixels.

    Without branches: a reverse over the chosen axes, then a transpose by a chosen permutation. An 8-way
    ``switch_case`` cost each worker about 0.15 s of tracing at start-up; upright images (orientation 1) pass
    through both ops unchanged (TensorFlow forwards an empty reverse and an identity transpose).
    """
    import tensorflow as tf

    steps = tf.gather(tf.constant(ORIENT_STEPS) > 0, tf.clip_by_value(orientation, 1, 8) - 1)
    flipped = tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), steps[:2]))
    perm = tf.where(steps[2], tf.constant([1, 0, 2]), tf.constant([0, 1, 2]))
    return tf.ensure_shape(tf.transpose(flipped, perm), [None, None, image.shape[-1]])


def check_bmp(data: bytes) -> None:
    """Refuses BMP layouts TensorFlow decodes wrongly or not at all."""
    if struct.unpack("<I", data[14:18])[0] < 40:
        return  # OS/2 header: 8/24-bit only
    bpp, compression = struct.unpack("<HI", data[28:34])
    if bpp not in (8, 24, 32) or compression not in (0, 3):
        kind = f"{bpp} bits per pixel" if bpp not in (8, 24, 32) else f"compression {compression} (RLE/embedded)"
        raise unsupported(f"BMP with {kind}", "BMP with 8 (palette or grey), 24 or 32 bits per pixel, uncompressed")


def bmp_palette(data: bytes) -> list[tuple[int, int, int]] | None:
    """The colour table of an 8-bit BMP (TensorFlow returns its indices as grey), None if grey or absent."""
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:
        bpp, size, count = struct.unpack("<H", data[24:26])[0], 3, 256
    else:
        bpp, size = struct.unpack("<H", data[28:30])[0], 4
        count = struct.unpack("<I", data[46:50])[0] or 256
    if bpp != 8:
        return None
    start = 14 + header
    table = data[start : start + size * min(count, 256)]
    colors = [(table[i + 2], table[i + 1], table[i]) for i in range(0, len(table) - size + 1, size)]
    colors += [(0, 0, 0)] * (256 - len(colors))
    return None if all(c == (i, i, i) for i, c in enumerate(colors)) else colors


# ---------------------------------------------------------------- TIFF

_TIFF_INT_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}
_TIFF_WANTED = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 338, 339}


def tiff_ifd(data: bytes) -> dict[int, tuple[int, ...]]:
    """The integer tags of the first IFD (classic or BigTIFF); raises struct.error/ValueError if unreadable."""
    e = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(e + "H", data[2:4])[0] == 43
    word, inline = ("Q", 8) if big else ("I", 4)  # offsets, counts and inline values are this wide
    offset = struct.unpack(e + word, data[8:16] if big else data[4:8])[0]
    start = offset + (8 if big else 2)
    (entries,) = struct.unpack(e + ("Q" if big else "H"), data[offset:start])
    tags = {}
    for i in range(entries):
        pos = start + i * (4 + 2 * inline)
        tag, kind = struct.unpack(e + "HH", data[pos : pos + 4])
        if tag not in _TIFF_WANTED or kind not in _TIFF_INT_TYPES:
            continue
        (count,) = struct.unpack(e + word, data[pos + 4 : pos + 4 + inline])
        code = _TIFF_INT_TYPES[kind]
        size = struct.calcsize(code) * count
        value = pos + 4 + inline
        if size > inline:
            value = struct.unpack(e + word, data[value : value + inline])[0]
        raw = data[value : value + size]
        if count == 0 or len(raw) < size:
            raise ValueError(f"tag {tag} points past the end of the file")
        tags[tag] = struct.unpack(f"{e}{count}{code}", raw)
    if 256 not in tags or 257 not in tags:
        raise ValueError("no ImageWidth/ImageLength")
    return tags


def tiff_size(data: bytes) -> tuple[int, int]:
    tags = tiff_ifd(data)
    return tags[257][0], tags[256][0]


def read_tiff(data: bytes, depth: str) -> tuple[Any, bool]:
    """(uint8 [H, W, C], alpha is premultiplied) from the first page of a TIFF."""
    import tensorflow as tf

    try:
        tags = tiff_ifd(data)
    except (struct.error, ValueError) as exc:
        raise DecodeError("CorruptImage", f"TIFF directory is unreadable or truncated ({exc})") from None
    bits, sample_format = tags.get(258, (1,)), tags.get(339, (1,))[0]
    compression = tags.get(259, (1,))[0]
    if sample_format == 3:
        raise unsupported(f"TIFF with {bits[0]}-bit floating-point samples", f"TIFF with {TIFF_SUPPORTED}")
    if sample_format not in (1, 2) or max(bits) > 16 or len(set(bits)) > 1:
        raise unsupported(f"TIFF with {'/'.join(map(str, bits))}-bit samples", f"TIFF with {TIFF_SUPPORTED}")
    if compression not in TIFF_COMPRESSIONS:
        raise unsupported(f"TIFF compression {compression}", f"TIFF with {TIFF_SUPPORTED}")
    offsets, counts = tags.get(273, tags.get(324, ())), tags.get(279, tags.get(325, ()))
    if any(o + c > len(data) for o, c in zip(offsets, counts, strict=False)):
        raise DecodeError("CorruptImage", f"TIFF is truncated: image data runs past the end ({len(data)} bytes)")
    alpha = tags.get(338, (0,))[0] in (1, 2)
    if bits[0] == 16:
        values = _tiff16(data, tags)
        if values is not None:
            colors = 3 if tags.get(262, (1,))[0] == 2 else 1
            image = tf.constant(values[:, :, : colors + alpha])  # unspecified extra samples dropped
            return map_depth(image, depth, colors), tags.get(338, (0,))[0] == 1
        if sample_format == 2:
            raise unsupported(f"signed 16-bit TIFF with compression {compression}", "none or Deflate")
    elif sample_format == 2:
        raise unsupported("TIFF with signed 8-bit samples", f"TIFF with {TIFF_SUPPORTED}")
    import tensorflow_io as tfio

    # libtiff's RGBA reader: any photometric, palette, 1..16 bits (16 reduced to its high byte), premultiplied alpha.
    rgba = tfio.experimental.image.decode_tiff(data)
    image = rgba if alpha else rgba[:, :, :3]
    if bits[0] == 16 and depth == "range":
        image = tf.concat([stretch_uint8(image[:, :, :3]), image[:, :, 3:]], axis=2)
    return image, alpha


def _inflate_strips(strips: list[bytes], strip_bytes: int, need: int) -> bytes:
    """Deflate strips, each inflated at most to the ``strip_bytes`` its header gives, and no further than ``need``.

    A strip that would inflate past its size (a small file claiming gigabytes) is refused with ``DecodeError``
    once it has given ``strip_bytes`` + 1 bytes, before the rest is inflated.
    """
    out = bytearray()
    for i, strip in enumerate(strips):
        inflated = zlib.decompressobj().decompress(strip, strip_bytes + 1)
        if len(inflated) > strip_bytes:
            raise DecodeError(
                "CorruptImage",
                f"TIFF strip {i} inflates past the {strip_bytes} bytes its header gives; refused before inflating "
                "the rest",
            )
        out += inflated
        if len(out) >= need:
            break
    return bytes(out)


def _tiff16(data: bytes, tags: dict[int, tuple[int, ...]]) -> Any:
    """uint16 [H, W, S] for chunky, striped, uncompressed or Deflate 16-bit grey/RGB; None for other layouts."""
    import numpy as np

    height, width = tags[257][0], tags[256][0]
    samples, photometric = tags.get(277, (1,))[0], tags.get(262, (1,))[0]
    compression, predictor = tags.get(259, (1,))[0], tags.get(317, (1,))[0]
    layout_ok = tags.get(284, (1,))[0] == 1 and 322 not in tags and 273 in tags and 279 in tags
    if not layout_ok or compression not in (1, 8, 32946) or predictor not in (1, 2) or photometric not in (0, 1, 2):
        return None
    need = height * width * samples * 2
    strip_bytes = min(tags.get(278, (height,))[0], height) * width * samples * 2  # RowsPerStrip rows
    try:
        strips = [data[o : o + c] for o, c in zip(tags[273], tags[279], strict=True)]
        raw = b"".join(strips) if compression == 1 else _inflate_strips(strips, strip_bytes, need)
    except DecodeError:
        raise
    except (zlib.error, ValueError) as exc:
        raise DecodeError("CorruptImage", f"TIFF strip data cannot be decoded ({exc})") from None
    if len(raw) < need:
        raise DecodeError("CorruptImage", f"TIFF is truncated: {len(raw)} of {need} pixel bytes")
    order = "<" if data[:2] == b"II" else ">"
    values = np.frombuffer(raw[:need], dtype=order + "u2").reshape(height, width, samples).astype(np.uint16)
    if predictor == 2:
        values = np.cumsum(values, axis=1, dtype=np.uint16)  # horizontal differencing, modulo 2**16
    if tags.get(339, (1,))[0] == 2:
        values = values ^ np.uint16(0x8000)  # signed to offset binary: -32768 -> 0, 32767 -> 65535
    if photometric == 0:
        colors = 1 if samples < 3 else 3
        values[:, :, :colors] = 65535 - values[:, :, :colors]
    return values


# ---------------------------------------------------------------- WebP


def webp_info(data: bytes) -> tuple[int, int, bool] | None:
    """(height, width, animated) from the first chunk, or None."""
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF, False
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = struct.unpack("<I", data[21:25])[0]
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, False
    if chunk == b"VP8X" and len(data) >= 30:
        width, height = int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return height, width, bool(data[20] & 0x02)
    return None


def read_webp(data: bytes) -> Any:
    """RGBA uint8 (straight alpha, 255 when the file has none) of a still WebP."""
    info = webp_info(data)
    if info is not None and info[2]:
        raise unsupported("animated WebP", "still (single-frame) WebP, lossy or lossless")
    import tensorflow_io as tfio

    return tfio.image.decode_webp(data)


# ---------------------------------------------------------------- DICOM

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _dicom_element(data: bytes, pos: int, e: str, explicit: bool) -> tuple[int, int, int, int]:
    """(group, element, value position, length) of the element at pos."""
    group, element = struct.unpack(e + "HH", data[pos : pos + 4])
    if group == 0xFFFE or not explicit:  # items and delimiters carry no VR
        return group, element, pos + 8, struct.unpack(e + "I", data[pos + 4 : pos + 8])[0]
    if data[pos + 4 : pos + 6] in _LONG_VRS:
        return group, element, pos + 12, struct.unpack(e + "I", data[pos + 8 : pos + 12])[0]
    return group, element, pos + 8, struct.unpack(e + "H", data[pos + 6 : pos + 8])[0]


def _skip_undefined(data: bytes, pos: int, e: str, explicit: bool, level: int = 0) -> int:
    """The position after the delimiter that closes an undefined-length sequence or item."""
    if level > 16:
        raise ValueError("sequences nested too deep")
    while pos + 8 <= len(data):
        group, element, pos, length = _dicom_element(data, pos, e, explicit)
        if group == 0xFFFE and element in (0xE00D, 0xE0DD):
            return pos
        pos = _skip_undefined(data, pos, e, explicit, level + 1) if length == 0xFFFFFFFF else pos + length
    raise ValueError("unterminated sequence")


DEFLATED_TS = "1.2.840.10008.1.2.1.99"  # the data set after the file meta group is one raw deflate stream
EXPLICIT_LE_TS = "1.2.840.10008.1.2.1"  # what a deflated data set is once inflated
# Elements allowed after the pixel data of a deflated data set (trailing padding, signatures), beyond what the
# header promises: the stream is refused once it inflates past the header, the pixels and this.
DICOM_TRAILING_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class DicomHeader:
    """What ``dicom_header`` reads up to the pixel data: the transfer syntax, the image's size and layout."""

    ts: str = ""
    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    samples: int = 1
    bits_allocated: int | None = None
    pixels: bool = False  # the data set has a Pixel Data element
    pixel_bytes: int | None = None  # its length; None when undefined (encapsulated frames)
    pixel_offset: int = 0  # where its value starts, in the data set as read (inflated, for a deflated one)
    truncated: bool = False  # its value runs past the end of the file

    def promised_bytes(self) -> int:
        """The pixel data's length by rows, columns, frames, samples and bits allocated (16 when absent)."""
        bits = self.bits_allocated or 16
        return ((self.rows or 0) * (self.columns or 0) * self.frames * self.samples * bits + 7) // 8


class _NeedMore(Exception):
    """The bytes inflated so far end before the pixel data element: inflate more."""


def _dicom_meta(data: bytes) -> tuple[str, int]:
    """The transfer syntax and the offset of the data set after the file meta group."""
    ts, pos = "", 132
    while data[pos : pos + 2] == b"\x02\x00":  # file meta group: always explicit VR little endian
        group, element, value, length = _dicom_element(data, pos, "<", True)
        if element == 0x0010:
            ts = data[value : value + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = value + length
    return ts, pos


def dicom_header(data: bytes, inflate_limit: int) -> DicomHeader:
    """The header up to the pixel data; raises ``struct.error``/``ValueError`` if unreadable.

    A deflated data set is inflated only as far as its pixel data element, and never past ``inflate_limit``
    bytes (``DecodeError`` ``TooLarge`` if its header alone is longer).
    """
    ts, pos = _dicom_meta(data)
    if ts == DEFLATED_TS:
        return dataclasses.replace(_deflated_header(data[pos:], inflate_limit), ts=ts)
    e = ">" if ts == "1.2.840.10008.1.2.2" else "<"
    header = _dataset_header(data, pos, e, ts != "1.2.840.10008.1.2", complete=True)
    return dataclasses.replace(header, ts=ts)


def _dataset_header(data: bytes, pos: int, e: str, explicit: bool, complete: bool) -> DicomHeader:
    """The data set's header fields from ``pos`` up to its pixel data.

    ``complete``: ``data`` holds the whole data set; else it is a prefix, and running out of it before the
    pixel data raises ``_NeedMore``.
    """
    found: dict[str, Any] = {}
    try:
        while pos + 8 <= len(data):
            group, element, value, length = _dicom_element(data, pos, e, explicit)
            if (group, element) == (0x7FE0, 0x0010):
                if not complete and value > len(data):
                    raise _NeedMore
                defined = length != 0xFFFFFFFF
                found.update(pixels=True, pixel_offset=value, pixel_bytes=length if defined else None)
                found["truncated"] = defined and value + length > len(data)
                break
            if group > 0x7FE0:
                break
            if not complete and value + (0 if length == 0xFFFFFFFF else length) > len(data):
                raise _NeedMore
            if (group, element) == (0x0028, 0x0100):
                found["bits_allocated"] = struct.unpack(e + "H", data[value : value + 2])[0]
            if (group, element) == (0x0028, 0x0002):
                found["samples"] = struct.unpack(e + "H", data[value : value + 2])[0]
            if (group, element) in ((0x0028, 0x0010), (0x0028, 0x0011)):
                found["rows" if element == 0x0010 else "columns"] = struct.unpack(e + "H", data[value : value + 2])[0]
            if (group, element) == (0x0028, 0x0008):
                found["frames"] = max(int(data[value : value + length].strip(b"\0 ") or 1), 1)
            pos = _skip_undefined(data, value, e, explicit) if length == 0xFFFFFFFF else value + length
    except (struct.error, ValueError):
        if not complete:
            raise _NeedMore from None
        raise
    if not found.get("pixels") and pos != len(data):
        if not complete:
            raise _NeedMore
        raise ValueError("the data set is truncated")
    return DicomHeader(**found)


def _deflated_header(stream: bytes, limit: int) -> DicomHeader:
    """The header of a deflated data set, inflating it in growing steps only until its pixel data element."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out, pending, step = bytearray(), stream, min(1 << 16, limit + 1)
    while True:
        more = inflater.decompress(pending, step)
        out += more
        pending = inflater.unconsumed_tail
        ended = inflater.eof or (not pending and len(more) < step)  # a full step may have output still to come
        try:
            header = _dataset_header(bytes(out), 0, "<", True, complete=ended)
        except _NeedMore:
            pass
        else:  # whether the pixels are all there is known once inflated (``inflate_dicom``)
            if header.pixel_offset <= limit:
                return header if ended else dataclasses.replace(header, truncated=False)
        if len(out) > limit:
            raise DecodeError(
                "TooLarge",
                f"deflated DICOM header inflates past --max-image-bytes {limit} before its pixel data",
            )
        step = min(2 * step, limit - len(out) + 1)


def inflate_dicom(data: bytes, header: DicomHeader) -> bytes:
    """A deflated DICOM as the same file uncompressed (explicit VR little endian), inflated at most as far as its
    header promises: its header, ``header.promised_bytes()`` of pixels and ``DICOM_TRAILING_BYTES`` more.

    A stream that goes on past that (a small file that would inflate to gigabytes) is refused with
    ``DecodeError`` before the rest is inflated.
    """
    _, pos = _dicom_meta(data)
    limit = header.pixel_offset + header.promised_bytes() + DICOM_TRAILING_BYTES
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    dataset = inflater.decompress(data[pos:], limit + 1)
    if len(dataset) > limit:
        frames = f" x {header.frames} frames" if header.frames > 1 else ""
        raise DecodeError(
            "CorruptImage",
            f"deflated DICOM data set inflates past the {limit} bytes its header promises "
            f"({header.columns}x{header.rows}{frames} x {header.samples} x {header.bits_allocated or 16}-bit "
            f"samples, {DICOM_TRAILING_BYTES} bytes more allowed after them); refused before inflating the rest",
        )
    return _plain_meta(data, pos) + dataset


def _plain_meta(data: bytes, end: int) -> bytes:
    """The preamble and file meta group, naming explicit VR little endian as the transfer syntax."""

    def element(elem: int, vr: bytes, value: bytes) -> bytes:
        return struct.pack("<HH2sH", 0x0002, elem, vr, len(value)) + value

    parts, pos = [], 132
    while pos < end:
        _, elem, value, length = _dicom_element(data, pos, "<", True)
        if elem == 0x0010:
            parts.append(element(0x0010, b"UI", EXPLICIT_LE_TS.encode("ascii") + b"\0"))
        elif elem != 0x0000:  # the group length is counted again below
            parts.append(data[pos : value + length])
        pos = value + length
    body = b"".join(parts)
    return data[:132] + element(0x0000, b"UL", struct.pack("<I", len(body))) + body


def _range_bits(lo: float, hi: float) -> int:
    """DCMTK's rangeToBits: bits its renderer uses for modality values in lo..hi."""
    if lo < 0:
        return (int(abs(lo) - 1) if abs(lo) > abs(hi) else int(abs(hi))).bit_length() + 1
    return max(int(hi).bit_length(), 1)


def _first_number(text: bytes, default: float | None) -> float | None:
    """The first value of a DICOM number string; ``default`` when absent, unreadable or not finite."""
    try:
        value = float(text.decode("ascii").split("\\")[0])
    except (UnicodeDecodeError, ValueError):
        return default
    return value if math.isfinite(value) and abs(value) < 1e12 else default


def check_dicom(data: bytes, inflate_limit: int) -> DicomHeader:
    """The header, refused with ``DecodeError`` where tensorflow-io would fail or mis-read the pixels."""
    try:
        header = dicom_header(data, inflate_limit)
    except DecodeError:
        raise
    except (struct.error, ValueError) as exc:
        raise DecodeError("CorruptImage", f"DICOM header is unreadable ({exc})") from None
    if header.ts in DICOM_UNSUPPORTED_TS:
        name = DICOM_UNSUPPORTED_TS[header.ts]
        what = f"DICOM with {name} pixel data (transfer syntax {header.ts})"
        raise unsupported(what, f"DICOM with {DICOM_SUPPORTED}")
    if not header.pixels:
        raise unsupported("DICOM file without pixel data (not an image)", f"DICOM images with {DICOM_SUPPORTED}")
    if header.truncated:
        raise DecodeError("CorruptImage", f"DICOM pixel data is truncated ({len(data)} bytes)")
    if header.pixel_bytes is not None and header.rows and header.columns:
        need = header.promised_bytes()
        if header.pixel_bytes < need:
            raise DecodeError(
                "CorruptImage",
                f"DICOM says {header.columns}x{header.rows} but holds {header.pixel_bytes} of {need} pixel bytes",
            )
    if header.ts == DEFLATED_TS and (header.pixel_bytes is None or not header.rows or not header.columns):
        raise DecodeError("CorruptImage", "deflated DICOM without a size or with encapsulated pixel data")
    return header


def read_dicom(data: bytes, inflate_limit: int) -> Any:
    """uint8 [H, W, 1 or 3] of the first frame: windowed, or stretched to its own range.

    A deflated data set is inflated here, within what its header promises (``inflate_dicom``), and handed
    to tensorflow-io uncompressed, so DCMTK never inflates it itself. ``inflate_limit``: see ``dicom_header``.
    """
    import tensorflow as tf

    header = check_dicom(data, inflate_limit)
    if header.ts == DEFLATED_TS:
        data = inflate_dicom(data, header)
        header = check_dicom(data, inflate_limit)  # a stream cut short is truncated pixel data
    import tensorflow_io as tfio

    names: tuple[str, ...] = ("BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept")
    names += ("PhotometricInterpretation", "WindowCenter", "WindowWidth")
    ids = tf.constant([getattr(tfio.image.dicom_tags, name) for name in names], tf.uint32)
    tags = dict(zip(names, tfio.image.decode_dicom_data(data, ids).numpy().tolist(), strict=True))
    frames = tfio.image.decode_dicom_image(data, color_dim=True, on_error="strict", scale="preserve", dtype=tf.uint32)
    out = tf.cast(frames[0], tf.float64)
    bits = int(_first_number(tags["BitsStored"], 16) or 16)
    if out.shape[2] == 3:  # colour: 8-bit as is, deeper stretched to its own range
        return tf.cast(out, tf.uint8) if bits <= 8 else _stretch_float(out)
    slope = _first_number(tags["RescaleSlope"], 1.0) or 1.0
    intercept = _first_number(tags["RescaleIntercept"], 0.0) or 0.0
    center, width = _first_number(tags["WindowCenter"], None), _first_number(tags["WindowWidth"], None)
    if center is None or width is None or width <= 0:
        return _stretch_float(out)
    # Undo DCMTK's linear "no VOI" output mapping (MONOCHROME1 is inverted there) to modality values.
    signed = tags["PixelRepresentation"].strip() == b"1"
    stored = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    lo, hi = sorted(s * slope + intercept for s in stored)
    out_bits = _range_bits(lo, hi)
    inverted = tags["PhotometricInterpretation"].strip() == b"MONOCHROME1"
    if inverted:
        out = (2.0**out_bits - 1) - out
    x = lo + out * (hi - lo + 1) / 2.0**out_bits
    # DICOM PS3.3 C.11.2.1.2.1, linear: clipped to 0..255 outside [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2].
    if width <= 1:
        y = tf.where(x <= center - 0.5, 0.0, 255.0)
    else:
        y = tf.clip_by_value(((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0, 0.0, 255.0)
    y = tf.floor(y + 0.5)
    return tf.cast(255.0 - y if inverted else y, tf.uint8)


def _stretch_float(values: Any) -> Any:
    import tensorflow as tf

    lo, hi = tf.reduce_min(values), tf.reduce_max(values)
    scaled = tf.floor((values - lo) * 255.0 / tf.maximum(hi - lo, 1e-300) + 0.5)
    return tf.cast(tf.clip_by_value(scaled, 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------- GIF


def gif_frames(data: bytes) -> int:
    """How many frames a GIF holds (TensorFlow decodes all of them, so all count against --max-pixels)."""
    pos = 13
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 0x07) + 1)
    frames = 0
    n = len(data)
    while pos < n:
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _gif_skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW size, sub-blocks
            frames += 1
            flags = data[pos + 9] if pos + 9 < n else 0
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 0x07) + 1)
            pos = _gif_skip_sub_blocks(data, pos + 1)
        else:
            break  # garbage: the decoder will judge
    return max(frames, 1)


def _gif_skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return pos + 1
