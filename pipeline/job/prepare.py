"""The output folder before the run: the driver's O(1) checks, and the worker's step once the listing is known.

The driver checks what it can without the listing: first what needs no look
inside the folder (``check_target``: no overlap with the input, not a file),
then, holding the folder's lock (``output_lock``), what it holds
(``check_output``: empty, or may be overwritten or resumed, with the config of
the run being resumed). The lock file is no part of what the folder holds.
The rest waits for the listing, which now runs on the workers:
``prepare_on_worker`` refuses a listing over the error rate or one that does
not match the run being resumed, and only then clears the folder (for
``--overwrite``: the manifest first, the lock kept) and writes ``run.json``.
So a refused listing never costs the user their previous output.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from pipeline import __version__, fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import MANIFEST
from pipeline.format.records import FORMAT_VERSION
from pipeline.format.tfds_info import DATASET_INFO as TFDS_INFO
from pipeline.job.listing import DUPLICATE, Source, check_usable
from pipeline.job.options import JobConfig
from pipeline.job.output_lock import LOCK_FILE
from pipeline.job.plan import RUN_FILE, Plan, RunInfo
from pipeline.job.shard import WORK_DIR


def run_file(output: str) -> str:
    return fsutil.join(output, WORK_DIR, RUN_FILE)


def read_run(output: str) -> RunInfo | None:
    """The ``run.json`` of an unfinished run in ``output``, if there is one."""
    path = run_file(output)
    if not fsutil.exists(path):
        return None
    return RunInfo.from_json(json.loads(fsutil.read_bytes(path)))


def check_target(config: JobConfig, source: Source) -> None:
    """What the driver refuses before it takes the folder's lock: the options and the path, not what it holds."""
    out = config.output
    refuse_overlap(out, source)
    if config.resume and config.overwrite:
        raise UserError("--resume keeps a run's finished shards and --overwrite deletes them: pass one of them")
    if fsutil.is_local(out) and os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--output {out!r} is a file; give a folder")


def check_output(config: JobConfig, source: Source) -> None:
    """What the driver can refuse before any work: O(1) calls, whatever the input's size.

    What the folder holds is only looked at by the run that holds its lock (``run_job`` takes it first).
    """
    out = config.output
    check_target(config, source)
    if fsutil.is_empty_dir(out, ignore=(LOCK_FILE,)):
        return
    previous = read_run(out)
    if previous is None and _killed_before_plan(out):
        return  # a run killed or refused while listing left its work folder and nothing else: as good as empty
    if config.resume:
        # A manifest with the run's plan still beside it: finalize was killed after the manifest, before its end.
        if previous is None and fsutil.exists(fsutil.join(out, MANIFEST)):
            raise UserError(f"--output {out!r} holds a finished run (manifest.json): nothing to resume")
        if previous is None:
            raise UserError(
                f"--output {out!r} holds no unfinished augbeam run to resume; pass --overwrite to replace what it holds"
            )
        check_resumable(config, previous)
        return
    if not config.overwrite:
        hint = "pass --resume to continue its unfinished run, " if previous is not None else ""
        raise UserError(f"--output {out!r} is not empty; {hint}pass --overwrite to replace it, or choose a new folder")


WRITE_CHECK = "write-check"  # in the work folder: a run killed between writing and deleting it leaves no stray file


def check_writable(out: str) -> None:
    """Writes and deletes one small file in the work folder: a read-only or unwritable output fails here, in one
    line (``storage_faults``), before any work, rather than on every worker. O(1) calls."""
    work = fsutil.join(out, WORK_DIR)
    fsutil.make_dirs(work)
    probe = fsutil.join(work, WRITE_CHECK)
    fsutil.write_atomic(probe, b"")
    fsutil.discard(probe)


def _killed_before_plan(out: str) -> bool:
    """The folder holds the work folder alone: a run killed or refused before its plan was written (no ``run.json``)."""
    if fsutil.is_local(out):
        return [name for name in os.listdir(out) if name != LOCK_FILE] == [WORK_DIR]
    work = fsutil.normalize(fsutil.join(out, WORK_DIR)) + "/"
    lock = fsutil.join(fsutil.normalize(out), LOCK_FILE)
    return all(path.startswith(work) or path == lock for path, _ in fsutil.list_files(out))


