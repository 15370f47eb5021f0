"""Image bytes to RGB uint8 [H, W, 3], recognised by content, not by file name.

JPEG, PNG, GIF (first frame) and BMP go through TensorFlow's decoders; TIFF
(first page), still WebP and DICOM (first frame) through tensorflow-io, which
is imported only when such a file is met (format readers: ``transforms.formats``).
JPEGs are turned upright by their EXIF orientation; CMYK JPEGs (Adobe
inverted or plain) come out RGB from TensorFlow's decoder; 8-bit palette BMPs
get their colour table applied. AVIF, HEIC/HEIF, JPEG 2000, JPEG XL and PSD
are recognised and refused with kind ``UnsupportedFormat``, as are layouts the
decoders cannot read (float TIFF, animated WebP, DICOM without pixel data...).

Grayscale is repeated to three channels. Alpha is composited over a flat
background of grey level ``alpha_fill`` (default 255, white): transparent
pixels become the background instead of whatever colour they happened to
hold, which is what a person sees when the image is shown on a page. An
alpha channel that is zero everywhere is ignored (32-bit BMPs often carry one).

Deeper than 8 bits (16-bit PNG and TIFF) is mapped to uint8 by ``depth``:
``"scale"`` (default, round(v / 257), so 65535 -> 255) or ``"range"`` (the
image's own min..max stretched to 0..255). DICOM uses its window (center /
width) when it has one, else its own range; see ``transforms.formats``.

The header is read first, so an image whose header claims more than
``max_pixels`` pixels, or whose decoding would fill more than ``max_bytes``
(``transforms.budget``: channels, bytes per sample and frames count), is
refused with kind ``TooLarge`` before any memory is spent decoding it. Every
supported format gives its size in its header; a file whose header does not
is refused as ``CorruptImage``. Streams are inflated only as far as the
header promises (deflated DICOM, 16-bit TIFF strips; see ``transforms.formats``).
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from typing import Any

from transforms import formats
from transforms.budget import DEFAULT_MAX_IMAGE_BYTES, DecodedSize, decoded_size, mib
from transforms.formats import DEPTH_MODES, NAMES, SUPPORTED, DecodeError
from transforms.tfcall import FlatCall

# Pillow's decompression-bomb threshold: far above real photos, far below harm.
DEFAULT_MAX_PIXELS = 89_478_485


def sniff_format(data: bytes) -> str | None:
    """The image format named by the first bytes, or None.

    Kept hand-written: Pillow 12.3 identifies none of DICOM, AVIF, JPEG 2000 (without OpenJPEG) or an HTML
    page (``UnidentifiedImageError`` for all ten such files of tests/data), so it cannot name what is refused.
    """
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    return formats.sniff_more(data)


def peek_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(height, width) from the header without decoding, or None if not found (``budget.decoded_size``).

    Kept hand-written rather than ``PIL.Image.open(...).size``: the same sizes on every JPEG and PNG of
    examples/photos and tests/data, but not the same answers on edge files, and these answers decide which
    inputs are refused (and with which message in the manifest): a PNG with a bad CRC in an ancillary chunk
    (TensorFlow decodes it, Pillow refuses to open it), a JPEG with a stray byte before its SOF (Pillow skips
    it and gives a size, this refuses it), a JPEG cut after its SOF (Pillow refuses; here the decoder names
    the failure), and Pillow's bomb limit (2 x ``Image.MAX_IMAGE_PIXELS``, process-wide) is not
    ``--max-pixels``. Cost is not the reason: ``header_shape`` takes 5 us a call here against 64 us through
    Pillow (examples/photos, mean per file, median of 7 interleaved rounds), both small beside a 9-11 ms render.
    """
    try:
        size = decoded_size(data, fmt)
    except (struct.error, ValueError):
        return None
    return None if size is None else (size.height, size.width)


