"""Augmentation configs: an ordered list of ops, loaded from YAML or JSON, or a preset.

A config file is either a list of ops or a mapping with one key, ``ops``:

    ops:
      - {op: random_resized_crop, scale: [0.5, 1.0]}
      - {op: horizontal_flip, p: 0.5}

YAML is read with the safe loader (no code runs), op names resolve only
through the registry, and unknown keys are errors. Every op works on [0, 255]
pixels; the model's preprocessing is not an op and always comes after them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transforms.errors import ConfigError
from transforms.op_base import Op, op_from_config

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
}
DEFAULT_PRESET = "standard"


def ops_from_data(data: Any, source: str = "config") -> tuple[Op, ...]:
    """Validates parsed config data (list of ops, or ``{"ops": [...]}``) into ops."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"ops"})
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; allowed: ops")
        data = data.get("ops", [])
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of ops or a mapping with 'ops', got {type(data).__name__}")
    return tuple(op_from_config(entry, f"{source}: ops[{i}]") for i, entry in enumerate(data))


def load_ops(spec: str) -> tuple[Op, ...]:
    """Loads ops from a preset name or a ``.yaml``/``.yml``/``.json`` file path."""
    if spec in PRESETS:
        return ops_from_data(PRESETS[spec], f"preset {spec!r}")
    path = Path(spec)
    if not path.is_file():
        presets = ", ".join(sorted(PRESETS))
        raise ConfigError(f"--config {spec!r}: no such file, and not a preset ({presets})")
    text = path.read_text(encoding="utf-8")
    return ops_from_data(parse_text(text, path.suffix.lower(), str(path)), str(path))


def parse_text(text: str, suffix: str, source: str) -> Any:
    """Parses YAML or JSON text safely."""
    try:
        if suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # a parse error of the user's file, reported as such
        raise ConfigError(f"{source}: cannot parse: {exc}") from None


def dump_ops(ops: tuple[Op, ...], fmt: str = "yaml") -> str:
    """Writes ops back as text that ``ops_from_data`` reads to the same ops."""
    data = {"ops": [op.to_config() for op in ops]}
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