def check_resumable(config: JobConfig, previous: RunInfo) -> None:
    """The run being resumed must have the same config, format and version; says in one line what differs."""
    now = config.resolved()
    then = dict(previous.config)
    differ = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if previous.format_version != FORMAT_VERSION or previous.augbeam != __version__:
        raise UserError(
            f"--resume: the unfinished run in {config.output!r} was made by augbeam {previous.augbeam} "
            f"(format {previous.format_version}), this is {__version__} (format {FORMAT_VERSION}); "
            "pass --overwrite to start over"
        )
    if differ:
        shown = ", ".join(f"{k} (then {_short(then.get(k))}, now {_short(now.get(k))})" for k in differ[:3])
        raise UserError(
            f"--resume: the config differs from the unfinished run's: {shown}; use the same options, or --overwrite"
        )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def refuse_overlap(out: str, source: Source) -> None:
    """The output must not be, hold or sit inside the input folder, nor be the listing file's folder's child.

    Listed files inside the output are refused per file by the listing workers
    (``list_stage.refuse_inside_output``).
    """
    if not fsutil.is_local(out):
        prefix = out.rstrip("/") + "/"
        root = source.root.rstrip("/") + "/"
        if source.kind in ("folder", "annotations") and (root.startswith(prefix) or prefix.startswith(root)):
            raise UserError(f"--output {out!r} overlaps --input {source.root!r}; choose a separate folder")
        if root.startswith(prefix):
            raise UserError(f"--output {out!r} holds inputs of the listing; choose a folder that holds none")
        return
    out_abs = os.path.abspath(out)

    def within(path: str, folder: str) -> bool:
        return os.path.commonpath([path, folder]) == folder

    if not fsutil.is_local(source.root):
        return
    if source.kind in ("folder", "annotations") and (within(out_abs, source.root) or within(source.root, out_abs)):
        raise UserError(f"--output {out!r} overlaps --input {source.root!r}; choose a folder outside it")
    if within(source.root, out_abs):
        raise UserError(f"--output {out!r} holds inputs of the listing; choose a folder that holds none")


def check_listing_errors(plan: Plan, max_rate: float) -> None:
    """Fails before any rendering (and before --overwrite deletes anything) when the listing alone is over the rate."""
    listed = sum(plan.listed.values())
    failed = Counter({k: n for k, n in plan.refused.items() if k != DUPLICATE})
    total = sum(failed.values())
    if listed and total / listed > max_rate:
        top = ", ".join(f"{n} {kind}" for kind, n in failed.most_common(4))
        first = f" (first: {plan.first_refused[0]}: {plan.first_refused[1]})" if plan.first_refused else ""
        raise UserError(
            f"--input {plan.root!r}: {total} of {listed} entries ({total / listed:.1%}) are refused "
            f"while listing, over --max-error-rate {max_rate:g}: {top}{first}; fix the input or options, "
            "or raise --max-error-rate"
        )


def prepare_on_worker(config: JobConfig, plan: Plan, token: str = "") -> None:
    """Once the listing is known: refuse it, or resume, or clear the folder; then write ``run.json``.

    ``token`` is the run's (its lock's): ``run.json`` carries it, so finalize knows the plan it reads is
    its own run's. Idempotent, so a retried bundle does the same again.
    """
    first = plan.first_refused
    from pipeline.format.manifest import ErrorRow

    check_usable(
        plan.root,
        sum(plan.inputs.values()),
        sum(plan.refused.values()),
        ErrorRow(first[0], None, "", "listing", "", first[1]) if first else None,
    )
    check_listing_errors(plan, config.max_error_rate)
    out = config.output
    previous = read_run(out)
    if config.resume and previous is not None:
        if previous.plan.listing != plan.listing:
            then, now = previous.plan, plan
            raise UserError(
                f"--resume: the input listing differs from the unfinished run's (then {sum(then.listed.values())} "
                f"entries, {sum(then.inputs.values())} usable; now {sum(now.listed.values())}, "
                f"{sum(now.inputs.values())}, or files renamed or relabelled); use the same input, or --overwrite"
            )
        if previous.plan.run != plan.run:
            raise UserError(
                "--resume: the unfinished run was planned differently (classes or shard counts); use --overwrite"
            )
        if not fsutil.exists(fsutil.join(out, MANIFEST)) and fsutil.exists(fsutil.join(out, TFDS_INFO)):
            fsutil.delete(fsutil.join(out, TFDS_INFO))  # left by an older augbeam that wrote it before the manifest
    elif not fsutil.is_empty_dir(out, ignore=(LOCK_FILE,)) and (config.overwrite or previous is not None):
        # The manifest and TFDS's metadata go first, before any other file of the folder changes: from then on
        # no reader takes the folder for a finished run, and one reading it already stops at its next shard.
        # The lock stays: it is this run's.
        fsutil.clear_dir(out, first=[MANIFEST, TFDS_INFO], keep=(LOCK_FILE,))
    fsutil.make_dirs(fsutil.join(out, WORK_DIR))
    info = RunInfo(plan, config.resolved(), __version__, FORMAT_VERSION, token)
    fsutil.write_atomic(run_file(out), json.dumps(info.to_json(), sort_keys=True, indent=1).encode())