def check_image_bytes(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> str:
    """Refuses empty, unknown, unsupported and oversized inputs before decoding; returns the format."""
    return _check_header(data, max_pixels, max_bytes)[0]


def _check_header(data: bytes, max_pixels: int, max_bytes: int) -> tuple[str, DecodedSize]:
    """``check_image_bytes``, also returning what decoding it costs, from its header.

    Every supported format gives its size in its header (a deflated DICOM once its header is inflated, within
    ``max_bytes``): one that does not is refused here, before a decoder allocates anything.
    """
    if not data:
        raise DecodeError("EmptyFile", "the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        head = data[:16].lstrip().lower()
        what = "an HTML page" if head.startswith((b"<!doctype html", b"<html")) else "not an image"
        raise DecodeError("UnknownFormat", f"content is {what} (first bytes {data[:8]!r}); supported: {SUPPORTED}")
    name = NAMES[fmt]
    if fmt in formats.UNSUPPORTED:
        raise formats.unsupported(f"{name} (recognised by content)")
    try:
        size = decoded_size(data, fmt, max_bytes)
    except DecodeError:
        raise
    except (struct.error, ValueError, IndexError):
        size = None
    if size is None:
        if fmt == "dicom":
            formats.check_dicom(data, max_bytes)  # no pixel data, or an unsupported syntax: named as such
        raise DecodeError("CorruptImage", f"{name} header is unreadable or truncated")
    height, width, frames = size.height, size.width, size.frames
    if height <= 0 or width <= 0:
        raise DecodeError("CorruptImage", f"{name} header gives an empty size {width}x{height}")
    # TensorFlow decodes every frame of a GIF, tensorflow-io every frame of a DICOM: all count.
    if height * width * frames > max_pixels:
        what = f" x {frames} frames" if frames > 1 else ""
        raise DecodeError(
            "TooLarge",
            f"{name} header says {width}x{height}{what} = {height * width * frames} pixels, "
            f"over --max-pixels {max_pixels}",
        )
    if size.nbytes > max_bytes:
        raise DecodeError(
            "TooLarge",
            f"{name} header says {size.describe()} = {size.nbytes} bytes ({mib(size.nbytes)}) decoded, "
            f"over --max-image-bytes {max_bytes} ({mib(max_bytes)}); raise it to decode this image",
        )
    return fmt, size


def to_rgb(image: Any, alpha_fill: float, premultiplied: bool = False) -> Any:
    """uint8 [H, W, 1..4] to uint8 [H, W, 3]: gray repeated, alpha composited (graph-safe).

    ``premultiplied``: the colour is already multiplied by alpha (libtiff's RGBA output).
    """
    import tensorflow as tf

    channels = tf.shape(image)[2]
    color = tf.cond(
        channels >= 3,
        lambda: image[:, :, :3],
        lambda: tf.tile(image[:, :, :1], [1, 1, 3]),
    )

    def composite() -> Any:
        alpha = tf.cast(image[:, :, -1:], tf.float32) / 255.0
        weight = 1.0 if premultiplied else alpha
        mixed = tf.cast(color, tf.float32) * weight + float(alpha_fill) * (1.0 - alpha)
        return tf.cast(tf.clip_by_value(tf.round(mixed), 0.0, 255.0), tf.uint8)

    # An alpha channel that is zero everywhere (32-bit BMPs often have one) means "no alpha".
    has_alpha = tf.logical_and(tf.equal(channels % 2, 0), tf.reduce_max(image[:, :, -1]) > 0)
    return tf.cond(has_alpha, composite, lambda: color)


def decode_rgb(data: Any, alpha_fill: float) -> Any:
    """TF ops: JPEG, PNG (8-bit), GIF or BMP bytes to RGB uint8 [H, W, 3], before EXIF orientation."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, None])
    return to_rgb(image, alpha_fill)


@dataclasses.dataclass(frozen=True)
class HeaderInfo:
    """A plain JPEG's or 8-bit PNG's upright size and EXIF orientation, and its decoding cost, from its header."""

    height: int
    width: int
    orientation: int
    decoded: DecodedSize  # as stored (not turned): what decoding it whole costs

    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.orientation


def header_info(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> HeaderInfo | None:
    """``HeaderInfo`` of a plain JPEG or 8-bit PNG from its header alone; else None.

    Raises ``DecodeError`` as the decoder would for what the header alone
    refuses (empty, unknown, too large). None means: decode to learn the
    shape (other formats, 16-bit PNG). The decoded image is still checked
    against this shape (``augment.Renderer.render_encoded``).
    """
    fmt, size = _check_header(data, max_pixels, max_bytes)  # the header read once, for the checks and the shape
    if fmt not in ("jpeg", "png") or (fmt == "png" and formats.png_bit_depth(data) != 8):
        return None
    height, width = size.height, size.width
    orientation = formats.jpeg_orientation(data) if fmt == "jpeg" else 1
    if orientation >= 5:  # transposed: width and height swap
        height, width = width, height
    return HeaderInfo(height, width, orientation, size)


def header_shape(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> tuple[int, int, int] | None:
    """(height, width, EXIF orientation) of ``header_info``, or None."""
    info = header_info(data, max_pixels, max_bytes)
    return None if info is None else info.shape()


class Decoder:
    """Decodes bytes to RGB uint8; TensorFlow's own formats through one traced function (traced on first use).

    ``depth``: how samples deeper than 8 bits become uint8, ``"scale"`` or ``"range"`` (module docstring).
    """

    def __init__(
        self,
        alpha_fill: float = 255.0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        depth: str = "scale",
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    ) -> None:
        if depth not in DEPTH_MODES:
            raise ValueError(f"depth must be one of {DEPTH_MODES}, not {depth!r}")
        self.alpha_fill = float(alpha_fill)
        self.max_pixels = int(max_pixels)
        self.max_bytes = int(max_bytes)
        self.depth = depth
        self._fn: Any = None
        self._window_fn: Any = None

    def _build(self) -> Any:
        import tensorflow as tf

        alpha_fill = self.alpha_fill

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
        def decode(data: Any) -> Any:
            return decode_rgb(data, alpha_fill)

        return FlatCall(decode.get_concrete_function())  # no per-call binding (transforms.tfcall)

    def _decode(self, data: bytes, fmt: str) -> Any:
        import tensorflow as tf

        if fmt == "tiff":
            image, premultiplied = formats.read_tiff(data, self.depth)
            return to_rgb(image, self.alpha_fill, premultiplied)
        if fmt == "webp":
            return to_rgb(formats.read_webp(data), self.alpha_fill)
        if fmt == "dicom":
            return to_rgb(formats.read_dicom(data, self.max_bytes), self.alpha_fill)
        if fmt == "png" and formats.png_bit_depth(data) == 16:
            return to_rgb(formats.read_png16(data, self.depth), self.alpha_fill)
        if fmt == "bmp":
            formats.check_bmp(data)
        if self._fn is None:
            self._fn = self._build()
        image = self._fn(data)
        if fmt == "jpeg":
            return formats.orient(image, formats.jpeg_orientation(data))
        palette = formats.bmp_palette(data) if fmt == "bmp" else None
        if palette is not None:
            image = tf.gather(tf.constant(palette, tf.uint8), tf.cast(image[:, :, 0], tf.int32))
        return image

    def _decode_window(self, data: bytes, fmt: str, plan: Any) -> Any:
        """The planned window of a JPEG (``transforms.window``), turned upright by the plan's orientation."""
        import tensorflow as tf

        from transforms.window import decode_window_graph

        if fmt != "jpeg":
            raise DecodeError(
                "CorruptImage", f"the record's params plan a JPEG window decode, but this is {NAMES[fmt]}"
            )
        if self._window_fn is None:
            alpha_fill = self.alpha_fill

            @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([5], tf.int32)], autograph=False)
            def decode(data: Any, row: Any) -> Any:
                return to_rgb(decode_window_graph(data, row), alpha_fill)

            self._window_fn = FlatCall(decode.get_concrete_function())
        image = self._window_fn(data, tf.constant(plan.row(), tf.int32))
        return formats.orient(image, plan.orientation)

    def decode_for(self, data: bytes, sampled: list[dict[str, Any]]) -> Any:
        """The image a record's params are applied to: its planned JPEG window (``transforms.window``), else whole."""
        from transforms.window import plan_of

        plan = plan_of(sampled)
        if plan is None:
            return self(data)
        return self._checked(data, lambda fmt: self._decode_window(data, fmt, plan))

    def __call__(self, data: bytes) -> Any:
        """RGB uint8 [H, W, 3] tensor, or ``DecodeError`` with a readable reason."""
        return self._checked(data, lambda fmt: self._decode(data, fmt))

    def _checked(self, data: bytes, decode: Any) -> Any:
        """``decode(fmt)`` after the header checks, its failures as ``DecodeError``, its size checked."""
        import tensorflow as tf

        try:
            fmt = check_image_bytes(data, self.max_pixels, self.max_bytes)
        except DecodeError:
            raise
        except Exception as exc:  # a header our parsers choke on is still this input's problem
            raise DecodeError("CorruptImage", f"unreadable header: {type(exc).__name__}: {exc}"[:300]) from None
        name = NAMES[fmt]
        try:
            image = decode(fmt)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
            raise DecodeError("CorruptImage", f"cannot decode: {tf_message(exc)}") from None
        except tf.errors.OpError as exc:  # anything else TF refuses is still this input's problem
            raise DecodeError(type(exc).__name__, f"cannot decode: {tf_message(exc)}") from None
        except MemoryError:
            raise DecodeError("TooLarge", "not enough memory to decode this image") from None
        except DecodeError:
            raise
        except (struct.error, zlib.error, ValueError, IndexError, ArithmeticError) as exc:
            raise DecodeError("CorruptImage", f"cannot decode {name}: {exc}"[:300]) from None
        except Exception as exc:  # never let one file's oddity crash a shard
            raise DecodeError("CorruptImage", f"cannot decode {name}: {type(exc).__name__}: {exc}"[:300]) from None
        height, width = int(image.shape[0]), int(image.shape[1])
        if height == 0 or width == 0:
            raise DecodeError("CorruptImage", "decoded to an empty image")
        if height * width > self.max_pixels:
            raise DecodeError(
                "TooLarge",
                f"{name} decodes to {width}x{height} = {height * width} pixels, over --max-pixels {self.max_pixels}",
            )
        if height * width * 3 > self.max_bytes:  # a header that understated its size
            raise DecodeError(
                "TooLarge",
                f"{name} decodes to {width}x{height} x 3 channels = {height * width * 3} bytes, "
                f"over --max-image-bytes {self.max_bytes} ({mib(self.max_bytes)}); raise it to decode this image",
            )
        return image

    def __getstate__(self) -> dict[str, Any]:
        return {
            "alpha_fill": self.alpha_fill,
            "max_pixels": self.max_pixels,
            "max_bytes": self.max_bytes,
            "depth": self.depth,
            "_fn": None,
            "_window_fn": None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"depth": "scale", "max_bytes": DEFAULT_MAX_IMAGE_BYTES, "_window_fn": None, **state})


def tf_message(exc: Exception) -> str:
    """The human part of a TensorFlow error message, without graph nodes and call sites."""
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", text)
    lines = [line.strip() for line in text.split("\n")]
    skip = ("Graph execution error", "Detected at node", "File ", "[[")
    useful = [line for line in lines if line and not line.startswith(skip)]
    return (useful[-1] if useful else "").rstrip(".") or type(exc).__name__
