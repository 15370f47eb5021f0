"""Model preprocessing: what ``keras.applications.<family>.preprocess_input`` does.

Applied exactly once, after augmentation, to float32 [0, 255] RGB pixels.
Entries are named like the ``keras.applications`` modules so that ``--model``
reads as the model a user trains. Each entry declares its output range and
channel order so the manifest can say what the data is, and a reader can check.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from transforms.errors import ConfigError
from transforms.tfmath import channelwise

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("identity", "tf", "caffe", "torch", "scale_0_1", "mean_std")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """One model family's preprocessing, declared with what it produces.

    ``mean_std`` maps x to (x / 255 - mean) / std per RGB channel, mean and
    std in [0, 1] units as torchvision writes them (given with --mean/--std).
    """

    name: str
    mode: str
    input_size: tuple[int, int]
    rescales_inside: bool = False
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    keras_module: str | None = None
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"preprocessing {self.name!r}: unknown mode {self.mode!r}")
        if self.mode == "mean_std":
            if self.mean is None or self.std is None or len(self.mean) != 3 or len(self.std) != 3:
                raise ConfigError(
                    "--model mean_std needs --mean R G B and --std R G B (in [0, 1] units, as torchvision)"
                )
            if any(not 0 < s < 1e3 for s in self.std) or any(not -1e3 < m < 1e3 for m in self.mean):
                raise ConfigError(f"--std must be positive and --mean finite, got mean {self.mean}, std {self.std}")
        elif self.mean is not None or self.std is not None:
            raise ConfigError(f"--mean/--std only apply to --model mean_std, not {self.name!r}")

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
        if self.mode in ("torch", "mean_std"):
            pair = (TORCH_MEAN, TORCH_STD) if self.mode == "torch" else (self.mean, self.std)
            mean, std = cast("tuple[tuple[float, ...], tuple[float, ...]]", pair)  # mean_std is made with both
            low = min(-m / s for m, s in zip(mean, std, strict=True))
            high = max((1 - m) / s for m, s in zip(mean, std, strict=True))
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
            return channelwise(tf.subtract, x[..., ::-1], tf.constant(CAFFE_MEAN_BGR, tf.float32))
        if self.mode in ("torch", "mean_std"):
            pair = (TORCH_MEAN, TORCH_STD) if self.mode == "torch" else (self.mean, self.std)
            mean, std = cast("tuple[tuple[float, ...], tuple[float, ...]]", pair)  # mean_std is made with both
            centred = channelwise(tf.subtract, x / 255.0, tf.constant(mean, tf.float32))
            return channelwise(tf.divide, centred, tf.constant(std, tf.float32))
        return x

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this preprocessing."""
        out = {
            "name": self.name,
            "mode": self.mode,
            "input_range": [0.0, 255.0],
            "output_range": list(self.output_range),
            "channel_order": self.channel_order,
            "default_size": list(self.input_size),
            "model_rescales_inside": self.rescales_inside,
            "keras_module": self.keras_module,
        }
        if self.mode == "mean_std":
            out["mean"], out["std"] = list(self.mean), list(self.std)  # type: ignore[arg-type]
        return out

    @classmethod
    def from_description(cls, info: dict[str, Any]) -> Preprocessing:
        """The entry a manifest names (with its mean and std for ``mean_std``)."""
        if info.get("mode") == "mean_std":
            return get_preprocessing(info["name"], tuple(info["mean"]), tuple(info["std"]))
        return get_preprocessing(info["name"])


def _family(module: str, mode: str, models: dict[str, int], inside: bool = False) -> list[Preprocessing]:
    """The module's entry (default size: its first model's) and one entry per model class."""
    first = next(iter(models.values()))
    out = [Preprocessing(module, mode, (first, first), inside, keras_module=module, models=tuple(models))]
    out += [Preprocessing(name, mode, (size, size), inside, keras_module=module) for name, size in models.items()]
    return out


