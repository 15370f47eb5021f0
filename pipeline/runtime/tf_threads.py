"""TensorFlow's process settings on a worker: thread pools sized to the worker's share of the cores.

TensorFlow sizes its thread pools to every core of the machine. When several
worker processes share those cores (the DirectRunner's multi_processing mode,
one SDK process per vCPU on a cluster), each process's pool spins and hands
work across threads for little gain: measured on a 2-core machine, one
thread per process cut CPU per image from 12.5-13.2 ms to 9.8 ms (about a
quarter) for the same wall time of one process. Thread counts never change
the bytes written (reductions that could depend on them sum integers).

After TensorFlow's import the process holds several hundred thousand
long-lived Python objects; ``gc.freeze()`` takes them out of the cyclic
collector's passes. Measured: a TensorFlow process's exit went from about
1.1 s to 0.1 s, and the DirectRunner stops its worker processes one after
another, so this is paid once per worker at the end of every local run.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from pipeline.errors import UserError

AUTO = "auto"
# --tf-threads: at most 1024, past the cores of any one machine (the largest cloud VMs have under 900 vCPUs).
# Each thread is a real OS thread with its own stack in every worker process: a million of them would exhaust
# the machine's threads and memory before the first image. Kept here, beside its parse, as the runtime may
# import no job module.
MAX_TF_THREADS = 1024
_state: dict[str, Any] = {"configured": False}


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, so a container's CPU set counts)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_tf_threads(value: str | int) -> int | str:
    """``--tf-threads``: ``auto`` or an integer in [0, ``MAX_TF_THREADS``] (0: TensorFlow's own default)."""
    if value == AUTO:
        return AUTO
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = -1
    text = value if isinstance(value, str) else repr(value)
    shown = repr(value) if len(text) <= 24 else f"{text[:20]!r}... ({len(text)} characters)"
    if threads < 0 or isinstance(value, bool | float):
        raise UserError(f"--tf-threads {shown}: use auto, 0 (TensorFlow's default) or a positive integer")
    if threads > MAX_TF_THREADS:
        raise UserError(
            f"--tf-threads {shown}: at most {MAX_TF_THREADS} threads per worker process (more than the cores only "
            "adds threads); use auto"
        )
    return threads


def resolve_tf_threads(requested: int | str, beam_args: list[str]) -> int:
    """The thread count each worker gives TensorFlow; 0 leaves TensorFlow's default.

    ``auto``: on the DirectRunner in multi_processing mode, the cores divided
    among its worker processes (at least 1), the default mode included
    (``runners.default_parallelism``: one worker per core, so 1 thread each).
    Elsewhere TensorFlow's default: one in-memory process uses every core
    itself, and a cluster's workers are sized by the runner (pass
    ``--tf-threads 1`` where a runner starts one SDK process per core, as
    Dataflow does for Python).
    """
    requested = parse_tf_threads(requested)
    if requested != AUTO:
        return int(requested)
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    from pipeline.runtime.runners import default_parallelism, is_local, runner_name

    if not is_local(runner_name(beam_args)):
        return 0
    direct = PipelineOptions(default_parallelism(beam_args, usable_cpus())).view_as(DirectOptions)
    workers = direct.direct_num_workers
    if workers is not None and workers <= 0:  # Beam: 0 means one worker per core
        workers = usable_cpus()
    if direct.direct_running_mode != "multi_processing" or not workers or workers == 1:
        return 0
    return max(1, usable_cpus() // workers)


def configure_tensorflow(threads: int) -> None:
    """Imports TensorFlow, sizes its thread pools (``threads`` > 0) and freezes the import's objects; once."""
    if _state["configured"]:
        return
    import tensorflow as tf

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran in this process (a test, a LOOPBACK worker): keep its pools
            logging.getLogger(__name__).info("TensorFlow already initialised; --tf-threads %d not applied", threads)
    gc.freeze()
    _state["configured"] = True


def tensorflow_threads() -> tuple[int, int]:
    """TensorFlow's (intra-op, inter-op) settings in this process (0: its default)."""
    import tensorflow as tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
