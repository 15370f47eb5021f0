"""``report.html``: one self-contained page a person reads to see what a run wrote.

Made at finalize (a ``side_files`` maker) from the finished manifest draft,
the shards and the index and error parts: the counts, contact
sheets decoded back from the shard bytes (what training reads), histograms
of the sampled params, the errors and the resolved config. Everything is
inline (CSS, PNG data URIs, SVG; no script, no external URL) so it opens
anywhere, offline. It is checksummed in the manifest, so it holds no times,
host names or output path, and every list is in a fixed order: the same run
gives the same bytes on any runner. Reads are bounded (a few records per
split, the first rows of the first non-empty parts; every count is the
manifest's), so a huge run costs the same.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
from collections import Counter
from typing import Any

from pipeline import fsutil
from pipeline.format.manifest import ErrorRow, Manifest

NAME = "report.html"
MAX_ERROR_ROWS = 200
STAGES = ("listing", "read", "decode")
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232b;background:#f4f5f7}
main{max-width:1160px;margin:0 auto;padding:18px 20px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5d9df}
h3{font-size:15px;margin:16px 0 6px}.sub{color:#5a6472;margin:0 0 12px}
nav a{margin-right:14px;color:#2458a6;text-decoration:none}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #d5d9df;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eceff3}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f7f8fa}
dl.facts{display:grid;grid-template-columns:200px 1fr;gap:3px 12px;margin:10px 0;background:#fff;
padding:10px 14px;border:1px solid #d5d9df}
dl.facts dt{color:#5a6472}dl.facts dd{margin:0}
pre{background:#fff;border:1px solid #d5d9df;padding:10px;overflow:auto;font-size:12px;max-height:520px}
code{font-size:12px}.sheet img{display:block;border:1px solid #d5d9df;background:#fff;max-width:100%}
.hists{display:flex;flex-wrap:wrap;gap:8px}
svg.hist,svg.rates{background:#fff;border:1px solid #d5d9df}
svg rect{fill:#3d7cc9}svg rect.bg{fill:#e6ebf1}svg line.axis{stroke:#8a94a3}
svg text{font:10px system-ui,sans-serif;fill:#333}svg text.t{font-weight:600;font-size:11px}svg text.n{fill:#6b7480}
td.msg{max-width:520px;word-break:break-word}.ok{color:#1d7a3a;font-weight:600}.bad{color:#b3261e;font-weight:600}
details{margin:6px 0}summary{cursor:pointer;color:#2458a6}
"""


