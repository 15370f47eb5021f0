"""Decoding a JPEG's crop window only (``transforms.window``): the ratio rule, the EXIF box mapping, libjpeg's
window coordinates, and the same bytes from every render path for planned records."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import DATA, PHOTOS
from transforms.augment import Augmenter, Renderer
from transforms.config import ops_from_data
from transforms.decode import Decoder, header_shape
from transforms.formats import orient
from transforms.preprocess import get_preprocessing
from transforms.window import RATIOS, add_plan, dct_ratio, plan_of, scaled_box, stored_box


@pytest.mark.parametrize(
    ("crop", "out", "want"),
    [
        ((224, 224), (224, 224), 1),
        ((447, 1000), (224, 224), 1),  # 447 / 2 < 224 on one side
        ((448, 448), (224, 224), 2),
        ((895, 3000), (224, 224), 2),
        ((896, 900), (224, 224), 4),
        ((1792, 1792), (224, 224), 8),
        ((3024, 4032), (224, 224), 8),  # never more than 8
        ((100, 100), (224, 224), 1),  # an upscale stays at full resolution
        ((900, 400), (100, 200), 2),  # each side against its own output side
    ],
)
def test_the_ratio_is_the_largest_that_keeps_both_sides_at_least_the_output(crop, out, want):
    assert dct_ratio(crop, out) == want


def test_the_ratio_rule_against_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(500):
        crop = (int(rng.integers(1, 5000)), int(rng.integers(1, 5000)))
        out = (int(rng.integers(1, 600)), int(rng.integers(1, 600)))
        r = dct_ratio(crop, out)
        assert r in RATIOS
        assert r == 1 or (crop[0] / r >= out[0] and crop[1] / r >= out[1])
        bigger = [q for q in RATIOS if q > r]
        assert not bigger or crop[0] / bigger[0] < out[0] or crop[1] / bigger[0] < out[1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_upright_box_maps_to_the_stored_pixels_it_shows(orientation):
    """Cropping the stored image at the mapped box, then orienting, gives the upright image's crop."""
    stored = np.arange(7 * 11 * 3, dtype=np.int32).reshape(7, 11, 3)
    upright = np.asarray(orient(stored, orientation))
    for box in [(0, 0, 1, 1), (1, 2, 3, 4), (0, 0, *upright.shape[:2]), (upright.shape[0] - 2, 1, 2, 3)]:
        y, x, h, w = box
        sy, sx, sh, sw = stored_box(box, orientation, stored.shape[:2])
        got = np.asarray(orient(stored[sy : sy + sh, sx : sx + sw], orientation))
        np.testing.assert_array_equal(got, upright[y : y + h, x : x + w], err_msg=f"box {box}")


def test_a_rotated_jpeg_window_decodes_to_the_upright_crop():
    """tests/data/exif_rotate6.jpg (EXIF 6): the mapped window, decoded and turned, is the crop of the upright image.

    Compared away from the window's stored left and right columns (upright: its top and bottom rows), where
    libjpeg upsamples chroma without the neighbours outside the window (see the next test).
    """
    import tensorflow as tf

    raw = (DATA / "exif_rotate6.jpg").read_bytes()
    height, width, orientation = header_shape(raw)
    assert orientation == 6
    upright = Decoder()(raw).numpy()
    assert upright.shape[:2] == (height, width)
    for box in [(0, 0, 10, 20), (13, 7, 40, 30), (height - 17, width - 9, 17, 9)]:
        y, x, h, w = box
        window = stored_box(box, orientation, (width, height))
        got = np.asarray(orient(tf.io.decode_and_crop_jpeg(raw, list(window), channels=3), orientation))
        assert got.shape[:2] == (h, w)
        np.testing.assert_array_equal(got[1:-1], upright[y + 1 : y + h - 1, x : x + w], err_msg=f"box {box}")
        assert np.abs(got.astype(int) - upright[y : y + h, x : x + w]).max() <= 16, f"box {box}"


