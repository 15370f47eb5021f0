"""The run report's parameter section: every sampled param flattened to a readable name, drawn as SVG bars.

Params come from the ``params`` column of the augmented splits' index parts
(``index-*.parquet``), read in batches, part after part, and stopped after
``MAX_ROWS`` rows: the parts after are never opened, so a run of any size
costs the same. Names read like the config: ``rotation.angle``,
``randaugment/rotate.angle`` (an op that ran inside a composite or policy,
named by the policy's kind when it has one: ``shear_x``, ``color``). An op
listed twice gets ``#index``.
Everything is sorted and formatted with fixed precision: the report is
checksummed, so the same run must draw the same bytes.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipeline.format.manifest import TableInfo

MAX_ROWS = 20_000
BINS = 20


def read_params(root: str, tables: Sequence[TableInfo]) -> tuple[list[list[dict[str, Any]]], bool]:
    """Parsed params of the first ``MAX_ROWS`` rows of these index parts, in order, and whether more were left.

    Empty parts are not opened, nor any after the ``MAX_ROWS``-th row; how many rows there are in all
    is the manifest's count.
    """
    from pipeline.format.detection_records import ops_params
    from pipeline.format.manifest import IndexRow
    from pipeline.format.tables import iter_table

    parts = [t for t in tables if t.rows]
    rows = [ops_params(json.loads(row.params)) for row in itertools.islice(iter_table(root, parts, IndexRow), MAX_ROWS)]
    return rows, sum(t.rows for t in parts) > len(rows)


def flatten(records: list[list[dict[str, Any]]]) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """``{name: values}`` over the records, and ``{label: times it ran}`` for the applied-rate bars."""
    values: dict[str, list[Any]] = {}
    applied: Counter = Counter()
    for ops in records:
        names = Counter(entry["op"] for entry in ops)
        for i, entry in enumerate(ops):
            name = entry["op"] if names[entry["op"]] == 1 else f"{entry['op']}#{i}"
            applied[name] += 0  # listed even when it never ran
            if entry.get("applied"):
                applied[name] += 1
                _walk(values, applied, name, entry.get("params", {}))
    return values, dict(applied)


def _walk(values: dict[str, list[Any]], applied: Counter, name: str, params: dict[str, Any]) -> None:
    """One applied op's params; a composite's or policy's layers under ``name/inner`` (nested ones too)."""
    if "layers" not in params:
        _add_params(values, name, params)
        return
    for i, layer in enumerate(params["layers"]):
        if i == 0 and "sub_policy" in layer:  # one sub-policy per record, repeated on each of its layers
            values.setdefault(f"{name}/sub_policy", []).append(layer["sub_policy"])
        if not layer.get("applied"):
            continue
        inner = f"{name}/{layer.get('kind', layer['op'])}"
        applied[inner] += 1  # which one ran: the bars, not a histogram
        if "magnitude" in layer:
            values.setdefault(f"{name}/magnitude", []).append(layer["magnitude"])
        _walk(values, applied, inner, layer.get("params", {}))


