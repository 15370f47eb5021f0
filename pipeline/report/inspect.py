"""``augbeam inspect DST``: what an output folder holds, from its manifest, in the terminal.

For a quick look without a browser (``report.html`` has the pictures): the
producer, input, preprocessing and where it is applied, encoding and size,
the augmentation config, seed, the per-split counts, the files with their
sizes, and the error rows by type. It reads the manifest alone (sizes, rows
and error counts by reason are all in it), never a shard or a part of the
index or error table, so it is instant on any run. A folder without a
manifest is refused with the reader's one-line reason.
"""

from __future__ import annotations

from collections import Counter

from pipeline import fsutil
from pipeline.format.manifest import FORMAT_NAME, Manifest
from pipeline.format.reader import read_manifest

_COUNTS = (
    ("listed", "listed"),
    ("failed", "failed_inputs"),
    ("decoded", "decoded"),
    ("copies", "copies"),
    ("expected", "expected_records"),
    ("written", "written"),
    ("failed rec", "failed_records"),
)


def summary(dst: str) -> str:
    """The summary text of the output folder ``dst``; ``ReaderError`` when it has no usable manifest."""
    from pipeline.report.page import NAME, op_names

    manifest = read_manifest(dst)
    root = fsutil.normalize(dst)
    config, pre, image = manifest.config, manifest.preprocessing, manifest.image
    producer = manifest.producer
    low, high = pre["output_range"]
    where = "in the records" if pre["applied"] == "in_records" else "by the reader"
    classes = manifest.classes
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes) - 10} more)" if len(classes) > 10 else "")
    lines = [
        f"augbeam inspect {dst}",
        f"  format:        {FORMAT_NAME} v{manifest.format_version}, written by augbeam "
        f"{producer['augbeam']} (python {producer['python']})",
        f"  input:         {manifest.input.root} ({manifest.input.kind})",
        f"  classes:       {len(classes)}: {shown}" if classes else "  classes:       none (unlabeled)",
        f"  preprocessing: {pre['name']} (mode {pre['mode']}, {pre['channel_order']}, values in [{low:g}, {high:g}]), "
        f"applied {where}",
        f"  image:         {image.shape[0]}x{image.shape[1]}x{image.shape[2]}, encoding {image.encoding} "
        f"(stored {image.stored_dtype})",
        f"  augmentation:  --config {config['config_source']}: {op_names(config['ops'])}",
        f"                 copies: train {config['copies']}, evaluation {config['eval_copies']}; "
        f"evaluation ops: {config['eval_ops']}",
        f"  seed:          {config['seed']}",
        "",
        *_counts_table(manifest),
        "",
        "  files:",
        *_files(root, manifest),
        "",
        _errors(root, manifest),
    ]
    if NAME in (manifest.side_files or {}):
        lines.append(f"  report:        {fsutil.join(root, NAME)} (open it in a browser)")
    else:
        lines.append(f"  report:        none (no {NAME}: written by an augbeam without the run report)")
    return "\n".join(lines)


def _counts_table(manifest: Manifest) -> list[str]:
    splits = manifest.splits
    width = max([len("split"), len("total"), *(len(s) for s in splits)]) + 2
    cols = [max(len(label) + 2, 9) for label, _ in _COUNTS]
    head = f"  {'split':<{width}}" + "".join(f"{label:>{w}}" for (label, _), w in zip(_COUNTS, cols, strict=True))
    head += f"{'shards':>8}{'bytes':>15}"
    rows, shards, size = [head], 0, 0
    total: Counter[str] = Counter()
    for split in sorted(splits):
        info = splits[split]
        counts = info.counts
        split_bytes = sum(s.bytes for s in info.shards)
        cells = "".join(f"{getattr(counts, key):>{w},}" for (_, key), w in zip(_COUNTS, cols, strict=True))
        rows.append(f"  {split:<{width}}{cells}{info.num_shards:>8}{split_bytes:>15,}")
        total.update({key: getattr(counts, key) for _, key in _COUNTS if key != "copies"})
        shards += info.num_shards
        size += split_bytes
    cells = "".join(
        f"{total[key]:>{w},}" if key != "copies" else " " * w for (_, key), w in zip(_COUNTS, cols, strict=True)
    )
    rows.append(f"  {'total':<{width}}{cells}{shards:>8}{size:>15,}")
    return rows


def _files(root: str, manifest: Manifest) -> list[str]:
    shards = [s for info in manifest.splits.values() for s in info.shards]
    entries = [(f"{len(shards)} shards (*.tfrecord)", sum(s.bytes for s in shards), "")]
    dali = [s.dali_index for s in shards if s.dali_index is not None]
    if dali:
        entries.append((f"{len(dali)} DALI indexes (*.idx)", sum(d.bytes for d in dali), ""))
    for what, tables in (("index", manifest.index_tables()), ("error", manifest.error_tables())):
        name = f"{len(tables)} {what} parts ({'index' if what == 'index' else 'errors'}-*.parquet)"
        entries.append((name, sum(t.bytes for t in tables), f"{sum(t.rows for t in tables):,} rows"))
    for name, info in sorted((manifest.side_files or {}).items()):
        entries.append((name, info.bytes, ""))
    entries.append(("manifest.json", len(fsutil.read_bytes(fsutil.join(root, "manifest.json"))), ""))
    width = max(len(name) for name, _, _ in entries) + 2
    return [f"    {name:<{width}}{size:>15,} bytes  {note}".rstrip() for name, size, note in entries]


def _errors(root: str, manifest: Manifest) -> str:
    """Error rows by stage and type, as finalize counted them into the manifest."""
    total = manifest.error_rows
    if not total:
        return "  errors:        none"
    counts: Counter = Counter()
    for info in manifest.splits.values():
        counts.update(info.error_rows_by_reason)
    by_type = ", ".join(f"{n:,} {reason}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"  errors:        {total:,} rows in errors-*.parquet: {by_type}"