def test_decode_and_crop_at_ratio_1_is_decode_then_crop():
    """Windows on and off the block grid, at the edges, of one pixel: the same pixels, except (4:2:0 chroma) the
    window's first and last columns, which libjpeg upsamples without the neighbours outside the window. So a
    window decode is recorded even at ratio 1, and every path decodes it with the same kernel."""
    import tensorflow as tf

    for name, raw in [
        ("rocket_small.jpg (4:2:0)", (DATA / "rocket_small.jpg").read_bytes()),
        ("rocket.jpg (4:4:4)", (PHOTOS / "train" / "everyday" / "rocket.jpg").read_bytes()),
    ]:
        full = tf.io.decode_image(raw, channels=3, expand_animations=False).numpy()
        height, width = full.shape[:2]
        rng = np.random.default_rng(1)
        boxes = [(0, 0, height, width), (16, 16, 16, 16), (7, 9, 1, 1), (height - 5, width - 3, 5, 3)]
        for _ in range(20):
            h, w = int(rng.integers(1, height)), int(rng.integers(1, width))
            boxes.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
        edge_differs = False
        for y, x, h, w in boxes:
            got = tf.io.decode_and_crop_jpeg(raw, [y, x, h, w], channels=3).numpy()
            want = full[y : y + h, x : x + w]
            np.testing.assert_array_equal(got[:, 1:-1], want[:, 1:-1], err_msg=f"{name} window {(y, x, h, w)}")
            edge_differs |= bool((got != want).any())
        assert edge_differs == name.endswith("(4:2:0)"), name


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_the_window_is_in_scaled_coordinates_when_the_ratio_is_above_1(ratio):
    """``decode_and_crop_jpeg(window, ratio=r)`` is ``decode_jpeg(ratio=r)[window]``: scaled, not source, pixels."""
    import tensorflow as tf

    raw = (PHOTOS / "train" / "everyday" / "rocket.jpg").read_bytes()
    scaled = tf.io.decode_jpeg(raw, ratio=ratio).numpy()
    assert scaled.shape[:2] == (-(-427 // ratio), -(-640 // ratio))  # ceil(size / r): scaled_box's limits
    box = scaled_box((40, 64, 200, 320), ratio, (427, 640))
    y, x, h, w = box
    got = tf.io.decode_and_crop_jpeg(raw, list(box), ratio=ratio).numpy()
    np.testing.assert_array_equal(got, scaled[y : y + h, x : x + w])


def test_a_scaled_box_stays_inside_the_scaled_image_and_is_never_empty():
    rng = np.random.default_rng(2)
    for _ in range(2000):
        stored = (int(rng.integers(1, 5000)), int(rng.integers(1, 5000)))
        h, w = int(rng.integers(1, stored[0] + 1)), int(rng.integers(1, stored[1] + 1))
        box = (int(rng.integers(0, stored[0] - h + 1)), int(rng.integers(0, stored[1] - w + 1)), h, w)
        for r in RATIOS:
            y, x, sh, sw = scaled_box(box, r, stored)
            limit = (-(-stored[0] // r), -(-stored[1] // r))
            assert sh >= 1 and sw >= 1 and 0 <= y and y + sh <= limit[0] and 0 <= x and x + sw <= limit[1]
            if h >= r and w >= r:  # as the ratio rule ensures: the edges move by at most r source pixels
                assert abs(y * r - box[0]) <= r and abs((y + sh) * r - (box[0] + h)) <= r
                assert abs(x * r - box[1]) <= r and abs((x + sw) * r - (box[1] + w)) <= r
    assert scaled_box((5, 6, 7, 8), 1, (100, 100)) == (5, 6, 7, 8)


def jpeg_with_orientation(orientation: int) -> bytes:
    """examples' rocket.jpg (640x427) stored with an EXIF orientation: large enough for every ratio at 24x20."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.open(PHOTOS / "train" / "everyday" / "rocket.jpg").save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


STANDARD_AT = [
    {"op": "random_resized_crop", "scale": [0.08, 1.0], "height": 24, "width": 20},
    {"op": "horizontal_flip", "p": 0.5},
    {"op": "rotation", "degrees": [-15.0, 15.0], "fill_mode": "reflect", "p": 0.5},
    {"op": "contrast", "factor": [0.8, 1.2], "p": 0.8},
]


def planned(ops, raw: bytes, key: str, copy: int) -> list:
    height, width, orientation = header_shape(raw)
    params = Augmenter(ops, 3).sample(key, copy, (height, width, 3))
    return add_plan(ops, params, (width, height) if orientation >= 5 else (height, width), orientation)


@pytest.mark.parametrize(("size", "encoding", "ratios"), [((24, 20), "uint8", {4, 8}), ((150, 120), "jpeg", {1, 2})])
def test_planned_records_give_the_same_bytes_on_every_path(size, encoding, ratios):
    """In-graph (a group of mixed ratios and orientations), host-decoded window, and replay from JSON: one answer."""
    ops = ops_from_data([{**STANDARD_AT[0], "height": size[0], "width": size[1]}, *STANDARD_AT[1:]])
    renderer = Renderer(ops, size, "stretch", get_preprocessing("mobilenet_v2"), encoding)
    decoder = Decoder()
    data, shapes, turns, sampled = [], [], [], []
    for orientation in range(1, 9):
        raw = jpeg_with_orientation(orientation)
        for copy in range(3):
            params = planned(ops, raw, f"o{orientation}", copy)
            assert plan_of(params) is not None
            data.append(raw)
            shapes.append(header_shape(raw)[:2])
            turns.append(orientation)
            sampled.append(params)
    assert {plan_of(s).ratio for s in sampled} == ratios  # the kernel's branches (both cases: all four)
    grouped = renderer.render_encoded(data, shapes, turns, sampled, alpha_fill=255)
    for raw, shape, turn, params, got in zip(data, shapes, turns, sampled, grouped, strict=True):
        replay = json.loads(json.dumps(params, sort_keys=True))
        assert not isinstance(got, Exception)
        assert got == renderer.render(decoder.decode_for(raw, replay), replay)
        assert got == renderer.render_encoded([raw], [shape], [turn], [replay], alpha_fill=255)[0]


def test_the_plan_is_a_pure_function_of_params_and_header():
    ops = ops_from_data(STANDARD_AT)
    raw = jpeg_with_orientation(6)
    assert planned(ops, raw, "k", 4) == planned(ops, raw, "k", 4)
    entry = planned(ops, raw, "k", 4)[0]["params"]
    assert {"decode_ratio", "decode_window", "decode_orientation"} <= set(entry)
    assert entry["decode_orientation"] == 6


def test_the_planned_window_is_close_to_decoding_whole():
    """Within a few levels of cropping the fully decoded image and resizing (the window is on the scaled grid)."""
    ops = ops_from_data(STANDARD_AT[:1])
    renderer = Renderer(ops, (24, 20), "stretch", get_preprocessing("none"), "float32")
    decoder = Decoder()
    raw = jpeg_with_orientation(6)
    whole = decoder(raw).numpy()
    for copy in range(6):
        params = planned(ops, raw, "k", copy)
        a = np.frombuffer(renderer.render(decoder.decode_for(raw, params), params), np.float32)
        unplanned = [{**params[0], "params": {k: v for k, v in params[0]["params"].items() if "decode" not in k}}]
        b = np.frombuffer(renderer.render(whole, unplanned), np.float32)
        assert np.abs(a - b).mean() < 6.0, f"copy {copy}: {np.abs(a - b).mean()}"


def test_a_planned_record_refuses_the_whole_image():
    ops = ops_from_data(STANDARD_AT)
    renderer = Renderer(ops, (24, 20), "stretch", get_preprocessing("none"), "uint8")
    raw = jpeg_with_orientation(1)
    params = planned(ops, raw, "k", 0)
    with pytest.raises(ValueError, match="decode it with Decoder.decode_for"):
        renderer.render(Decoder()(raw), params)


def test_only_a_first_applied_resizing_crop_is_planned():
    raw = jpeg_with_orientation(1)
    keep = ops_from_data([{**STANDARD_AT[0], "resize": False}])
    assert plan_of(planned(keep, raw, "k", 0)) is None
    after_flip = ops_from_data([{"op": "horizontal_flip", "p": 1.0}, STANDARD_AT[0]])
    assert plan_of(planned(after_flip, raw, "k", 0)) is None
    maybe = ops_from_data([{**STANDARD_AT[0], "p": 0.5}])
    plans = [plan_of(planned(maybe, raw, f"k{i}", 0)) for i in range(20)]
    assert any(p is None for p in plans) and any(p is not None for p in plans)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_a_same_size_resize_is_exact(mode):
    """The final resize after a crop that already resized is a same-size resize: it changes nothing (any --resize)."""
    import tensorflow as tf

    from transforms.ops.crops import resize_images

    images = tf.constant(np.random.default_rng(3).uniform(0, 255, (2, 24, 20, 3)), tf.float32)
    np.testing.assert_array_equal(resize_images(images, (24, 20), mode).numpy(), images.numpy())


def test_a_truncated_jpeg_is_not_planned():
    """A window in a truncated file's intact part can decode while the whole cannot: such files decode whole."""
    import tensorflow as tf

    from transforms.window import ends_whole

    raw = jpeg_with_orientation(6)
    assert ends_whole(raw) and ends_whole(raw + b"trailing bytes") and ends_whole((DATA / "cmyk.jpg").read_bytes())
    for cut in np.linspace(100, len(raw) - 2, 12).astype(int):
        assert not ends_whole(raw[:cut]), cut
    half = (DATA / "truncated_half.jpg").read_bytes()
    assert not ends_whole(half)
    tf.io.decode_and_crop_jpeg(half, [0, 0, 4, 4])  # why: the top-left window of the truncated file decodes
