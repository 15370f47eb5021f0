"""Decoding inside the render call (a key's only copy in a shard): the same bytes and errors as the usual path."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.format.manifest import record_order
from pipeline.job import shard as shard_worker
from pipeline.job.options import JobConfig
from pipeline.job.shard import PlannedRecord, ShardProcessor
from tests.conftest import DATA, PHOTOS
from transforms.augment import Augmenter, Renderer
from transforms.config import PRESETS, load_ops
from transforms.decode import DecodeError, Decoder, header_shape
from transforms.preprocess import get_preprocessing

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
        data.append(raw)
        shapes.append(header[:2])
        orientations.append(header[2])
        sampled.append(params)
        want.append(renderer.render_checked(image[np.newaxis], [params])[0])
    got = renderer.render_encoded(data, shapes, orientations, sampled, alpha_fill=200)
    for (name, _), a, b in zip(inputs, got, want, strict=True):
        assert not isinstance(a, Exception), name
        assert a == b, f"{preset}/{encoding}: {name} differs"


def test_header_shape_is_upright_and_only_for_plain_jpeg_and_png():
    assert header_shape((DATA / "exif_rotate6.jpg").read_bytes()) == (96, 64, 6)  # stored 96 x 64, turned
    assert header_shape((DATA / "rgba.png").read_bytes())[2] == 1
    for name in ("rgb16.png", "rgb.bmp", "animated.gif", "rgb8.tif", "lossy.webp"):
        assert header_shape((DATA / name).read_bytes()) is None, name
    with pytest.raises(DecodeError, match="empty"):
        header_shape(b"")


def test_a_size_that_differs_from_the_header_fails_the_call():
    ops = load_ops("standard")
    raw = (DATA / "rocket_small.jpg").read_bytes()
    height, width, orientation = header_shape(raw)
    renderer = Renderer(ops, (16, 16), "stretch", get_preprocessing("mobilenet_v2"), "uint8")
    params = Augmenter(ops, 0).sample("k", 0, (height + 10, width, 3))
    with pytest.raises(Exception, match="decoded size differs from header"):
        renderer.render_encoded([raw], [(height + 10, width)], [orientation], [params], alpha_fill=255)


def _shard(
    tmp_path: Path, root: Path, decode_in_render: bool, lie_about: str | None, monkeypatch, threaded: bool = False
) -> dict:
    """Writes one shard of every file under ``root`` (one copy each); returns its bytes, sidecar and errors."""
    out = tmp_path / ("fused" if decode_in_render else "usual")
    (out / ".augbeam-work").mkdir(parents=True)
    config = JobConfig.create(input=str(root), output=str(out), image_size=(24, 24), batch_size=4, config="standard")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    planned = [
        PlannedRecord(record_order(str(f.relative_to(root)), 0), str(f.relative_to(root)), 0, str(f), 0) for f in files
    ]
    if lie_about is not None:  # a header whose size is not the decoded size: the call fails, the usual path runs
        real = shard_worker.header_shape

        def lying(data: bytes, max_pixels: int) -> tuple[int, int, int] | None:
            found = real(data, max_pixels)
            if found is not None and hashlib.sha256(data).hexdigest() == lie_about:
                return found[0] + 1, found[1], found[2]
            return found

        monkeypatch.setattr(shard_worker, "header_shape", lying)
    processor = ShardProcessor(config, tf_threads=2 if threaded else 1)
    processor.setup()
    assert (processor.render_thread is not None) == threaded  # two TensorFlow threads: calls on a helper thread
    processor.decode_in_render = decode_in_render
    calls = []
    if decode_in_render:
        original = shard_worker._ShardRun.plan_encoded
        monkeypatch.setattr(shard_worker._ShardRun, "plan_encoded", lambda *a: calls.append(1) or original(*a))
    summary = processor.process("train", 0, 1, planned)
    sidecar = json.loads(Path(shard_worker.sidecar_path(str(out), "train", 0)).read_text())
    return {
        "calls": len(calls),
        "bytes": (out / summary.file).read_bytes(),
        "errors": sidecar["error_rows"],
        "index": sidecar["index"],
        "summary": {k: v for k, v in summary.to_json().items() if k != "file"},
    }


@pytest.mark.parametrize(("lie", "threaded"), [(False, False), (True, False), (False, True), (True, True)])
def test_a_shard_is_the_same_with_and_without_decoding_in_render(tmp_path, monkeypatch, lie, threaded):
    root = tmp_path / "in"
    shutil.copytree(PHOTOS / "train", root)
    for name in ("truncated_half.jpg", "not_an_image.jpg", "empty.jpg", "rgb16.png", "exif_rotate6.jpg", "rgba.png"):
        shutil.copy(DATA / name, root / "everyday" / name)
    liar = hashlib.sha256((root / "everyday" / "rgba.png").read_bytes()).hexdigest() if lie else None
    usual = _shard(tmp_path, root, False, None, monkeypatch)
    fused = _shard(tmp_path, root, True, liar, monkeypatch, threaded)
    assert fused["calls"] == len(list(root.rglob("*.*"))) and usual["calls"] == 0
    assert fused["bytes"] == usual["bytes"]
    assert fused["errors"] == usual["errors"]
    assert {e["key"].split("/")[-1] for e in usual["errors"]} == {"truncated_half.jpg", "not_an_image.jpg", "empty.jpg"}
    assert fused["index"] == usual["index"]
    assert fused["summary"] == usual["summary"]


def test_close_stops_the_helper_thread(tmp_path):
    import threading

    config = JobConfig.create(input=str(PHOTOS), output=str(tmp_path), image_size=(8, 8))
    processor = ShardProcessor(config, tf_threads=2)
    processor.setup()
    future = processor.render_thread.submit(threading.current_thread)
    helper = future.result()
    assert helper.name.startswith("augbeam-render") and helper.is_alive()
    processor.close()
    helper.join(timeout=5)
    assert processor.render_thread is None and not helper.is_alive()
    processor.close()  # twice is harmless (a DoFn's teardown may follow a failed setup)