def _add_params(values: dict[str, list[Any]], prefix: str, params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key.startswith("seed"):
            continue  # noise seeds: uniform by construction, and say nothing to a reader
        if key in ("decode_window", "decode_orientation"):
            continue  # a JPEG window decode's plumbing (transforms.window); its decode_ratio is drawn
        if isinstance(value, list):
            for j, item in enumerate(value):
                values.setdefault(f"{prefix}.{key}[{j}]", []).append(item)
        else:
            values.setdefault(f"{prefix}.{key}", []).append(value)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def bars(name: str, labels: list[str], counts: list[int], ends: tuple[str, str] | None = None) -> str:
    """A vertical bar chart as inline SVG: each bar's label under it when few, else ``ends`` under the axis ends."""
    width, height, top, bottom, left = 268, 130, 22, 30, 6
    peak = max(counts, default=0) or 1
    slot = (width - 2 * left) / max(len(counts), 1)
    plot = height - top - bottom
    parts = [
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(name)}">',
        f'<text x="{left}" y="14" class="t">{html.escape(name)}</text>',
        f'<text x="{width - left}" y="14" class="n" text-anchor="end">n={sum(counts)}</text>',
    ]
    for i, count in enumerate(counts):
        h = plot * count / peak
        parts.append(
            f'<rect x="{left + i * slot + 0.5:.1f}" y="{top + plot - h:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{h:.1f}"><title>{html.escape(labels[i])}: {count}</title></rect>'
        )
    parts.append(f'<line x1="{left}" y1="{top + plot}" x2="{width - left}" y2="{top + plot}" class="axis"/>')
    y = top + plot + 13
    if ends is None and len(labels) <= 6:
        for i, label in enumerate(labels):
            x = left + (i + 0.5) * slot
            parts.append(f'<text x="{x:.1f}" y="{y}" class="l" text-anchor="middle">{html.escape(label)}</text>')
    else:
        first, last = ends or (labels[0], labels[-1])
        parts.append(f'<text x="{left}" y="{y}" class="l">{html.escape(first)}</text>')
        parts.append(f'<text x="{width - left}" y="{y}" class="l" text-anchor="end">{html.escape(last)}</text>')
    parts.append(f'<text x="{left}" y="{height - 3}" class="n">tallest bar {max(counts, default=0)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(name: str, values: list[Any]) -> str:
    """Numbers: 20 equal bins, or a bar per integer (small range) or per value (few); else a bar per value."""
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        counts = Counter(v if isinstance(v, str) else json.dumps(v) for v in values)
        labels = sorted(counts)
        return bars(name, labels, [counts[label] for label in labels])
    finite = [v for v in numbers if math.isfinite(v)]
    distinct = sorted(set(finite))
    by_value: Counter[float] = Counter(finite)
    if distinct and all(v.is_integer() for v in finite) and distinct[-1] - distinct[0] < BINS:
        steps = [distinct[0] + i for i in range(int(distinct[-1] - distinct[0]) + 1)]  # every integer, gaps too
        return bars(name, [_fmt(v) for v in steps], [by_value[v] for v in steps])
    if len(distinct) <= 6:  # a few values (a policy's fixed magnitude): one bar each
        return bars(name, [_fmt(v) for v in distinct], [by_value[v] for v in distinct])
    low, high = distinct[0], distinct[-1]
    step = (high - low) / BINS
    binned = [0] * BINS
    for v in finite:
        binned[min(int((v - low) / step), BINS - 1)] += 1
    labels = [f"{_fmt(low + i * step)} to {_fmt(low + (i + 1) * step)}" for i in range(BINS)]
    return bars(name, labels, binned, (_fmt(low), _fmt(high)))


def applied_rates(applied: dict[str, int], total: int) -> str:
    """Horizontal bars: the share of sampled records in which each op (or op inside a composite) ran."""
    tops = [name for name in applied if "/" not in name]  # first-seen order: the config's
    names = [n for top in tops for n in [top, *sorted(k for k in applied if k.startswith(top + "/"))]]
    row, width, label_w = 18, 620, 260
    height = row * len(names) + 8
    parts = [f'<svg class="rates" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    bar_w = width - label_w - 70
    for i, name in enumerate(names):
        share = applied[name] / total if total else 0.0
        y = 4 + i * row
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" class="l" text-anchor="end">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="{row - 5}" class="bg"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * share:.1f}" height="{row - 5}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 12}" class="l">{share:.1%} ({applied[name]})</text>')
    parts.append("</svg>")
    return "".join(parts)


def section(records: list[list[dict[str, Any]]], truncated: bool, augmented: list[str]) -> str:
    """The report's HTML for params: applied rates, then one histogram per param, names sorted."""
    if not augmented:
        return "<p>No split was augmented (no random ops): there are no sampled parameters.</p>"
    values, applied = flatten(records)
    scope = f"the first {len(records):,} records" if truncated else f"all {len(records):,} records"
    out = [
        f"<p>Over {scope} of the augmented split(s) {html.escape(', '.join(augmented))}, "
        f"from the index (<code>index-*.parquet</code>){' (a sample: the run has more)' if truncated else ''}.</p>"
    ]
    if not records:
        return out[0] + "<p>No records.</p>"
    out.append(
        '<h3>How often each op ran</h3><p class="sub">Share of the records; for ops inside a composite or '
        "policy (<code>name/inner</code>), times run per record, so a policy of two ops sums to 200%.</p>"
    )
    out.append(applied_rates(applied, len(records)))
    if not values:
        out.append("<p>No op drew a parameter.</p>")
        return "".join(out)
    out.append(f'<h3>Sampled parameters ({len(values)})</h3><div class="hists">')
    out += [histogram(name, values[name]) for name in sorted(values)]
    out.append("</div>")
    return "".join(out)
