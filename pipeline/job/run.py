"""The job from start to finish: check, list, run the Beam graph, finalize.

Everything a user can get wrong (input, output folder, options, config) is
checked in the driver before the pipeline starts.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from pipeline import fsutil
from pipeline.errors import UserError
from pipeline.format.manifest import MANIFEST, Manifest
from pipeline.format.tfds_info import DATASET_INFO as TFDS_INFO
from pipeline.job.finalize import finalize
from pipeline.job.listing import Listing, list_inputs
from pipeline.job.options import JobConfig
from pipeline.job.shard import WORK_DIR
from pipeline.job.side_files import warm_up
from pipeline.runtime.runners import check_paths_reachable, fn_api_runner, worker_packaging
from pipeline.runtime.tf_threads import resolve_tf_threads


def prepare_output(config: JobConfig, listing: Listing) -> None:
    """Refuses a non-empty output unless ``overwrite``; then clears it, manifest first."""
    out = config.output
    _refuse_overlap(out, listing)
    if not fsutil.is_empty_dir(out):
        if fsutil.is_local(out) and not os.path.isdir(out):
            raise UserError(f"--output {out!r} is a file; give a folder")
        if not config.overwrite:
            raise UserError(f"--output {out!r} is not empty; pass --overwrite to replace it, or choose a new folder")
        # The manifest and TFDS's metadata go first: from then on no reader takes the folder for a finished run.
        fsutil.clear_dir(out, first=[MANIFEST, TFDS_INFO])
    fsutil.make_dirs(out)
    fsutil.make_dirs(fsutil.join(out, WORK_DIR))


def _refuse_overlap(out: str, listing: Listing) -> None:
    """The output must not hold any input, nor sit inside a listed folder: --overwrite would delete inputs."""
    if not fsutil.is_local(out):
        prefix = out.rstrip("/") + "/"
        root = listing.root.rstrip("/") + "/"
        if listing.kind == "folder" and (root.startswith(prefix) or prefix.startswith(root)):
            raise UserError(f"--output {out!r} overlaps --input {listing.root!r}; choose a separate folder")
        if root.startswith(prefix) or any(item.path.startswith(prefix) for item in listing.items):
            raise UserError(f"--output {out!r} holds inputs of the listing; choose a folder that holds none")
        return
    out_abs = os.path.abspath(out)

    def within(path: str, folder: str) -> bool:
        return os.path.commonpath([path, folder]) == folder

    if listing.kind == "folder" and (within(out_abs, listing.root) or within(listing.root, out_abs)):
        raise UserError(f"--output {out!r} overlaps --input {listing.root!r}; choose a folder outside it")
    local = [item.path for item in listing.items if fsutil.is_local(item.path)] + [listing.root]
    if any(within(path, out_abs) for path in local):
        raise UserError(f"--output {out!r} holds inputs of the listing; choose a folder that holds none")


def check_listing_errors(listing: Listing, max_rate: float) -> None:
    """Fails before any work (and before --overwrite deletes anything) when the listing alone is over the rate."""
    listed = sum(listing.listed.values())
    failed = [e for e in listing.errors if e.error_type != "DuplicateInput"]
    if listed and len(failed) / listed > max_rate:
        reasons = Counter(e.error_type for e in failed).most_common(4)
        top = ", ".join(f"{n} {kind}" for kind, n in reasons)
        raise UserError(
            f"--input {listing.root!r}: {len(failed)} of {listed} entries ({len(failed) / listed:.1%}) are refused "
            f"while listing, over --max-error-rate {max_rate:g}: {top} (first: {failed[0].key}: "
            f"{failed[0].message}); fix the input or options, or raise --max-error-rate"
        )


def plan_shards(config: JobConfig, listing: Listing) -> tuple[dict[str, int], dict[str, int]]:
    """Copies and shard counts per split, from the listing and config alone."""
    per_split = Counter(item.split for item in listing.items)
    copies = {split: config.copies_for(split) for split in listing.splits()}
    shards = {split: config.shards_for(per_split[split] * copies[split]) for split in listing.splits()}
    return copies, shards


def pipeline_options(beam_args: list[str]) -> Any:
    """Beam's options from the arguments after ``--``; the DirectRunner unless told otherwise."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    try:
        args = worker_packaging(list(beam_args))
        options = PipelineOptions(args)
        runner = options.view_as(StandardOptions).runner or "DirectRunner"
    except SystemExit:
        raise UserError(f"bad Beam option(s) after '--': {' '.join(beam_args)}") from None
    try:
        create_runner(runner)
    except (ValueError, ImportError) as exc:
        raise UserError(f"--runner={runner}: {exc}") from None
    if len(args) > len(beam_args):  # remote workers pip-install the sdist Beam builds from it
        print(f"augbeam: {runner} workers get the project through {args[-1]} (added)", file=sys.stderr)
    return options


def run_job(
    config: JobConfig,
    beam_args: list[str] | None = None,
    progress: str = "none",
    on_result: Callable[[Any], None] | None = None,
    shared_mount: bool = False,
    tf_threads: int | str = "auto",
) -> Manifest:
    """Runs the whole job and returns the manifest.

    ``progress`` (``auto``, ``bar``, ``lines``, ``none``) shows the run on
    stderr; it and ``tf_threads`` (``tf_threads.resolve_tf_threads``)
    are arguments, not part of ``JobConfig``, because they never change the
    output. ``on_result`` gets Beam's ``PipelineResult`` (its metrics) before
    finalizing; the manifest never holds runner details.
    """
    import apache_beam as beam

    from pipeline.job.graph import CountListingErrors, PlanRecords, WriteShards, counters
    from pipeline.job.progress import ProgressMonitor
    from pipeline.job.shard import progress_dir

    beam_args = beam_args or []
    listing = list_inputs(config.input, config.classes)
    options = pipeline_options(beam_args)
    threads = resolve_tf_threads(tf_threads, beam_args)
    items = [item.path for item in listing.items]
    check_paths_reachable(beam_args, config.input, config.output, items, shared_mount)
    check_listing_errors(listing, config.max_error_rate)
    planned = sum(config.copies_for(item.split) for item in listing.items)
    monitor = ProgressMonitor(progress_dir(config.output), planned, progress)  # a bad mode fails before any delete
    prepare_output(config, listing)
    copies, shards = plan_shards(config, listing)
    runner = fn_api_runner(options)  # None: Beam picks
    threading.Thread(target=warm_up, name="augbeam-warm-up", daemon=True).start()  # finalize's imports
    with monitor, beam.Pipeline(runner=runner, options=options) as p:  # Beam runs the graph when its block ends
        _ = p | "CountListingErrors" >> CountListingErrors(listing.errors)
        _ = (
            p
            | "ListInputs" >> beam.Create(listing.items, reshuffle=False)  # no shuffle before the one by shard
            | "PlanRecords" >> PlanRecords(copies, shards)
            | "WriteShards" >> WriteShards(config, shards, threads)
        )
    result = p.result
    log = logging.getLogger(__name__)
    if log.isEnabledFor(logging.INFO):
        log.info("augbeam counters (for runner UIs, not the manifest's counts): %s", counters(result))
    if on_result is not None:
        on_result(result)
    return finalize(config, listing, shards)
