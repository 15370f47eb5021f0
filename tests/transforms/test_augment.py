"""Augmenter and Renderer: sampled params in range and repeatable, rendering and replay, segments and traces,
decoding inside the render call, the range guard.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import DATA, PHOTOS, _crop_then_every_op, _mixed_ops, decoded_rocket, sampled_entry
from tests.helpers import Overflow as _Overflow
from tests.helpers import render_sampled as _render
from transforms.augment import Augmenter, RangeError, Renderer, segments
from transforms.config import PRESETS, load_ops, ops_from_data
from transforms.decode import Decoder, header_shape
from transforms.ops.base import Op
from transforms.ops.crops import RandomResizedCrop
from transforms.ops.geometric import HorizontalFlip, Rotation
from transforms.ops.photometric import Brightness, Contrast
from transforms.preprocess import Preprocessing, get_preprocessing
from transforms.window import add_plan

keys = st.text(min_size=1, max_size=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
shapes = st.tuples(st.integers(1, 2000), st.integers(1, 2000), st.just(3))
entry = sampled_entry  # not imported under this name: a test below shadows it with a loop variable


@settings(max_examples=60, deadline=None)
@given(seed=seeds, key=keys, copy=st.integers(0, 1000), shape=shapes)
def test_params_within_declared_ranges_and_repeatable(seed, key, copy, shape):
    crops = (
        RandomResizedCrop(scale=(0.5, 0.9), height=30, width=20),
        RandomResizedCrop(scale=(0.5, 0.9), resize=False),
    )
    ops = load_ops("standard") + (Rotation(degrees=(-90, 45)), *crops)
    aug = Augmenter(ops, seed)
    first = aug.sample(key, copy, shape)
    assert first == aug.sample(key, copy, shape)
    assert json.loads(json.dumps(first)) == first
    by_op = {}
    for op, entry in zip(ops, first, strict=True):
        by_op.setdefault(op.name, []).append((op, entry))
        if not entry["applied"]:
            continue
        p = entry["params"]
        if op.name == "rotation":
            assert op.degrees[0] <= p["angle"] <= op.degrees[1]
        elif op.name == "brightness":
            assert op.delta[0] <= p["delta"] <= op.delta[1]
        elif op.name == "contrast":
            assert op.factor[0] <= p["factor"] <= op.factor[1]
        elif op.name == "random_resized_crop":
            assert 0 <= p["y"] and p["y"] + p["height"] <= shape[0]
            assert 0 <= p["x"] and p["x"] + p["width"] <= shape[1]
            assert p["height"] >= 1 and p["width"] >= 1
            shape = op.output_shape(shape, p)
            assert shape[:2] == ((op.height, op.width) if op.resize else (p["height"], p["width"]))


def test_sampled_values_cover_the_range():
    """No constant or stuck sampling across keys (the bug of Keras layers inside Dataset.map)."""
    aug = Augmenter((Rotation(degrees=(-30, 30)), HorizontalFlip(p=0.5)), seed=0)
    angles, flips = [], []
    for i in range(400):
        rot, flip = aug.sample(f"img{i}.jpg", 0, (100, 100, 3))
        angles.append(rot["params"]["angle"])
        flips.append(flip["applied"])
    hist, _ = np.histogram(angles, bins=6, range=(-30, 30))
    assert hist.min() > 40, hist
    assert 0.4 < np.mean(flips) < 0.6


@pytest.fixture(scope="module")
def photo():
    """The test photo as the job decodes it: a uint8 tensor."""
    return decoded_rocket()


def test_neutral_params_give_identity(photo):
    x = photo.numpy().astype(np.float32)
    h, w = x.shape[:2]
    ops = [Rotation(), Brightness(), Contrast(), HorizontalFlip(), RandomResizedCrop(height=h, width=w)]
    sampled = [
        entry(ops[0], angle=0.0),
        entry(ops[1], delta=0.0),
        entry(ops[2], factor=1.0),
        entry(ops[3], applied=False),
        entry(ops[4], y=0, x=0, height=h, width=w),
    ]
    np.testing.assert_allclose(_render(ops, photo, sampled), x, atol=1e-3)


def test_replay_reproduces_pixels(photo):
    ops = load_ops("standard")
    aug = Augmenter(ops, seed=5)
    sampled = aug.sample("k", 1, tuple(photo.shape))
    replay = json.loads(json.dumps(sampled))
    assert _render(ops, photo, sampled).tobytes() == _render(ops, photo, replay).tobytes()


def test_one_trace_for_many_sizes():
    import tensorflow as tf

    ops = load_ops("standard")
    renderer = Renderer(ops, (16, 16), "crop", get_preprocessing("mobilenet_v2"), "jpeg")
    aug = Augmenter(ops, 0)
    for i, (h, w) in enumerate([(20, 30), (64, 17), (5, 5), (300, 200), (1, 1)]):
        image = tf.zeros((h, w, 3), tf.uint8)
        renderer.render(image, aug.sample(str(i), 0, (h, w, 3)))
    assert renderer.trace_count == 1


def test_segments_cut_where_sizes_diverge_and_rejoin():
    ops = _mixed_ops()
    assert segments(ops) == [("batch", 0, 2), ("each", 2, 5), ("batch", 5, 9)]
    # a resizing crop is a per-image run of one op: every image leaves it at 224x224, and the rest run batched
    assert segments(load_ops("standard")) == [("each", 0, 1), ("batch", 1, 5)]
    keep = ops_from_data([{**load_ops("standard")[0].to_config(), "resize": False}, *PRESETS["standard"][1:]])
    assert segments(keep) == [("each", 0, 5)]
    assert segments(()) == []


@pytest.mark.parametrize(("make_ops", "traces"), [(_mixed_ops, 1), (_crop_then_every_op, 2)])
def test_one_trace_per_path_for_sizes_and_batch_lengths(make_ops, traces):
    ops = make_ops()
    renderer = Renderer(ops, (16, 16), "stretch", get_preprocessing("resnet50"), "float16")
    aug = Augmenter(ops, 0)
    for i, (b, h, w) in enumerate([(1, 20, 30), (3, 64, 17), (2, 5, 5), (5, 120, 90), (1, 1, 1)]):
        images = np.full((b, h, w, 3), i * 30, np.uint8)
        renderer.render_batch(images, [aug.sample(f"{i}/{j}", 0, (h, w, 3)) for j in range(b)])
    assert renderer.trace_count == traces  # single images (when single_path), and batches of any length


def test_the_renderer_refuses_images_that_are_not_rgb_batches():
    from transforms.augment import Renderer
    from transforms.config import load_ops
    from transforms.preprocess import get_preprocessing

    renderer = Renderer(load_ops("light"), (8, 8), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    with pytest.raises(ValueError, match=r"expected images \[B, H, W, 3\]"):
        renderer.render_checked(np.zeros((1, 8, 8, 4), np.uint8), [[]])


FIXTURES = ("rgba.png", "gray.png", "cmyk.jpg", "exif_rotate6.jpg", "one_pixel.png", "rocket_small.jpg")


def with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.open(DATA / "rocket_small.jpg").save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def inputs() -> list[tuple[str, bytes]]:
    photos = sorted(PHOTOS.rglob("*.*"))[:5]
    named = [(p.name, p.read_bytes()) for p in photos] + [(name, (DATA / name).read_bytes()) for name in FIXTURES]
    return named + [(f"orientation{k}.jpg", with_orientation(k)) for k in range(1, 9)]


@pytest.mark.parametrize(
    ("preset", "encoding"),
    [(preset, encoding) for preset in sorted(PRESETS) for encoding in ("uint8", "float32")] + [("standard", "jpeg")],
)
def test_encoded_render_gives_the_bytes_of_decode_then_render(inputs, preset, encoding):
    ops = load_ops(preset)
    augmenter = Augmenter(ops, seed=7)
    renderer = Renderer(ops, (40, 48), "stretch", get_preprocessing("mobilenet_v2"), encoding)
    decoder = Decoder(alpha_fill=200)
    data, shapes, orientations, sampled, want = [], [], [], [], []
    for name, raw in inputs:
        header = header_shape(raw)
        assert header is not None, name
        image = decoder(raw).numpy()
        assert header[:2] == image.shape[:2], name  # the header's upright size is the decoded size
        params = augmenter.sample(name, 0, image.shape)
        if raw[:3] == b"\xff\xd8\xff":  # a JPEG: its crop window only, where the first applied op is the crop
            stored = header[1::-1] if header[2] >= 5 else header[:2]
            params = add_plan(ops, params, stored, header[2])
            image = decoder.decode_for(raw, params).numpy()
        data.append(raw)
        shapes.append(header[:2])
        orientations.append(header[2])
        sampled.append(params)
        want.append(renderer.render_checked(image[np.newaxis], [params])[0])
    got = renderer.render_encoded(data, shapes, orientations, sampled, alpha_fill=200)
    for (name, _), a, b in zip(inputs, got, want, strict=True):
        assert not isinstance(a, Exception), name
        assert a == b, f"{preset}/{encoding}: {name} differs"


def test_a_size_that_differs_from_the_header_fails_the_call():
    ops = load_ops("standard")
    raw = (DATA / "rocket_small.jpg").read_bytes()
    height, width, orientation = header_shape(raw)
    renderer = Renderer(ops, (16, 16), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    params = Augmenter(ops, 0).sample("k", 0, (height + 10, width, 3))
    with pytest.raises(Exception, match="decoded size differs from header"):
        renderer.render_encoded([raw], [(height + 10, width)], [orientation], [params], alpha_fill=255)


def test_range_guard_fails_only_the_bad_records():
    ops = (_Overflow(),)
    renderer = Renderer(ops, (8, 8), "stretch", get_preprocessing("mobilenet_v2"), "float32")
    sampled = [Augmenter(ops, 0).sample(f"k{i}", 0, (10, 10, 3)) for i in range(8)]
    images = np.full((8, 10, 10, 3), 100, np.uint8)
    out = renderer.render_checked(images, sampled)
    for s, item in zip(sampled, out, strict=True):
        if s[0]["params"]["on"]:
            assert isinstance(item, RangeError) and "outside [0, 255]" in str(item) and "max 400" in str(item)
        else:
            assert isinstance(item, bytes)
    assert any(isinstance(i, RangeError) for i in out) and any(isinstance(i, bytes) for i in out)
    with pytest.raises(RangeError):
        renderer.render_batch(images, sampled)
    with pytest.raises(RangeError, match="must be uint8"):
        renderer.render_checked(images.astype(np.float32), sampled)


@dataclasses.dataclass(frozen=True)
class _NaN(Op):
    """A broken op for the range guard: one NaN pixel in some images."""

    name = "test_nan"
    param_names = ("on",)

    def sample(self, rng: Any, shape: Any) -> dict[str, float]:
        return {"on": float(rng.bernoulli(0.5))}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        poison = tf.where(params["on"][:, None, None, None] > 0.5, np.nan, 0.0)
        mask = np.zeros((1, 10, 10, 1), np.float32)
        mask[0, 3, 4, 0] = 1.0
        return images + poison * mask


def test_range_guard_names_non_finite_pixels_without_min_or_max():
    ops = (_NaN(),)
    renderer = Renderer(ops, (8, 8), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    sampled = [Augmenter(ops, 0).sample(f"k{i}", 0, (10, 10, 3)) for i in range(8)]
    out = renderer.render_checked(np.full((8, 10, 10, 3), 100, np.uint8), sampled)
    for s, item in zip(sampled, out, strict=True):
        if s[0]["params"]["on"]:
            assert isinstance(item, RangeError) and "not finite" in str(item) and "min" not in str(item)
        else:
            assert isinstance(item, bytes)
    assert any(isinstance(i, RangeError) for i in out) and any(isinstance(i, bytes) for i in out)


def test_range_guard_on_a_wrong_declared_output_range():
    class Wrong(Preprocessing):
        @property
        def output_range(self) -> tuple[float, float]:
            return (0.0, 0.5)  # claims [0, 0.5] but produces [0, 1]

    pre = Wrong("scale_0_1", "scale_0_1", (8, 8))
    renderer = Renderer((), (8, 8), "stretch", pre, "float32")
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[0, 0, 0] = 255
    (item,) = renderer.render_checked(image, [[]])
    assert isinstance(item, RangeError) and "declared range [0, 0.5]" in str(item) and "max 1" in str(item)


def test_the_encoded_render_picks_ops_by_branch_not_by_a_pixel_select():
    """Each image of ``render_encoded`` is alone in its batch: an op whose p < 1 is a branch on its flag, never a
    broadcast select over the pixels (which copied every image once per op; the bytes are the same either way,
    ``test_encoded_render_gives_the_bytes_of_decode_then_render``). The usual batched path keeps its select."""
    ops = ops_from_data([{"op": "horizontal_flip", "p": 0.5}, {"op": "brightness", "p": 0.8}])
    renderer = Renderer(ops, (16, 16), "stretch", get_preprocessing("mobilenet_v2"), "uint8")

    def selects(flat: Any) -> int:
        """Selects between computed tensors (not between two constants, as the decode's own scalar choice)."""
        graph = flat.concrete.graph.as_graph_def()
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        return sum(n.op in ("Select", "SelectV2") and not all("Const" in i for i in n.input[1:]) for n in nodes)

    assert selects(renderer._build_encoded(0.0)) == 0
    assert selects(renderer._build_batch()) > 0  # the check can see a select where one is
