"""Finishing a run: gather the shards' summaries, reconcile the counts, write the manifest, then publish.

The manifest holds no timestamps, host names or runner details, so the same
input and config give the same manifest bytes on any runner. A folder
without ``manifest.json`` is an unfinished run and readers refuse it.

Files another reader opens on their own wait in the work folder until the
manifest is written (``shard.STAGED_DIR``): TensorFlow Datasets loads a folder
by its ``dataset_info.json``, DALI a shard by its index, and a person opens
``report.html``. Only then are they moved beside the shards, ``dataset_info.json``
last, and the work folder removed. So a run that fails or is killed before
its manifest leaves none of them beside the shards (for SIGKILL, which has no
failure path, the order alone carries it), and one killed after its manifest
is complete: ``--resume`` finishes the moves.

Given the run's lock, finalize writes a manifest only over this run's own
work: ``run.json`` must carry the lock's token, every summary the plan's run
fingerprint, and the lock must still be this run's just before the manifest
is written. Otherwise another run wrote into the folder meanwhile, and it
fails in one line (``OutputTaken``) rather than describe a mix.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from pipeline import __version__, fsutil
from pipeline.errors import ErrorRateExceeded, OutputTaken, ReconcileError
from pipeline.format.detection_records import DETECTION_FEATURES
from pipeline.format.manifest import (
    DUPLICATE,
    INPUT_STAGES,
    MANIFEST,
    TEMP_FILE,
    Counts,
    ImageInfo,
    InputInfo,
    Manifest,
    ShardSummary,
    SplitInfo,
)
from pipeline.format.records import FEATURES, FORMAT_VERSION, MASK_ENCODED, MASK_FORMAT, TARGET_FEATURES
from pipeline.job import annotated
from pipeline.job.options import JobConfig
from pipeline.job.output_lock import LOCK_FILE, OutputLock
from pipeline.job.plan import MASK64, Plan
from pipeline.job.prepare import read_run
from pipeline.job.shard import WORK_DIR, staged_dir, summary_path
from pipeline.job.side_files import make_side_files, publish_order, write_side_files
from transforms.encoding import stored_dtype, stores_preprocessed
from transforms.targets.types import REASONS

# Pillow draws report.html's contact sheets (its font and zlib decide the report's bytes).
PACKAGES = ("tensorflow", "tensorflow-io", "apache-beam", "numpy", "pyarrow", "protobuf", "keras", "pillow")


def finalize(config: JobConfig, lock: OutputLock | None = None) -> Manifest:
    """Builds the manifest from ``run.json`` and the shards' summaries, checks the counts, writes it last.

    Reads O(shards) small files, never a row: each shard's worker wrote its
    own index and error parts, and its summary says what they hold. With the
    run's ``lock``, it refuses work that is not this run's (module docstring).
    """
    out = config.output
    run = read_run(out)
    if run is None:
        raise ReconcileError(f"{out!r} has no {WORK_DIR}/run.json: the run's plan was never written")
    if lock is not None and run.token != lock.token:
        raise OutputTaken(
            f"--output {out!r}: the plan in {WORK_DIR}/run.json is another run's: another run wrote into the "
            "folder while this one ran, so no manifest was written. Run one job at a time into a folder, "
            "then rerun with --overwrite"
        )
    plan = run.plan
    splits = {name: _split_info(config, plan, name) for name in plan.splits()}
    manifest = _manifest(config, plan, splits)
    side = make_side_files(out, manifest)
    # A finalize killed after its manifest moved some side files beside the shards: written again, not strangers.
    check_only_listed_files(out, manifest, set(side))
    check_error_rate(splits, config.max_error_rate, out)
    # Only a run that passed every check gets its side files, staged in the work folder; then the manifest;
    # then they are moved beside the shards. The work folder goes last, so a finalize killed midway resumes.
    manifest = manifest.with_side_files(write_side_files(staged_dir(out), side))
    if lock is not None:
        lock.check_held()
    data = (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()
    fsutil.write_atomic(fsutil.join(out, MANIFEST), data)
    publish(out, manifest)
    fsutil.remove_tree(fsutil.join(out, WORK_DIR))
    return manifest


def publish(out: str, manifest: Manifest) -> None:
    """Moves the staged files beside the shards: the DALI indexes, then the side files, ``dataset_info.json`` last.

    A file already moved (by a finalize killed after its manifest) is not staged any more, and stays.
    """
    staged = staged_dir(out)
    names = [shard.dali_index.file for _split, shard in manifest.iter_shards() if shard.dali_index is not None]
    names += publish_order(manifest.side_files or {})
    present = {path for path, _size in fsutil.list_files(staged)} if fsutil.exists(staged) else set()
    moves = [(fsutil.join(staged, name), fsutil.join(out, name)) for name in names]
    missing = [dst for src, dst in moves if src not in present and not fsutil.exists(dst)]
    if missing:
        raise ReconcileError(f"{missing[0]!r} was neither staged in {staged!r} nor moved beside the shards")
    fsutil.commit_all((src, dst) for src, dst in moves if src in present)


def read_summaries(out: str, plan: Plan, split: str) -> list[ShardSummary]:
    """The split's shard summaries, each checked to belong to this run."""
    summaries = []
    for shard in range(plan.shards[split]):
        path = summary_path(out, split, shard, plan.shards[split])
        if not fsutil.exists(path):
            raise ReconcileError(f"{split} shard {shard} has no summary: it was never written")
        summary = ShardSummary.from_json(json.loads(fsutil.read_bytes(path)))
        if summary.run != plan.run:
            raise OutputTaken(
                f"{path!r} was written by another run (run {summary.run[:12]}, this run's is {plan.run[:12]}) "
                "while this one ran, so no manifest was written. Run one job at a time into a folder, then "
                "rerun with --overwrite"
            )
        if (summary.split, summary.shard) != (split, shard):
            raise ReconcileError(f"{path!r} belongs to another shard")
        summaries.append(summary)
    return summaries


