"""Which modules a local worker imports, and the warm worker server that imports them once for all workers.

Apart from ``run`` so that the CLI can start the server first thing, before anything imports Beam: the
server's imports then overlap the driver's (``pipeline.runtime.warm_workers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.runtime.warm_workers import WarmWorkers

# What a local worker process imports before its first image (found from a worker's ``sys.modules`` after a
# job): the warm worker server imports these once and forks the workers from it (``warm_workers``).
WORKER_MODULES = (
    "pipeline.job",  # first: it installs transforms.tf_import before anything imports TensorFlow
    "tensorflow",  # by name it is only the module here; with AUGBEAM_LAZY_TENSORFLOW=0 the whole import
    "PIL.JpegImagePlugin",
    "PIL.ImageOps",
    "pipeline.job.graph",
    "pipeline.job.list_stage",
    "pipeline.job.prepare",
    "pipeline.format.tfds_info",
    "pipeline.runtime.tf_threads",
    # last: the names the modules above use (read from their sources)
    "pipeline.job.warm_start:resolve_tensorflow_names",
)


def resolve_tensorflow_names() -> None:
    """The TensorFlow names the job's code uses, resolved in the server rather than in each worker after the fork.

    ``import tensorflow`` resolves its API name by name (``transforms.tf_import``); without this, every worker
    would import the modules behind those names itself (about 1.7 CPU-s each, measured in docs/performance.md).
    """
    from transforms import tf_import

    tf_import.resolve_used_by("transforms", "pipeline")


def start_warm_workers(beam_args: list[str]) -> WarmWorkers | None:
    """The warm worker server for a run with ``beam_args`` (as the user gave them), or None where none applies."""
    from pipeline.runtime import warm_workers

    return warm_workers.start(beam_args, WORKER_MODULES)
