"""The job from start to finish: check, open the input, build and run the Beam graph, finalize.

The driver's work is O(1) or O(shards), never O(inputs): it checks the
options and the output folder, lists the input's top-level folders, builds a
graph whose size does not depend on the input, and after the run reads one
small summary per shard. Everything per input runs on the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline import fsutil
from pipeline.errors import UserError, refusal_in
from pipeline.format.manifest import Manifest
from pipeline.job.finalize import finalize
from pipeline.job.listing import Source, open_source
from pipeline.job.options import JobConfig
from pipeline.job.output_lock import OutputLock
from pipeline.job.prepare import check_output, check_target, check_writable, run_file
from pipeline.job.side_files import warm_up
from pipeline.job.warm_start import start_warm_workers
from pipeline.runtime.runners import (
    check_paths_reachable,
    default_parallelism,
    fn_api_runner,
    parallelism_line,
    runs_remotely,
    worker_packaging,
)
from pipeline.runtime.scratch import drop_pipeline_temp, make_scratch, remove_dead_scratch, remove_scratch
from pipeline.runtime.storage_faults import AGAIN, RESUME, as_storage_fault, storage_faults
from pipeline.runtime.tf_threads import resolve_tf_threads
from pipeline.runtime.worker_logs import quiet_worker_logs

if TYPE_CHECKING:
    from pipeline.job.progress import ProgressMonitor
    from pipeline.runtime.warm_workers import WarmWorkers

PHASES = ("check", "listing", "graph", "run", "finalize")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of the driver's work: its wall time and the driver's peak RSS at its end (``--phase-log``)."""

    phase: str
    seconds: float
    peak_rss_mb: float


class _PhaseClock:
    """Times the driver's phases; the peak RSS is the process's high-water mark, so it only grows."""

    def __init__(self, on_phase: Callable[[Phase], None] | None) -> None:
        self.on_phase = on_phase
        self.started = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        if self.on_phase is not None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.on_phase(Phase(name, round(now - self.started, 3), round(peak, 1)))
        self.started = now


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


def build_pipeline(
    config: JobConfig,
    source: Source,
    options: Any,
    tf_threads: int = 0,
    remote: bool = False,
    listing_spill: str | None = None,
    token: str = "",
    worker_command: str | None = None,
) -> Any:
    """The whole job as a Beam pipeline, not yet run; its size does not depend on the number of inputs.

    What it holds: the source's units (O(classes)), the config and the run's
    lock token (for ``run.json``). Listing, planning, preparing the folder and
    writing the shards all run on workers.
    """
    import apache_beam as beam

    from pipeline.job.graph import PlanRecords, Prepare, WriteShards
    from pipeline.job.list_stage import ListInputs
    from pipeline.job.shard import SPILL_DIR, work_dir

    runner = fn_api_runner(options, worker_command)  # None: Beam picks
    p = beam.Pipeline(runner=runner, options=options)
    drop_pipeline_temp(p)  # so neither a graph that is never run nor a killed run leaves it in the temp folder
    # On the DirectRunner a listing file's rows go through files too (``listing_spill``: a folder the caller
    # made outside the output folder, which the prepare step may clear while they are still to be read).
    listing_dir = listing_spill if runner is not None else None
    work, plan = p | "ListInputs" >> ListInputs(config, source, refuse_local=remote, spill_dir=listing_dir)
    prepared = plan | "Prepare" >> Prepare(config, token)
    # On the DirectRunner whatever crosses the shuffle stays in this process: the records go through files.
    spill_dir = fsutil.join(work_dir(config.output), SPILL_DIR) if runner is not None else None
    planned = work | "PlanRecords" >> PlanRecords(prepared, source, spill_dir, config.output)
    _ = planned | "WriteShards" >> WriteShards(config, prepared, source.prefix, tf_threads)
    return p


def graph_size(config: JobConfig, beam_args: list[str] | None = None) -> int:
    """Bytes of the pipeline proto a runner would be sent for this job, built without running anything."""
    options = pipeline_options(list(beam_args or []))
    p = build_pipeline(config, open_job_source(config), options)
    return len(p.to_runner_api().SerializeToString())


def open_job_source(config: JobConfig) -> Source:
    """The input as the driver sees it: a folder or listing, or (``--annotations``) a folder and its annotations."""
    if config.annotations:
        from pipeline.job.annotated import open_annotated

        return open_annotated(config)
    return open_source(config.input, config.classes)


