"""What decoding an image costs in memory, read from its header before any pixel is decoded (``--max-image-bytes``).

Pixels alone do not say it: a 16-bit PNG holds two bytes a sample, a GIF or a
DICOM decodes every frame, tensorflow-io returns WebP and TIFF as RGBA and
DICOM as uint32, and a progressive JPEG keeps every DCT coefficient of the
whole image (two bytes a sample) while it decodes, even for a small window.
So the budget is counted in decoded bytes:

    frames x height x width x channels x bytes per sample

as the format's decoder returns them (or the RGB uint8 image made from them
when that is larger), plus a progressive JPEG's coefficient buffer. The
numbers are the decoders' (measured for the JPEG paths: a 9000x9000 4:2:0
JPEG grows a process by 238 MiB decoded whole, and by 237 MiB for a 562x562
window at 1/8 when progressive, 15 MiB when baseline).
"""

from __future__ import annotations

import dataclasses
import struct

from transforms import formats

# Sized for the default local run, one worker process per core. Measured with bench/hostile.py (docs/reliability.md,
# "Memory per image"): an image right at this budget peaks a worker at 2.5-3.6 GiB (a whole 9459x9459 JPEG, an
# 8192x8192 DICOM), so the two workers of a 2-core, 24 GiB machine stay under a third of it even both at once;
# and every 8-bit RGB image under the default --max-pixels still fits (89,478,485 x 3 bytes < 2**28).
DEFAULT_MAX_IMAGE_BYTES = 2**28  # 256 MiB

PROGRESSIVE_SOF = (0xC2, 0xC6, 0xCA, 0xCE)


@dataclasses.dataclass(frozen=True)
class DecodedSize:
    """The buffers decoding one image fills, from its header: the decoder's output and what it keeps beside it."""

    height: int
    width: int
    channels: int  # as the decoder returns them (TensorFlow's channels=0, tensorflow-io's RGBA...)
    sample_bytes: int = 1  # 2 for 16-bit PNG and TIFF, 4 for DICOM (tensorflow-io returns uint32)
    frames: int = 1  # GIF and DICOM decode every frame
    extra: int = 0  # held beside the output while decoding: a progressive JPEG's DCT coefficients

    @property
    def nbytes(self) -> int:
        """The decoded bytes this image costs (the larger of the decoder's output and its RGB uint8 image)."""
        output = self.frames * self.height * self.width * self.channels * self.sample_bytes
        return max(output, self.height * self.width * 3) + self.extra

    def window(self, height: int, width: int) -> DecodedSize:
        """The cost of decoding only a ``height`` x ``width`` window of it (``transforms.window``)."""
        return dataclasses.replace(self, height=height, width=width, frames=1)

    def describe(self) -> str:
        """E.g. ``9400x9400 x 3 channels x 2 bytes``, as an error message shows it."""
        text = f"{self.width}x{self.height}"
        text += f" x {self.frames} frames" if self.frames > 1 else ""
        text += f" x {self.channels} channel{'s' if self.channels > 1 else ''} x {self.sample_bytes} byte"
        text += "s" if self.sample_bytes > 1 else ""
        if self.extra:
            text += f" + {self.extra} bytes of DCT coefficients (progressive JPEG)"
        return text


def mib(nbytes: int) -> str:
    """Bytes as MiB for a person, beside the exact number."""
    return f"{nbytes / 2**20:.1f} MiB"


def decoded_size(data: bytes, fmt: str, inflate_limit: int = DEFAULT_MAX_IMAGE_BYTES) -> DecodedSize | None:
    """The decoded size of a supported format's image from its header, or None when the header gives no size.

    Raises ``struct.error``/``ValueError`` for a header that cannot be parsed, and ``DecodeError`` for a
    deflated DICOM whose header does not inflate within ``inflate_limit`` bytes (``formats.dicom_header``).
    """
    if fmt == "jpeg":
        return _jpeg(data)
    if fmt == "png":
        return _png(data)
    if fmt == "gif":
        width, height = struct.unpack("<HH", data[6:10])
        return DecodedSize(height, width, 3, frames=formats.gif_frames(data))  # TensorFlow: RGB, every frame
    if fmt == "bmp":
        width, height = struct.unpack("<ii", data[18:26])
        header = struct.unpack("<I", data[14:18])[0]
        bpp = struct.unpack("<H", data[24:26] if header == 12 else data[28:30])[0]
        return DecodedSize(abs(height), abs(width), 4 if bpp == 32 else 3)
    if fmt == "tiff":
        tags = formats.tiff_ifd(data)
        samples, bits = tags.get(277, (1,))[0], max(tags.get(258, (1,)))
        # libtiff's RGBA reader returns 4 channels; 16-bit strips read with numpy keep their samples at 2 bytes
        return DecodedSize(tags[257][0], tags[256][0], max(4, samples), 2 if bits > 8 else 1)
    if fmt == "webp":
        info = formats.webp_info(data)
        return None if info is None else DecodedSize(info[0], info[1], 4)  # tensorflow-io: RGBA
    if fmt == "dicom":
        header = formats.dicom_header(data, inflate_limit)
        if header.rows is None or header.columns is None:
            return None
        return DecodedSize(header.rows, header.columns, header.samples, 4, header.frames)  # uint32, every frame
    return None


def _jpeg(data: bytes) -> DecodedSize | None:
    """From the first frame header: its size, its components, and for a progressive JPEG its coefficients."""
    for marker, start, _end in formats.jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if start + 9 >= len(data):  # the frame header whole, and a byte more
                return None
            height, width = struct.unpack(">HH", data[start + 5 : start + 9])
            count = data[start + 9]
            factors = [data[start + 11 + 3 * i] for i in range(count) if start + 11 + 3 * i < len(data)]
            extra = _coefficients(height, width, factors) if marker in PROGRESSIVE_SOF else 0
            return DecodedSize(height, width, max(count, 1), extra=extra)
    return None


def _coefficients(height: int, width: int, factors: list[int]) -> int:
    """libjpeg's whole-image coefficient arrays for a progressive scan: 64 two-byte coefficients per 8x8 block."""
    if not factors:
        return 0
    h_max = max(max(f >> 4 for f in factors), 1)
    v_max = max(max(f & 0x0F for f in factors), 1)
    blocks = 0
    for f in factors:
        rows = -(-height * max(f & 0x0F, 1) // v_max)
        columns = -(-width * max(f >> 4, 1) // h_max)
        blocks += -(-rows // 8) * -(-columns // 8)
    return blocks * 64 * 2


def _png(data: bytes) -> DecodedSize | None:
    """From IHDR: channels by colour type (a palette becomes RGB, or RGBA with a tRNS chunk), 2 bytes if 16-bit."""
    if data[12:16] != b"IHDR" or len(data) < 26:
        return None
    width, height = struct.unpack(">II", data[16:24])
    depth, color = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color, 4)
    if color in (0, 2, 3) and _png_has_trns(data):
        channels += 1
    return DecodedSize(height, width, channels, 2 if depth == 16 else 1)


def _png_has_trns(data: bytes) -> bool:
    """Whether a tRNS chunk comes before the image data (TensorFlow then adds an alpha channel)."""
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False
