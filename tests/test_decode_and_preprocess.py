"""Decoding by content (gray, alpha, GIF, BMP, bad files) and model preprocessing against Keras."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA
from transforms.decode import DecodeError, Decoder
from transforms.preprocess import PREPROCESSING, get_preprocessing


@pytest.fixture(scope="module")
def decoder():
    return Decoder()


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


KERAS_MODULES = {
    "mobilenet": "mobilenet",
    "mobilenet_v2": "mobilenet_v2",
    "inception_v3": "inception_v3",
    "xception": "xception",
    "resnet_v2": "resnet_v2",
    "resnet": "resnet",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "densenet": "densenet",
    "efficientnet": "efficientnet",
    "efficientnet_v2": "efficientnet_v2",
}


@pytest.mark.parametrize("name", sorted(KERAS_MODULES))
def test_preprocessing_matches_keras(name):
    import importlib

    keras_fn = importlib.import_module(f"keras.applications.{KERAS_MODULES[name]}").preprocess_input
    rng = np.random.default_rng(0)
    images = [
        rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32),
        np.zeros((1, 2, 2, 3), np.float32),
        np.full((1, 2, 2, 3), 255, np.float32),
    ]
    pre = get_preprocessing(name)
    low, high = pre.output_range
    for x in images:
        ours = pre(x).numpy()
        np.testing.assert_allclose(ours, np.asarray(keras_fn(x.copy())), atol=1e-5, rtol=0)
        assert low - 1e-5 <= ours.min() and ours.max() <= high + 1e-5


def test_generic_entries():
    x = np.array([[[0.0, 127.5, 255.0]]], np.float32)
    np.testing.assert_allclose(get_preprocessing("none")(x).numpy(), x)
    np.testing.assert_allclose(get_preprocessing("scale_0_1")(x).numpy(), x / 255.0)
    np.testing.assert_allclose(get_preprocessing("scale_-1_1")(x).numpy(), [[[-1.0, 0.0, 1.0]]])
    assert set(KERAS_MODULES) | {"none", "scale_0_1", "scale_-1_1"} == set(PREPROCESSING)


def test_unknown_model_lists_the_known():
    from transforms.errors import ConfigError

    with pytest.raises(ConfigError, match="--model 'resnet51' is not known; choose one of: .*resnet50"):
        get_preprocessing("resnet51")


def test_all_zero_alpha_is_ignored(decoder):
    """A 32-bit BMP with a zero fourth byte must keep its colours, not become all fill."""
    image = decoder((DATA / "zero_alpha32.bmp").read_bytes()).numpy()
    np.testing.assert_array_equal(image, decoder((DATA / "rgb.bmp").read_bytes()).numpy())