def _split_info(config: JobConfig, plan: Plan, split: str) -> SplitInfo:
    """One split's counts from its shards' summaries, reconciled with the plan and across shards."""
    summaries = read_summaries(config.output, plan, split)
    copies = plan.copies[split]
    listing: Counter[str] = Counter()
    owned_failed: Counter[str] = Counter()
    record_failed: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for s in summaries:
        removed.update(s.removed_by_reason)
        listing.update(s.listing_errors_by_reason)
        owned_failed.update(s.failed_inputs_by_reason)
        record_failed.update(s.failed_records_by_reason)
    owned = sum(s.owned_inputs for s in summaries)
    listed = owned + sum(listing.values())
    planned = sum(s.planned for s in summaries)
    if listed != plan.listed[split] or owned != plan.inputs[split] or planned != owned * copies:
        raise ReconcileError(
            f"split {split!r}: the shards account for {listed} listed entries, {owned} inputs and {planned} "
            f"records, the listing for {plan.listed[split]}, {plan.inputs[split]} and {plan.inputs[split] * copies}"
        )
    # Copies >= 1 of an input that failed in its copy 0's shard fail in their own shards too, and have no rows.
    # Counts and key hashes must agree, or a file changed between the shards that read it.
    others = sum(s.other_copies_failed for s in summaries)
    others_hash = sum(s.other_copies_hash for s in summaries) & MASK64
    expected_hash = sum(s.owned_failed_hash for s in summaries) & MASK64
    if others != sum(owned_failed.values()) * (copies - 1) or others_hash != expected_hash:
        raise ReconcileError(
            f"split {split!r}: some inputs could be read for some of their copies and not for others "
            "(files changed or vanished while the job ran); rerun with --overwrite once the inputs are stable"
        )
    failed_by_stage = Counter({"listing": sum(listing.values())})
    for reason, n in owned_failed.items():
        failed_by_stage[reason.split("/", 1)[0]] += n
    failed_inputs = sum(failed_by_stage.values())
    stages = INPUT_STAGES + ((annotated.STAGE,) if plan.targets is not None else ())
    decoded = listed - failed_inputs
    written = sum(s.info.records for s in summaries)
    failed_records = sum(record_failed.values())
    counts = Counts(
        listed=listed,
        failed_inputs=failed_inputs,
        failed_inputs_by_stage={stage: failed_by_stage[stage] for stage in stages},
        decoded=decoded,
        copies=copies,
        expected_records=decoded * copies,
        written=written,
        failed_records=failed_records,
    )
    if decoded < 0 or written + failed_records != decoded * copies:
        raise ReconcileError(
            f"split {split!r} does not reconcile: listed {listed} = decoded {decoded} + failed {failed_inputs}; "
            f"decoded x copies = {decoded * copies} but written {written} + failed {failed_records}"
        )
    rows = sum(s.info.index.rows for s in summaries)
    error_rows = sum(s.info.errors.rows for s in summaries)
    reasons = listing + owned_failed + record_failed
    if rows != written or error_rows != sum(reasons.values()):
        raise ReconcileError(
            f"split {split!r}: index parts hold {rows} rows for {written} records, error parts {error_rows} rows "
            f"for {sum(reasons.values())} failures"
        )
    return SplitInfo(
        augmented=bool(config.ops_for(split)),
        shards=tuple(s.info for s in summaries),
        counts=counts,
        error_rows_by_reason=dict(sorted(reasons.items())),
        columns=tuple(plan.columns.get(split, ())),
        values_dim=plan.values_dim if "values" in plan.columns.get(split, ()) else None,
        removed_objects={r: removed[r] for r in REASONS} if plan.targets is not None else None,
    )


