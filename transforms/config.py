"""Augmentation configs: an ordered list of ops, loaded from YAML or JSON, or a preset.

A config file is either a list of ops or a mapping with one key, ``ops``:

    ops:
      - {op: random_resized_crop, scale: [0.5, 1.0]}
      - {op: horizontal_flip, p: 0.5}

YAML is read with the safe loader (no code runs), op names resolve only
through the registry, and unknown keys are errors. A file's size, YAML
anchors and aliases, nesting and op count are bounded (``config_bounds``), so
no config can expand into more work than a person could have written. Every op works on [0, 255]
pixels; the model's preprocessing is not an op and always comes after them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transforms.config_bounds import check_shape, parse_text, read_config_text
from transforms.errors import ConfigError
from transforms.ops import Op, op_from_config

PRESETS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "light": [
        {"op": "horizontal_flip", "p": 0.5},
        {"op": "brightness", "delta": [-0.1, 0.1], "p": 0.5},
    ],
    "standard": [
        {"op": "random_resized_crop", "scale": [0.35, 1.0], "ratio": [0.75, 1.3333333333333333]},
        {"op": "horizontal_flip", "p": 0.5},
        {"op": "rotation", "degrees": [-15.0, 15.0], "fill_mode": "reflect", "p": 0.5},
        {"op": "brightness", "delta": [-0.15, 0.15], "p": 0.8},
        {"op": "contrast", "factor": [0.8, 1.2], "p": 0.8},
    ],
    "heavy": [
        {"op": "random_resized_crop", "scale": [0.25, 1.0], "ratio": [0.75, 1.3333333333333333]},
        {"op": "horizontal_flip", "p": 0.5},
        {
            "op": "affine",
            "degrees": [-20.0, 20.0],
            "scale": [0.9, 1.1],
            "shear_x": [-8.0, 8.0],
            "fill_mode": "reflect",
            "p": 0.5,
        },
        {
            "op": "some_of",
            "n": [1, 3],
            "ops": [
                {"op": "brightness", "delta": [-0.2, 0.2]},
                {"op": "contrast", "factor": [0.7, 1.3]},
                {"op": "saturation", "factor": [0.6, 1.4]},
                {"op": "hue", "delta": [-0.05, 0.05]},
                {"op": "gamma", "gamma": [0.7, 1.4]},
            ],
        },
        {"op": "one_of", "p": 0.3, "ops": [{"op": "gaussian_blur", "p": 1.0}, {"op": "gaussian_noise", "p": 1.0}]},
        {"op": "random_erasing", "p": 0.25},
    ],
    "randaugment": [
        {"op": "random_resized_crop", "scale": [0.35, 1.0], "ratio": [0.75, 1.3333333333333333]},
        {"op": "horizontal_flip", "p": 0.5},
        {"op": "randaugment", "num_ops": 2, "magnitude": 9},
    ],
    "trivial_augment": [
        {"op": "random_resized_crop", "scale": [0.35, 1.0], "ratio": [0.75, 1.3333333333333333]},
        {"op": "horizontal_flip", "p": 0.5},
        {"op": "trivial_augment"},
    ],
    "autoaugment": [
        {"op": "random_resized_crop", "scale": [0.35, 1.0], "ratio": [0.75, 1.3333333333333333]},
        {"op": "horizontal_flip", "p": 0.5},
        {"op": "autoaugment", "policy": "imagenet"},
    ],
}
# Names users reach for when they try to put normalisation into the op list.
PREPROCESSING_WORDS = (
    "preprocess",
    "preprocessing",
    "preprocess_input",
    "normalize",
    "normalization",
    "rescale",
    "rescaling",
    "standardize",
    "model",
)
DEFAULT_PRESET = "standard"


# The job's default --image-size: what an op's "output size" default (``random_resized_crop``) means outside a job.
DEFAULT_IMAGE_SIZE = (224, 224)


def ops_from_data(
    data: Any, source: str = "config", image_size: tuple[int, int] | None = DEFAULT_IMAGE_SIZE
) -> tuple[Op, ...]:
    """Validates parsed config data (list of ops, or ``{"ops": [...]}``) into ops.

    Sizes that mean "the job's output size" are made ``image_size`` here, so
    the ops (and the config the job writes from them) name them; None leaves
    them as written (a template to print, not ops to run).
    """
    check_shape(data, source)
    if isinstance(data, dict):
        _refuse_preprocessing(sorted(set(data) & set(PREPROCESSING_WORDS)), source)
        unknown = sorted(set(data) - {"ops"})
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; allowed: ops")
        data = data.get("ops", [])
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of ops or a mapping with 'ops', got {type(data).__name__}")
    for entry in data:
        if isinstance(entry, dict) and entry.get("op") in PREPROCESSING_WORDS:
            _refuse_preprocessing([entry["op"]], source)
    ops = tuple(op_from_config(entry, f"{source}: ops[{i}]") for i, entry in enumerate(data))
    if image_size is None:
        return ops
    size = (int(image_size[0]), int(image_size[1]))
    return tuple(op.with_output_size(size) for op in ops)


def _refuse_preprocessing(found: list[str], source: str) -> None:
    """Preprocessing is not an op: it runs exactly once, after every op, chosen by ``--model``."""
    if found:
        raise ConfigError(
            f"{source}: {found[0]!r} is not an op: the model's preprocessing is chosen with --model and always "
            "runs once, after all ops (ops work on [0, 255] pixels); remove it from the config"
        )


def load_ops(spec: str, image_size: tuple[int, int] | None = DEFAULT_IMAGE_SIZE) -> tuple[Op, ...]:
    """Loads ops from a preset name or a ``.yaml``/``.yml``/``.json`` file path, for output size ``image_size``."""
    if spec in PRESETS:
        return ops_from_data(PRESETS[spec], f"preset {spec!r}", image_size)
    path = Path(spec)
    if not path.is_file():
        presets = ", ".join(sorted(PRESETS))
        raise ConfigError(f"--config {spec!r}: no such file, and not a preset ({presets})")
    text = read_config_text(path, str(path))
    return ops_from_data(parse_text(text, path.suffix.lower(), str(path)), str(path), image_size)


def dump_ops(ops: tuple[Op, ...], fmt: str = "yaml") -> str:
    """Writes ops back as text that ``ops_from_data`` reads to the same ops."""
    data = {"ops": [op.to_config() for op in ops]}
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