# Every family of keras.applications (Keras 3.15, as pinned): module -> model classes and default sizes.
_ENTRIES = [
    Preprocessing("none", "identity", (224, 224)),
    Preprocessing("scale_0_1", "scale_0_1", (224, 224)),
    Preprocessing("scale_-1_1", "tf", (224, 224)),
    *_family("convnext", "identity", {f"ConvNeXt{v}": 224 for v in ("Tiny", "Small", "Base", "Large", "XLarge")}, True),
    *_family("densenet", "torch", {"DenseNet121": 224, "DenseNet169": 224, "DenseNet201": 224}),
    *_family(
        "efficientnet",
        "identity",
        dict(zip([f"EfficientNetB{i}" for i in range(8)], (224, 240, 260, 300, 380, 456, 528, 600), strict=True)),
        True,
    ),
    *_family(
        "efficientnet_v2",
        "identity",
        {
            "EfficientNetV2B0": 224,
            "EfficientNetV2B1": 240,
            "EfficientNetV2B2": 260,
            "EfficientNetV2B3": 300,
            "EfficientNetV2S": 384,
            "EfficientNetV2M": 480,
            "EfficientNetV2L": 480,
        },
        True,
    ),
    *_family("inception_resnet_v2", "tf", {"InceptionResNetV2": 299}),
    *_family("inception_v3", "tf", {"InceptionV3": 299}),
    *_family("mobilenet", "tf", {"MobileNet": 224}),
    *_family("mobilenet_v2", "tf", {"MobileNetV2": 224}),
    *_family("mobilenet_v3", "identity", {"MobileNetV3Small": 224, "MobileNetV3Large": 224}, True),
    *_family("nasnet", "tf", {"NASNetMobile": 224, "NASNetLarge": 331}),
    *_family("resnet", "caffe", {"ResNet50": 224, "ResNet101": 224, "ResNet152": 224}),
    Preprocessing("resnet50", "caffe", (224, 224), keras_module="resnet50", models=("ResNet50",)),
    *_family("resnet_v2", "tf", {"ResNet50V2": 224, "ResNet101V2": 224, "ResNet152V2": 224}),
    *_family("vgg16", "caffe", {"VGG16": 224}),
    *_family("vgg19", "caffe", {"VGG19": 224}),
    *_family("xception", "tf", {"Xception": 299}),
]
PREPROCESSING: dict[str, Preprocessing] = {}
for _entry in _ENTRIES:
    # A model class listed by two modules (ResNet50: resnet and resnet50) keeps the first.
    PREPROCESSING.setdefault(_entry.name, _entry)
# Model class names are accepted in any case: --model efficientnetb3 or EfficientNetB3.
_BY_LOWER = {name.lower(): name for name in PREPROCESSING}
GENERIC = ("none", "scale_0_1", "scale_-1_1", "mean_std")


def get_preprocessing(
    name: str, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None
) -> Preprocessing:
    """The entry for ``name`` (a keras.applications module or model class, or a generic one).

    Unknown names are a ``ConfigError`` that lists the known ones.
    """
    if name == "mean_std":
        return Preprocessing(
            "mean_std",
            "mean_std",
            (224, 224),
            mean=tuple(mean) if mean is not None else None,  # type: ignore[arg-type]
            std=tuple(std) if std is not None else None,  # type: ignore[arg-type]
        )
    entry = PREPROCESSING.get(name) or PREPROCESSING.get(_BY_LOWER.get(name.lower(), ""))
    if entry is None:
        modules = ", ".join(sorted(n for n in PREPROCESSING if n.islower()) + ["mean_std"])
        raise ConfigError(
            f"--model {name!r} is not known; choose a keras.applications module or model name "
            f"(`augbeam models` lists them): {modules}"
        )
    if mean is not None or std is not None:
        raise ConfigError(f"--mean/--std only apply to --model mean_std, not {name!r}")
    return entry
