"""Which Beam runner a job uses, and how that runner's workers get this project.

A local runner's workers are this Python environment, so they already import
``pipeline`` and ``transforms``. A remote runner's workers (Dataflow, Flink,
Spark, a job server) start from Beam's SDK container, which has neither
TensorFlow nor augbeam: they need either a container with the project
installed (the repo's ``Dockerfile``) or ``--setup_file``, from which Beam
builds an sdist at submission and the workers pip-install it at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UserError

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_RUNNER = "DirectRunner"
# Beam's StandardOptions.LOCAL_RUNNERS plus InteractiveRunner (it wraps a DirectRunner by default).
LOCAL_RUNNERS = frozenset(
    {
        "bundlebaseddirectrunner",
        "directrunner",
        "fnapirunner",
        "interactiverunner",
        "prismrunner",
        "switchingdirectrunner",
        "testdirectrunner",
    }
)
# Environments whose workers the user started (EXTERNAL: a worker pool) or that run in the submitting process.
SELF_STARTED_ENVIRONMENTS = ("EXTERNAL", "LOOPBACK")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def runner_name(beam_args: list[str]) -> str:
    """The ``--runner`` Beam will use (either option form), or Beam's default."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    return PipelineOptions(list(beam_args)).view_as(StandardOptions).runner or DEFAULT_RUNNER


def is_local(runner: str) -> bool:
    """True for runners whose workers are this machine's Python; accepts short, long and dotted names."""
    name = runner.rsplit(".", 1)[-1].lower()
    if not name.endswith("runner"):
        name += "runner"
    return name in LOCAL_RUNNERS


def project_setup_file() -> Path:
    """This checkout's setup.py; a UserError when augbeam was installed from a wheel and has none."""
    setup = PROJECT_ROOT / "setup.py"
    packaged = all((PROJECT_ROOT / package / "__init__.py").is_file() for package in ("pipeline", "transforms"))
    if not (packaged and setup.is_file() and 'name="augbeam"' in setup.read_text(encoding="utf-8")):
        raise UserError(
            "remote workers need augbeam, but it is installed without its setup.py: pass "
            "--sdk_container_image=IMAGE built from the repository's Dockerfile (on Flink, Spark or PortableRunner: "
            "--environment_config=IMAGE), or --setup_file=PATH pointing at a source checkout's setup.py"
        )
    return setup


def worker_packaging(beam_args: list[str]) -> list[str]:
    """Beam's arguments, plus ``--setup_file=<this repo's setup.py>`` when remote workers would lack the project.

    Nothing is added when:
    - the runner is local (its workers import this environment);
    - the user chose how workers get the code: ``--setup_file``, ``--sdk_container_image`` (or its old name
      ``--worker_harness_container_image``), or on a portable runner with the DOCKER environment an image
      through ``--environment_config`` or ``--environment_options=docker_container_image=...``;
    - ``--environment_type`` is EXTERNAL or LOOPBACK: the workers are processes the user started (a worker
      pool) or the submitting process itself, so they run in an environment the user set up, usually this
      one. Staging an sdist there would make each worker pip-install the project and its pinned stack again,
      which is slow, needs a package index, and could replace the versions the user installed. Beam picks
      LOOPBACK itself for FlinkRunner without a cluster (``--flink_master`` [auto] or [local]) and SparkRunner
      on ``--spark_master_url=local[N]``, when no environment is given.
    """
    from apache_beam.options.pipeline_options import (
        PipelineOptions,
        PortableOptions,
        SetupOptions,
        StandardOptions,
        WorkerOptions,
    )

    args = list(beam_args)
    options = PipelineOptions(args)
    if is_local(options.view_as(StandardOptions).runner or DEFAULT_RUNNER):
        return args
    if options.view_as(SetupOptions).setup_file:
        return args
    worker = options.view_as(WorkerOptions)
    if worker.sdk_container_image or worker.worker_harness_container_image:
        return args
    portable = options.view_as(PortableOptions)
    environment = environment_type(options)
    if any(kind in environment for kind in SELF_STARTED_ENVIRONMENTS):
        return args
    if "DOCKER" in environment and (
        portable.environment_config or portable.lookup_environment_option("docker_container_image")
    ):
        return args
    return [*args, f"--setup_file={project_setup_file()}"]


def environment_type(options: PipelineOptions) -> str:
    """The SDK environment Beam will give the workers (upper case): the user's, else the runner's default."""
    from apache_beam.options.pipeline_options import (
        FlinkRunnerOptions,
        PortableOptions,
        SparkRunnerOptions,
        StandardOptions,
    )
    from apache_beam.runners.portability.flink_runner import MAGIC_HOST_NAMES
    from apache_beam.runners.portability.spark_runner import LOCAL_MASTER_PATTERN

    given = options.view_as(PortableOptions).environment_type
    if given:
        return given.upper()
    runner = (options.view_as(StandardOptions).runner or DEFAULT_RUNNER).rsplit(".", 1)[-1].lower()
    if runner in ("flink", "flinkrunner") and options.view_as(FlinkRunnerOptions).flink_master in MAGIC_HOST_NAMES:
        return "LOOPBACK"
    if runner in ("spark", "sparkrunner") and re.match(
        LOCAL_MASTER_PATTERN, options.view_as(SparkRunnerOptions).spark_master_url
    ):
        return "LOOPBACK"
    return "DOCKER"