def make_files(out: str, manifest: Manifest) -> dict[str, bytes]:
    """The side-files hook: ``{"report.html": bytes}`` for the finished run in ``out``."""
    return {NAME: render(fsutil.normalize(out), manifest).encode("utf-8")}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render(root: str, manifest: Manifest) -> str:
    """The whole page as text."""
    from pipeline.report import params as report_params

    augmented = [s for s in sorted(manifest.splits) if manifest.splits[s].augmented]
    parts = [table for split in augmented for table in manifest.index_tables(split)]
    records, truncated = report_params.read_params(root, parts)
    body = [
        _header(manifest),
        '<nav><a href="#counts">Counts</a><a href="#samples">Samples</a><a href="#params">Parameters</a>'
        '<a href="#errors">Errors</a><a href="#config">Config</a></nav>',
        '<h2 id="counts">Counts</h2>',
        _counts(manifest),
        '<h2 id="samples">Sample records, decoded from the shards</h2>',
        _samples(root, manifest),
        '<h2 id="params">Sampled parameters</h2>',
        report_params.section(records, truncated, augmented),
        '<h2 id="errors">Errors</h2>',
        _errors(root, manifest),
        '<h2 id="config">Resolved config</h2>',
        '<p class="sub">As recorded in <code>manifest.json</code>; with the same input it gives the same bytes.</p>',
        f"<pre>{_e(json.dumps(manifest.config, indent=2, sort_keys=True))}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>augbeam report: {_e(manifest.input.root)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def op_names(ops: list[dict[str, Any]]) -> str:
    """The config's op names, composites with their children: ``some_of(brightness, hue)``."""
    names = []
    for op in ops:
        children = op.get("ops")
        names.append(f"{op['op']}({op_names(children)})" if children else op["op"])
    return ", ".join(names) or "none"


def _header(manifest: Manifest) -> str:
    config, pre, image = manifest.config, manifest.preprocessing, manifest.image
    splits = manifest.splits
    written = sum(s.counts.written for s in splits.values())
    listed = sum(s.counts.listed for s in splits.values())
    per_split = ", ".join(f"{s} {splits[s].counts.written:,}" for s in sorted(splits))
    low, high = pre["output_range"]
    applied = "in the records" if pre["applied"] == "in_records" else "by the reader (augbeam.load)"
    classes = manifest.classes
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes) - 20} more)" if len(classes) > 20 else "")
    facts = [
        ("Input", f"{manifest.input.root} ({manifest.input.kind})"),
        ("Output", f"{written:,} records from {listed:,} listed inputs ({per_split})"),
        ("Classes", f"{len(classes)}: {shown}" if classes else "none (unlabeled)"),
        (
            "Model preprocessing",
            f"{pre['name']} (mode {pre['mode']}, {pre['channel_order']}, "
            f"values in [{low:g}, {high:g}]), applied {applied}",
        ),
        ("Encoding", f"{image.encoding} (stored {image.stored_dtype})"),
        ("Image size", f"{image.shape[0]} x {image.shape[1]} x {image.shape[2]}"),
        ("Seed", str(config["seed"])),
        ("Augmentation", f"--config {config['config_source']}: {op_names(config['ops'])}"),
        (
            "Copies",
            f"train {config['copies']}, evaluation {config['eval_copies']} (evaluation ops: {config['eval_ops']})",
        ),
        ("Written by", f"augbeam {manifest.producer['augbeam']}, format version {manifest.format_version}"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (
        "<h1>augbeam run report</h1>"
        '<p class="sub">Everything here comes from the files beside this page: manifest.json, the shards, '
        "their index parts (index-*.parquet) and error parts (errors-*.parquet).</p>"
        f'<dl class="facts">{rows}</dl>'
    )


_COLUMNS = (
    ("listed", "listed"),
    *((f"failed {s}", s) for s in STAGES),
    ("decoded", "decoded"),
    ("copies", "copies"),
    ("expected", "expected_records"),
    ("written", "written"),
    ("failed records", "failed_records"),
)


def _count_row(name: str, counts: dict[str, Any], shards: int, size: int, css: str = "") -> str:
    by_stage = counts["failed_inputs_by_stage"]
    cells = [by_stage.get(k, 0) if k in STAGES else counts[k] for _label, k in _COLUMNS]
    cells += [shards, size]
    tds = "".join(f'<td class="n">{v:,}</td>' if isinstance(v, int) else f"<td>{_e(v)}</td>" for v in cells)
    return f'<tr class="{css}"><td>{_e(name)}</td>{tds}</tr>'


def _counts(manifest: Manifest) -> str:
    head = "".join(f'<th class="n">{_e(label)}</th>' for label, _k in _COLUMNS)
    rows = []
    summed = ("listed", "decoded", "expected_records", "written", "failed_records")
    total: dict[str, Any] = {k: 0 for k in summed}
    total.update(copies="", failed_inputs_by_stage=Counter())
    shards_total = bytes_total = 0
    for split in sorted(manifest.splits):
        info = manifest.splits[split]
        counts = info.counts.to_json()
        size = sum(s.bytes for s in info.shards)
        rows.append(_count_row(split, counts, info.num_shards, size))
        shards_total += info.num_shards
        bytes_total += size
        for key in summed:
            total[key] += counts[key]
        total["failed_inputs_by_stage"].update(counts["failed_inputs_by_stage"])
    rows.append(_count_row("total", total, shards_total, bytes_total, "total"))
    return (
        '<p class="sub">listed = decoded + failed inputs; decoded &times; copies = expected = written + '
        "failed records. Bytes: the split's shards.</p>"
        f'<table><tr><th>split</th>{head}<th class="n">shards</th><th class="n">bytes</th></tr>{"".join(rows)}</table>'
    )


def _samples(root: str, manifest: Manifest) -> str:
    from pipeline.report import sheet as report_sheet

    pre = manifest.preprocessing
    encoding = manifest.image.encoding
    if encoding in ("float32", "float16"):
        note = (
            f"The records hold the {_e(pre['name'])}-preprocessed {encoding} tensor; for display it is mapped back "
            f"to [0, 255] pixels by inverting the preprocessing: {report_sheet.undo_note(pre)}."
        )
    else:
        note = f"The records hold {_e(encoding)} pixels before preprocessing (the reader applies it); shown as stored."
    out = [
        f'<p class="sub">Up to {report_sheet.PER_SPLIT} records per split: the first records of each shard '
        f"(hash order, so keys and classes mix), decoded from the shard bytes. {note} "
        f"Thumbnails fit {report_sheet.TILE} px; {_caption_note(manifest)}</p>"
    ]
    what = "label" if manifest.targets is None else "objects"
    for split in sorted(manifest.splits):
        png, details = report_sheet.split_sheet(root, manifest.splits[split], manifest)
        out.append(f'<h3>{_e(split)}</h3><div class="sheet">')
        if not png:
            out.append("<p>No records in this split.</p></div>")
            continue
        data = base64.b64encode(png).decode("ascii")
        out.append(
            f'<img src="data:image/png;base64,{data}" alt="{len(details)} sample records of {_e(split)}" '
            f'title="{len(details)} sample records of {_e(split)}"></div>'
        )
        rows = "".join(
            f'<tr><td>{_e(d["key"])}</td><td class="n">{d["copy"]}</td><td>{_e(d["label"])}</td>'
            f"<td>{_e(d['shard'])} #{d['position']}</td><td>{_e('; '.join(d['ops']))}</td></tr>"
            for d in details
        )
        out.append(
            f"<details><summary>The {len(details)} sampled records as text</summary><table>"
            f"<tr><th>key</th><th>copy</th><th>{what}</th><th>shard #record</th><th>ops that ran</th></tr>{rows}"
            "</table></details>"
        )
    return "".join(out)


def _caption_note(manifest: Manifest) -> str:
    """What the tiles and captions show: the label, or the drawn targets and a legend of class colours."""
    targets = manifest.targets
    if targets is None:
        return "captions: key, copy, label, the ops that ran."
    from pipeline.report.draw_targets import colour

    drawn = ["boxes with class names"]
    if targets.has("instance_segmentation"):
        drawn.append("instance masks")
    if targets.has("semantic_segmentation"):
        drawn.append(f"the semantic mask (value {targets.mask_ignore}, no class, left undrawn)")
    if targets.has("keypoints"):
        drawn.append(
            "keypoints (filled: visible, hollow: occluded)"
            + (" and the skeleton" if targets.keypoints and targets.keypoints.skeleton else "")
        )
    legend = " ".join(
        f'<span style="display:inline-block;padding:0 5px;margin:1px;background:rgb{colour(n)}">{_e(name)}</span>'
        for n, name in enumerate(targets.classes)
    )
    return (
        f"Drawn on each tile, a colour per class: {', '.join(drawn)}. Captions: key, copy, how many objects the "
        f"record holds (and how many the removal rules dropped, where the record says), the ops that ran.</p>"
        f'<p class="sub">Classes: {legend}'
    )


def _errors(root: str, manifest: Manifest) -> str:
    from pipeline.format.tables import iter_table

    total = manifest.error_rows
    if not total:
        return '<p class="ok">No errors: every listed input became records.</p>'
    counts: Counter = Counter()
    for info in manifest.splits.values():  # counted at finalize: no part is scanned
        counts.update({tuple(reason.split("/", 1)): n for reason, n in info.error_rows_by_reason.items()})
    parts = [table for table in manifest.error_tables() if table.rows]  # empty parts are not opened
    first = list(itertools.islice(iter_table(root, parts, ErrorRow), MAX_ERROR_ROWS))
    summary = "".join(
        f'<tr><td>{_e(stage)}</td><td>{_e(kind)}</td><td class="n">{n:,}</td></tr>'
        for (stage, kind), n in sorted(counts.items())
    )
    rows = "".join(
        f'<tr><td>{_e(r.key)}</td><td class="n">{"" if r.copy is None else r.copy}</td>'
        f"<td>{_e(r.split)}</td><td>{_e(r.stage)}</td><td>{_e(r.error_type)}</td>"
        f'<td class="msg">{_e(r.message)}</td></tr>'
        for r in first
    )
    shown = f"the first {len(first)} of {total:,}" if total > len(first) else f"all {total:,}"
    return (
        f'<p class="bad">{total:,} error row(s) in the error parts (errors-*.parquet).</p>'
        f'<table><tr><th>stage</th><th>type</th><th class="n">rows</th></tr>{summary}</table>'
        f"<h3>Rows ({shown}, in the parts' order: split, shard, key)</h3>"
        "<table><tr><th>key</th><th>copy</th><th>split</th><th>stage</th><th>type</th><th>message</th></tr>"
        f"{rows}</table>"
    )
