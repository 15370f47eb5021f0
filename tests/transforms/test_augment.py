"""--model choices end to end (class names, mean_std, expect_model), range guards, `augbeam models`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.format import reader
from tests.conftest import PHOTOS, ROOT, run
from transforms.augment import Augmenter, RangeError, Renderer
from transforms.ops.base import _REGISTRY, Op, register
from transforms.preprocess import Preprocessing, get_preprocessing


def test_models_lists_every_family_and_docs_have_the_table(capsys):
    from transforms.catalog import format_models
    from transforms.preprocess import PREPROCESSING

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PREPROCESSING:
        assert name in out, name
    assert "NASNetLarge 331" in out and "EfficientNetB7 600" in out and "EfficientNetV2S 384" in out
    assert format_models(markdown=True) in (ROOT / "docs" / "model-preprocessing.md").read_text(), (
        "regenerate the table in docs/model-preprocessing.md: augbeam models --format markdown"
    )


def test_model_class_name_gives_its_size_and_manifest_says_everything(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", "--input", str(PHOTOS), "--output", str(out), "--model", "EfficientNetB1", "--num-shards", "1"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    assert manifest["image"]["shape"] == [240, 240, 3]
    assert pre["name"] == "EfficientNetB1" and pre["keras_module"] == "efficientnet"
    assert pre["input_range"] == [0.0, 255.0] and pre["output_range"] == [0.0, 255.0]
    assert pre["channel_order"] == "RGB" and pre["default_size"] == [240, 240] and pre["model_rescales_inside"]
    # same preprocessing function: accepted; another one: refused naming both
    reader.load(str(out), split="validation", expect_model="efficientnet")
    with pytest.raises(reader.ReaderError, match=r"made for model preprocessing 'EfficientNetB1'.*not 'resnet50'"):
        reader.load(str(out), split="validation", expect_model="resnet50")


def test_mean_std_end_to_end(tmp_path):
    out = tmp_path / "o"
    run(PHOTOS, out, model="mean_std", mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), copies=1, encoding="uint8")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    assert manifest["config"]["std"] == [0.25, 0.5, 1.0]
    raw = tmp_path / "raw"
    run(PHOTOS, raw, model="none", copies=1, encoding="uint8")
    (a, _), (b, _) = (next(iter(reader.load(str(p), split="validation", batch_size=4))) for p in (out, raw))
    expected = (b.numpy() / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0])
    np.testing.assert_allclose(a.numpy(), expected, atol=1e-5)
    with pytest.raises(reader.ReaderError, match="'mean_std'"):
        reader.load(str(out), split="validation", expect_model="scale_0_1")


def test_mean_std_needs_mean_and_std_on_the_command_line(tmp_path, capsys):
    code = main(["run", "--input", str(PHOTOS), "--output", str(tmp_path / "o"), "--model", "mean_std"])
    err = capsys.readouterr().err
    assert code == 2 and "--model mean_std needs --mean R G B and --std R G B" in err
    assert not (tmp_path / "o").exists()


@dataclasses.dataclass(frozen=True)
class _Overflow(Op):
    """A broken op for the range guard: adds 300 to some images and does not clip."""

    name = "test_overflow"
    param_names = ("on",)

    def sample(self, rng: Any, shape: Any) -> dict[str, float]:
        return {"on": float(rng.bernoulli(0.5))}

    def apply_batch(self, images: Any, params: dict[str, Any]) -> Any:
        return images + 300.0 * params["on"][:, None, None, None]


@pytest.fixture
def overflow_registered():
    """The broken op by name, for one test only (other tests see the registry as shipped)."""
    register(_Overflow)
    yield
    _REGISTRY.pop(_Overflow.name)


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


def test_range_guard_in_the_job_lands_in_errors(tmp_path, overflow_registered):
    config = tmp_path / "bad.yaml"
    config.write_text("ops: [{op: test_overflow}]\n")
    out = tmp_path / "o"
    manifest = run(PHOTOS, out, config=str(config), copies=4, num_shards=2)
    counts = manifest.splits["train"].counts
    errors = [r for r in pq.read_table(out / "errors.parquet").to_pylist() if r["stage"] == "range"]
    assert counts.failed_records == len(errors) > 0 and counts.written > 0
    assert counts.written + counts.failed_records == counts.decoded * 4
    assert all(r["error_type"] == "RangeError" and "outside [0, 255]" in r["message"] for r in errors)