def check_only_listed_files(out: str, manifest: Manifest, side: set[str] | None = None) -> None:
    """Every file in the output folder is one the manifest names (or a side file, or the work folder's);
    temp files of failed attempts go."""
    expected = set(manifest.expected_files()) | (side or set())
    root = fsutil.normalize(out).rstrip("/") + "/"
    for path, _size in fsutil.list_files(out):
        name = path[len(root) :] if path.startswith(root) else path
        if name in expected or name.startswith(WORK_DIR + "/") or name == LOCK_FILE:
            continue
        if TEMP_FILE.search(name):
            fsutil.delete(path)  # a bundle that died while writing; its retry wrote the real file
            continue
        raise ReconcileError(f"{name!r} appeared in the output folder during the run; it is not part of the output")


def check_error_rate(splits: Mapping[str, SplitInfo], max_rate: float, out: str) -> None:
    """Fails the job, with a summary of reasons, when more inputs or records failed than allowed.

    The parquet files stay for inspection; no manifest is written, so the
    folder reads as unfinished.
    """
    reasons: Counter[str] = Counter()
    for info in splits.values():
        reasons.update(info.error_rows_by_reason)
    duplicates = reasons.pop(DUPLICATE, 0)  # kept once: not a failure
    listed = sum(s.counts.listed for s in splits.values())
    failed = sum(s.counts.failed_inputs for s in splits.values()) - duplicates
    expected = sum(s.counts.expected_records for s in splits.values())
    failed_records = sum(s.counts.failed_records for s in splits.values())
    input_rate = failed / listed if listed else 0.0
    record_rate = failed_records / expected if expected else 0.0
    if max(input_rate, record_rate) <= max_rate:
        return
    top = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(6))
    raise ErrorRateExceeded(
        f"{failed} of {listed} inputs ({input_rate:.1%}) and {failed_records} of {expected} records "
        f"({record_rate:.1%}) failed, over --max-error-rate {max_rate:g}: {top}. "
        f"See the errors-*.parquet files in {out}; the folder has no manifest (unfinished). "
        "Fix the inputs, or raise --max-error-rate to accept them."
    )


def _features(plan: Plan, encoding: str) -> dict[str, Any]:
    """The record schema: every record's fields, and the target fields the listing's columns add.

    An annotated run's records are detection records: the keys they hold (masks and keypoints where the run
    has them, the image under the key its encoding uses).
    """
    targets = annotated.plan_targets(plan)
    if targets is not None:
        encoded = encoding in ("jpeg", "png")
        skip = {"image"} if encoded else {"image/encoded", "image/format"}
        skip |= {"image/segmentation/class/encoded", "image/segmentation/class/format"}
        prefixes: tuple[str, ...] = () if targets.masks else ("image/object/mask",)
        prefixes += () if targets.keypoints is not None else ("image/object/keypoint/",)
        return {
            name: spec
            for name, spec in DETECTION_FEATURES.items()
            if name not in skip and not name.startswith(prefixes)
        }
    present = {name for names in plan.columns.values() for name in names}
    fields = {"labels": ("labels",), "values": ("values",), "mask": (MASK_ENCODED, MASK_FORMAT)}
    extra = {f: TARGET_FEATURES[f] for column in sorted(present) for f in fields[column]}
    return {**FEATURES, **extra}


def _manifest(config: JobConfig, plan: Plan, splits: dict[str, SplitInfo]) -> Manifest:
    pre = config.preprocessing
    h, w = config.image_size
    preprocessing = dict(pre.describe())
    preprocessing["applied"] = "in_records" if stores_preprocessed(config.encoding) else "by_reader"
    preprocessing["output_dtype"] = "float32"
    return Manifest(
        format_version=FORMAT_VERSION,
        producer={"augbeam": __version__, "python": platform.python_version(), "packages": _versions()},
        config=config.resolved(),
        input=InputInfo(plan.root, plan.kind),
        classes=tuple(plan.classes),
        image=ImageInfo((h, w, 3), config.encoding, stored_dtype(config.encoding)),
        preprocessing=preprocessing,
        features=_features(plan, config.encoding),
        seeding={
            "generator": "numpy Philox4x64, raw 64-bit words",
            "key": "[seed, first 8 bytes of sha256(utf-8 key) as little-endian uint64]",
            "counter": "[0, 0, copy, op_index]",
        },
        sharding="shard = H mod num_shards, records sorted by H; H = sha256(key + NUL + copy)[:8] little-endian",
        splits=splits,
        run=plan.run,
        targets=None if (targets := annotated.plan_targets(plan)) is None else targets.info(config.rules),
    )


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
