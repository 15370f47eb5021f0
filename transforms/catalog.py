"""What ``augbeam ops`` prints: every registered op with its fields, defaults and sampled params."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from transforms.config import PRESETS
from transforms.ops import Op, registered_ops
from transforms.ops.compose import Layered


def summary(cls: type[Op]) -> str:
    """The first line of the op's docstring."""
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def op_entries() -> list[dict[str, Any]]:
    """One entry per op: name, version, summary, fields with defaults, sampled param names, size change."""
    out = []
    for name, cls in sorted(registered_ops().items()):
        fields = {}
        for f in dataclasses.fields(cls):
            default = f.default
            if default is dataclasses.MISSING:
                default = None
            fields[f.name] = list(default) if isinstance(default, tuple) else default
        out.append(
            {
                "name": name,
                "version": cls.version,
                "summary": summary(cls),
                "fields": fields,
                "params": _recorded(cls),
                "changes_size": cls.changes_shape is True,
            }
        )
    return out


def _recorded(cls: type[Op]) -> list[str]:
    """The params a record holds for this op: its layout with default fields, or its layers."""
    if issubclass(cls, Layered):
        return ["layers (per layer: the op that ran and its params)"]
    return list(cls().layout())


def format_ops() -> str:
    """Human-readable op list and preset names."""
    lines = []
    for entry in op_entries():
        lines.append(f"{entry['name']} (v{entry['version']}): {entry['summary']}")
        fields = ", ".join(f"{k}={_show(v)}" for k, v in entry["fields"].items())
        lines.append(f"    fields:  {fields}")
        if entry["params"]:
            lines.append(f"    records: {', '.join(entry['params'])}")
        if entry["changes_size"] is True:
            lines.append("    changes the image size")
    lines.append("")
    lines.append(f"presets (--config NAME): {', '.join(PRESETS)}")
    lines.append(
        "a config file is YAML or JSON: ops: [{op: NAME, field: value, ...}, ...]; see `augbeam ops --preset NAME`"
    )
    return "\n".join(lines)


def format_markdown() -> str:
    """The op table docs/ops-and-presets.md embeds (a test keeps the two the same)."""
    lines = ["| op | what it does | fields (defaults) |", "| --- | --- | --- |"]
    for entry in op_entries():
        fields = ", ".join(f"`{k}={_show(v)}`" for k, v in entry["fields"].items())
        lines.append(f"| `{entry['name']}` | {entry['summary'].replace('``', '`')} | {fields} |")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return str(value)


def model_rows() -> list[dict[str, Any]]:
    """One row per keras.applications family (its models and sizes) and per generic entry."""
    from transforms.preprocess import GENERIC, PREPROCESSING, get_preprocessing

    rows = []
    for name in sorted(n for n, e in PREPROCESSING.items() if e.models or n in GENERIC):
        entry = PREPROCESSING[name]
        sizes = ", ".join(f"{m} {get_preprocessing(m).input_size[0]}" for m in entry.models)
        rows.append(_model_row(entry, sizes))
    rows.append(
        {
            "name": "mean_std",
            "mode": "mean_std",
            "channel_order": "RGB",
            "input_range": "[0, 255]",
            "output_range": "(x/255 - mean)/std, from --mean/--std",
            "models": "any, given --mean R G B --std R G B (in [0, 1] units)",
            "rescales_inside": False,
        }
    )
    return rows


def _model_row(entry: Any, sizes: str) -> dict[str, Any]:
    low, high = entry.output_range
    return {
        "name": entry.name,
        "mode": entry.mode,
        "channel_order": entry.channel_order,
        "input_range": "[0, 255]",
        "output_range": f"[{low:.4g}, {high:.4g}]",
        "models": sizes or f"any model (default size {entry.input_size[0]})",
        "rescales_inside": entry.rescales_inside,
    }


def format_models(markdown: bool = False) -> str:
    """`augbeam models`: the table, as text or as the markdown docs/model-preprocessing.md embeds."""
    rows = model_rows()
    head = ["--model", "preprocessing", "channels", "output range", "model rescales inside", "models and default sizes"]
    cells = [
        [
            r["name"],
            r["mode"],
            r["channel_order"],
            r["output_range"],
            "yes (values pass through)" if r["rescales_inside"] else "no",
            r["models"],
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| `" + c[0] + "` | " + " | ".join(c[1:]) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(len(head) - 1)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + "  " + head[-1]]
    out += ["  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1] for c in cells]
    out.append("")
    out.append("Inputs are [0, 255] RGB pixels after augmentation. A model class name (e.g. EfficientNetB3) also works")
    out.append("as --model: the same preprocessing, and its default size as the output size.")
    return "\n".join(out)