def run_job(
    config: JobConfig,
    beam_args: list[str] | None = None,
    progress: str = "none",
    on_result: Callable[[Any], None] | None = None,
    shared_mount: bool = False,
    tf_threads: int | str = "auto",
    on_phase: Callable[[Phase], None] | None = None,
    warm: WarmWorkers | None = None,
) -> Manifest:
    """Runs the whole job and returns the manifest.

    ``progress`` (``auto``, ``bar``, ``lines``, ``none``) shows the run on
    stderr; it and ``tf_threads`` (``tf_threads.resolve_tf_threads``)
    are arguments, not part of ``JobConfig``, because they never change the
    output. ``on_result`` gets Beam's ``PipelineResult`` (its metrics) before
    finalizing; the manifest never holds runner details. ``on_phase`` gets
    each ``Phase`` of the driver's work as it ends. Without Beam options
    that choose the DirectRunner's mode, it runs one worker process per core
    (``runners.default_parallelism``) and says so in one line on stderr.
    Local worker processes are forked from a warm server (``warm_workers``):
    ``warm`` when the caller started it early (``start_warm_workers``, which it
    then closes), else one started here.

    It holds the output folder's lock (``output_lock``) from before it looks
    at what the folder holds until it returns or raises: a second run into the
    folder is refused in one line meanwhile.
    """
    from pipeline.job.progress import ProgressMonitor
    from pipeline.job.shard import progress_dir

    given = list(beam_args or [])
    if warm is None:
        own = start_warm_workers(given)
        if own is not None:
            with own:
                return run_job(config, given, progress, on_result, shared_mount, tf_threads, on_phase, own)
    clock = _PhaseClock(on_phase)
    beam_args = default_parallelism(given)  # every core, unless the user chose the local mode
    options = pipeline_options(beam_args)
    threads = resolve_tf_threads(tf_threads, beam_args)
    check_paths_reachable(beam_args, config.input, config.output, shared_mount)
    monitor = ProgressMonitor(progress_dir(config.output), 0, progress, plan_file=run_file(config.output))
    clock.done("check")
    source = open_job_source(config)
    with storage_faults(config.output, AGAIN):  # a file in the way, a folder that cannot be made: before any work
        check_target(config, source)
        fsutil.make_dirs(config.output)
    with OutputLock.take(config.output) as lock:
        with storage_faults(config.output, AGAIN):  # read-only, not writable: before any work
            check_output(config, source)
            check_writable(config.output)
            remove_dead_scratch()  # the listing spills of killed runs
            listing_spill = make_scratch() if source.is_table else None
        clock.done("listing")
        return _run_locked(
            config, source, options, beam_args, given, threads, monitor, clock, lock, on_result, listing_spill, warm
        )


def _run_locked(
    config: JobConfig,
    source: Source,
    options: Any,
    beam_args: list[str],
    given: list[str],
    threads: int,
    monitor: ProgressMonitor,
    clock: _PhaseClock,
    lock: OutputLock,
    on_result: Callable[[Any], None] | None,
    listing_spill: str | None,
    warm: WarmWorkers | None,
) -> Manifest:
    """``run_job`` once the folder's lock is held and the folder checked: build, run, finalize."""
    from pipeline.job.graph import counters
    from pipeline.job.shard import work_dir
    from pipeline.runtime.watchdog import run_watched, start_bound, start_hint

    try:
        p = build_pipeline(
            config,
            source,
            options,
            threads,
            remote=runs_remotely(beam_args),
            listing_spill=listing_spill,
            token=lock.token,
            worker_command=warm.command if warm is not None else None,
        )
        p.to_runner_api()  # what every runner does first; timed here as part of building the graph
        clock.done("graph")
        threading.Thread(target=warm_up, name="augbeam-warm-up", daemon=True).start()  # finalize's imports
        if beam_args != given:
            print(parallelism_line(beam_args), file=sys.stderr)
        if warm is not None:
            warm.used = True  # from here its workers may run: closing it waits for them
        with monitor, quiet_worker_logs():
            result = run_watched(p, work_dir(config.output), start_bound(options), start_hint(options))
    except Exception as exc:
        refused = _one_line(exc, config.output)
        if refused is None:
            raise
        raise refused from None
    finally:
        if listing_spill is not None:
            remove_scratch(listing_spill)
    clock.done("run")
    log = logging.getLogger(__name__)
    if log.isEnabledFor(logging.INFO):
        log.info("augbeam counters (for runner UIs, not the manifest's counts): %s", counters(result))
    if on_result is not None:
        on_result(result)
    with storage_faults(config.output, RESUME):
        manifest = finalize(config, lock)
    clock.done("finalize")
    return manifest


def _one_line(exc: Exception, output: str) -> UserError | None:
    """A run's failure as a one-line ``UserError`` (a worker's refusal, a write fault), or None for anything else.

    A worker's ``UserError`` or write fault reaches here as a runner's error whose text carries the line
    (``errors.refusal_in``); a write fault in this process (the driver's own writes) is found in ``exc``.
    """
    message = refusal_in(exc)
    if message is not None:
        return UserError(message)
    if isinstance(exc, UserError):
        return exc
    return as_storage_fault(exc, output, RESUME)
