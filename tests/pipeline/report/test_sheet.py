"""The report's contact sheets: tiles decoded from the shards, float and pixel records shown as pixels, captions
drawable with the bitmap font.
"""

from __future__ import annotations

import base64
import html
import io
import re

import numpy as np
import pytest

from tests.helpers import report_page as _page


def test_one_sheet_per_split_decoded_from_the_shards(report_job):
    from PIL import Image

    from pipeline.format.records import iter_records
    from pipeline.report.sheet import PAD, TILE, parse

    page = _page(report_job)
    sheets = re.findall(r'<h3>(\w+)</h3><div class="sheet"><img src="data:image/png;base64,([^"]+)"', page)
    assert [split for split, _ in sheets] == ["train", "validation"]
    assert page.count("<img ") == 2
    train = np.asarray(Image.open(io.BytesIO(base64.b64decode(sheets[0][1]))).convert("RGB"))
    # The first tile is the first record of the first shard, as stored (uint8), scaled 4x for display.
    rec = parse(next(iter_records(str(report_job / "train-00000-of-00002.tfrecord"))))
    pixels = np.frombuffer(rec["image"], np.uint8).reshape(32, 32, 3)
    tile = train[PAD : PAD + TILE, PAD : PAD + TILE]
    np.testing.assert_array_equal(tile, pixels.repeat(4, axis=0).repeat(4, axis=1))
    assert f"<td>{html.escape(rec['key'])}</td>" in page  # its caption, as text too


@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet50", "densenet121", "scale_0_1", "none", "mean_std"])
@pytest.mark.parametrize("encoding", ["float32", "float16"])
def test_float_records_are_shown_as_pixels(model, encoding):
    """A float record (the preprocessed tensor) comes back to its [0, 255] pixels for display."""
    from pipeline.format.records import build_example
    from pipeline.report.sheet import display_pixels, parse
    from transforms.encoding import encode, to_payload
    from transforms.preprocess import get_preprocessing

    mean_std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if model == "mean_std" else (None, None)
    pre = get_preprocessing(model, *mean_std)
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    payload = to_payload(encode(pixels.astype(np.float32), encoding, pre), encoding)
    record = build_example(
        image=payload, shape=(5, 7, 3), dtype=encoding, encoding=encoding, label=0, key="k", copy=0, params="[]",
        source_sha256="0",
    )  # fmt: skip
    shown = display_pixels(parse(record), pre.describe())
    assert shown.dtype == np.uint8 and shown.shape == (5, 7, 3)
    assert np.abs(shown.astype(int) - pixels).max() <= (0 if encoding == "float32" else 1)


@pytest.mark.parametrize("encoding", ["uint8", "png", "jpeg"])
def test_pixel_records_are_shown_as_stored(encoding):
    """uint8/png records are their pixels; jpeg ones close to what TensorFlow's decoder (the reader's) gives.

    The report decodes with Pillow (the driver does not import TensorFlow), whose JPEG decoder rounds its
    IDCT and colour conversion differently: a few levels on this noise image, invisible on a thumbnail.
    """
    import tensorflow as tf

    from pipeline.format.records import build_example
    from pipeline.report.sheet import display_pixels, parse
    from transforms.encoding import encode, to_payload
    from transforms.preprocess import get_preprocessing

    pre = get_preprocessing("mobilenet_v2")
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    payload = to_payload(encode(pixels.astype(np.float32), encoding, pre), encoding)
    record = build_example(
        image=payload, shape=(6, 9, 3), dtype="uint8", encoding=encoding, label=0, key="k", copy=0, params="[]",
        source_sha256="0",
    )  # fmt: skip
    shown = display_pixels(parse(record), pre.describe())
    if encoding == "jpeg":
        expected = tf.io.decode_jpeg(payload).numpy()
        diff = np.abs(shown.astype(int) - expected)
        assert shown.shape == expected.shape and diff.mean() < 3 and diff.max() <= 12
    else:
        np.testing.assert_array_equal(shown, pixels)


def test_captions_with_the_bitmap_font_keep_non_latin_keys_drawable():
    from PIL import Image, ImageDraw, ImageFont

    from pipeline.report import sheet as report_sheet

    font = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") else None
    if font is None:  # Pillow < 10.1 has no separate loader: the bitmap font is load_default() without size
        font = ImageFont.load_default()
    assert not isinstance(font, ImageFont.FreeTypeFont)
    text = report_sheet._fit("train/东京/カメラ.png", font, 120, keep_end=True)
    ImageDraw.Draw(Image.new("RGB", (200, 20))).text((0, 0), text, font=font)  # raised UnicodeEncodeError before
