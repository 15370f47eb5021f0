"""Model preprocessing: what ``keras.applications.<family>.preprocess_input`` does.

Applied exactly once, after augmentation, to float32 [0, 255] RGB pixels.
Entries are named like the ``keras.applications`` modules so that ``--model``
reads as the model a user trains. Each entry declares its output range and
channel order so the manifest can say what the data is, and a reader can check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.errors import ConfigError

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("identity", "tf", "caffe", "torch", "scale_0_1")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """One model family's preprocessing, declared with what it produces."""

    name: str
    mode: str
    input_size: tuple[int, int]
    rescales_inside: bool = False

    @property
    def channel_order(self) -> str:
        return "BGR" if self.mode == "caffe" else "RGB"

    @property
    def output_range(self) -> tuple[float, float]:
        if self.mode == "tf":
            return (-1.0, 1.0)
        if self.mode == "scale_0_1":
            return (0.0, 1.0)
        if self.mode == "caffe":
            return (-max(CAFFE_MEAN_BGR), 255.0 - min(CAFFE_MEAN_BGR))
        if self.mode == "torch":
            low = min(-m / s for m, s in zip(TORCH_MEAN, TORCH_STD, strict=True))
            high = max((1 - m) / s for m, s in zip(TORCH_MEAN, TORCH_STD, strict=True))
            return (low, high)
        return (0.0, 255.0)

    def __call__(self, image: Any) -> Any:
        """Maps float32 [..., 3] RGB pixels in [0, 255] to the model's input."""
        import tensorflow as tf

        x = tf.cast(image, tf.float32)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "scale_0_1":
            return x / 255.0
        if self.mode == "caffe":
            return x[..., ::-1] - tf.constant(CAFFE_MEAN_BGR, tf.float32)
        if self.mode == "torch":
            return (x / 255.0 - tf.constant(TORCH_MEAN, tf.float32)) / tf.constant(TORCH_STD, tf.float32)
        return x

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this preprocessing."""
        return {
            "name": self.name,
            "mode": self.mode,
            "input_range": [0.0, 255.0],
            "output_range": list(self.output_range),
            "channel_order": self.channel_order,
            "default_size": list(self.input_size),
            "model_rescales_inside": self.rescales_inside,
        }


_ENTRIES = [
    Preprocessing("none", "identity", (224, 224)),
    Preprocessing("scale_0_1", "scale_0_1", (224, 224)),
    Preprocessing("scale_-1_1", "tf", (224, 224)),
    Preprocessing("mobilenet", "tf", (224, 224)),
    Preprocessing("mobilenet_v2", "tf", (224, 224)),
    Preprocessing("inception_v3", "tf", (299, 299)),
    Preprocessing("xception", "tf", (299, 299)),
    Preprocessing("resnet_v2", "tf", (224, 224)),
    Preprocessing("resnet", "caffe", (224, 224)),
    Preprocessing("resnet50", "caffe", (224, 224)),
    Preprocessing("vgg16", "caffe", (224, 224)),
    Preprocessing("vgg19", "caffe", (224, 224)),
    Preprocessing("densenet", "torch", (224, 224)),
    Preprocessing("efficientnet", "identity", (224, 224), rescales_inside=True),
    Preprocessing("efficientnet_v2", "identity", (224, 224), rescales_inside=True),
]
PREPROCESSING: dict[str, Preprocessing] = {p.name: p for p in _ENTRIES}


def get_preprocessing(name: str) -> Preprocessing:
    """The entry for ``name``, or a ``ConfigError`` that lists the known names."""
    try:
        return PREPROCESSING[name]
    except KeyError:
        known = ", ".join(sorted(PREPROCESSING))
        raise ConfigError(f"--model {name!r} is not known; choose one of: {known}") from None
