"""Which Beam runner a job uses, and how that runner's workers get this project.

A local runner's workers are this Python environment, so they already import
``pipeline`` and ``transforms``. A remote runner's workers (Dataflow, Flink,
Spark, a job server) start from Beam's SDK container, which has neither
TensorFlow nor augbeam: they need either a container with the project
installed (the repo's ``Dockerfile``) or ``--setup_file``, from which Beam
builds an sdist at submission and the workers pip-install it at start-up.
Which flag names that container depends on the runner (Beam ignores the other
one without a word), and remote workers cannot read this machine's files.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserError
from pipeline.runtime.worker_shim import WORKER_MODULE  # what a multi_processing worker process runs

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
# DataflowRunner's names (short, without "runner"): its workers take the container from --sdk_container_image only.
DATAFLOW_RUNNERS = frozenset({"dataflow", "testdataflow"})
# Environments whose workers the user started (EXTERNAL: a worker pool) or that run in the submitting process.
SELF_STARTED_ENVIRONMENTS = ("EXTERNAL", "LOOPBACK")
# Beam's options that choose the DirectRunner's local mode: given either, ``default_parallelism`` adds nothing.
DIRECT_MODE_FLAGS = ("--direct_num_workers", "--direct_running_mode")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # pipeline/runtime/runners.py -> the checkout


def runner_name(beam_args: list[str]) -> str:
    """The ``--runner`` Beam will use (either option form), or Beam's default."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    return PipelineOptions(list(beam_args)).view_as(StandardOptions).runner or DEFAULT_RUNNER


def is_direct(runner: str) -> bool:
    """True for the DirectRunner itself (short, long or dotted name), not the other local runners."""
    return runner.rsplit(".", 1)[-1].lower().removesuffix("runner") in {"direct", "switchingdirect"}


def is_streaming(beam_args: list[str]) -> bool:
    """Whether ``--streaming`` is set: the DirectRunner then runs its own streaming runner, not FnApiRunner."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    return bool(PipelineOptions(list(beam_args)).view_as(StandardOptions).streaming)


def chooses_local_mode(beam_args: list[str]) -> bool:
    """Whether the arguments give either of ``DIRECT_MODE_FLAGS`` (either option form; Beam takes no abbreviations)."""
    given = {arg.split("=", 1)[0] for arg in beam_args if arg.startswith("--")}
    return bool(given & set(DIRECT_MODE_FLAGS))


def default_parallelism(beam_args: list[str], cpus: int | None = None) -> list[str]:
    """Beam's arguments, with one ``multi_processing`` worker per usable core when the user chose no local mode.

    The shard is the unit of parallel work and Beam's DirectRunner runs one in-process worker unless told
    otherwise, so ``augbeam run`` with no Beam options used one core of many. Added only for a batch
    DirectRunner job (the default runner) given neither ``--direct_num_workers`` nor ``--direct_running_mode``
    (either option form; Beam takes no abbreviations), on more than one core: any explicit choice wins, and on
    one core worker processes would only add their start-up. The output never depends on it.
    """
    from pipeline.runtime.tf_threads import usable_cpus

    args = list(beam_args)
    cpus = usable_cpus() if cpus is None else cpus
    if cpus <= 1 or chooses_local_mode(args):
        return args
    try:
        if not is_direct(runner_name(args)) or is_streaming(args):
            return args
    except SystemExit:  # unparsable Beam options: ``run.pipeline_options`` reports them in one line
        return args
    return [*args, f"--direct_num_workers={cpus}", "--direct_running_mode=multi_processing"]


def parallelism_line(beam_args: list[str]) -> str:
    """One line saying how the local runner was set up, for ``default_parallelism``'s arguments."""
    workers = next(arg.split("=", 1)[1] for arg in beam_args if arg.startswith("--direct_num_workers="))
    return (
        f"augbeam: DirectRunner with {workers} worker processes, one per core (multi_processing; "
        "pass -- --direct_num_workers=1 for one in-process worker)"
    )


@functools.cache
def _quiet_runner_class() -> type:
    """FnApiRunner whose ``multi_processing`` workers start through ``pipeline.runtime.sdk_worker``.

    Beam starts them as ``python -m apache_beam.runners.worker.sdk_worker_main``, whose stderr (this
    process's) then shows every worker's start-up INFO lines, Beam's warnings about options it does not
    know, and the traceback of any error a DoFn raises, such as a user's mistake found while listing. The
    workers' log records still reach the driver through Beam's logging service (``worker_logs``).
    """
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    class QuietWorkersFnApiRunner(fn_runner.FnApiRunner):
        def __init__(self, worker_command: str | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._worker_command = (worker_command or f"{sys.executable} -m {WORKER_MODULE}").encode()

        def run_via_runner_api(self, pipeline_proto: Any, options: Any) -> Any:
            beam_command = f"{sys.executable} -m apache_beam.runners.worker.sdk_worker_main".encode()
            for environment in pipeline_proto.components.environments.values():
                # Beam's multi_processing environment: its payload is the worker's command line
                if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == beam_command:
                    environment.payload = self._worker_command
            return super().run_via_runner_api(pipeline_proto, options)

    return QuietWorkersFnApiRunner


def fn_api_runner(options: PipelineOptions, worker_command: str | None = None) -> Any | None:
    """Beam's FnApiRunner set up as the DirectRunner sets it up, for a batch DirectRunner job; else None.

    The DirectRunner first tries Prism, which downloads its binary at run time (no network here: a user's
    job must not depend on one), costs 0.1-0.2 s when that fails, and leaves an empty ``beam-temp*``
    folder in the system temp folder each time; it then runs this same FnApiRunner. Streaming jobs keep
    the DirectRunner (FnApiRunner runs batch only). Its ``multi_processing`` workers start quietly
    (``_quiet_runner_class``), or through ``worker_command`` when given (``warm_workers``' shim).
    """
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    standard = options.view_as(StandardOptions)
    if not is_direct(standard.runner or DEFAULT_RUNNER) or standard.streaming:
        return None
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return _quiet_runner_class()(worker_command=worker_command, provision_info=provision)


def is_local(runner: str) -> bool:
    """True for runners whose workers are this machine's Python; accepts short, long and dotted names."""
    name = runner.rsplit(".", 1)[-1].lower()
    if not name.endswith("runner"):
        name += "runner"
    return name in LOCAL_RUNNERS


def is_dataflow(runner: str) -> bool:
    """True for DataflowRunner (any name form): it reads the container from other flags than portable runners."""
    return runner.rsplit(".", 1)[-1].lower().removesuffix("runner") in DATAFLOW_RUNNERS


def container_flag(runner: str) -> str:
    """The flag that gives ``runner``'s workers a container: Beam 2.77 silently ignores the other runners' flag."""
    if is_dataflow(runner):
        return "--sdk_container_image=IMAGE"
    return "--environment_type=DOCKER --environment_config=IMAGE"


def project_setup_file(runner: str = "DataflowRunner") -> Path:
    """This checkout's setup.py; a UserError when augbeam was installed from a wheel and has none."""
    setup = PROJECT_ROOT / "setup.py"
    packaged = all((PROJECT_ROOT / package / "__init__.py").is_file() for package in ("pipeline", "transforms"))
    if not (packaged and setup.is_file() and 'name="augbeam"' in setup.read_text(encoding="utf-8")):
        raise UserError(
            f"remote workers need augbeam, but it is installed without its setup.py: pass {container_flag(runner)} "
            "with an image built from the repository's Dockerfile, or --setup_file=PATH pointing at a source "
            "checkout's setup.py"
        )
    return setup


def worker_packaging(beam_args: list[str]) -> list[str]:
    """Beam's arguments, plus ``--setup_file=<this repo's setup.py>`` when remote workers would lack the project.

    Nothing is added when:
    - the runner is local (its workers import this environment);
    - the user chose how workers get the code: ``--setup_file``, or a container through the flag the runner
      reads. DataflowRunner reads ``--sdk_container_image`` (or its old name ``--worker_harness_container_image``)
      and ignores the environment flags; Flink, Spark and PortableRunner read the image from the DOCKER
      environment (``--environment_config`` or ``--environment_options=docker_container_image=...``) and ignore
      ``--sdk_container_image``. The ignored flag is a UserError: the workers would start from Beam's plain
      image without augbeam, and nothing would say why;
    - ``--environment_type`` is EXTERNAL or LOOPBACK (not on Dataflow, whose workers are always containers): the
      workers are processes the user started (a worker pool) or the submitting process itself, so they run in
      an environment the user set up, usually this one. Staging an sdist there would make each worker
      pip-install the project and its pinned stack again, which is slow, needs a package index, and could
      replace the versions the user installed. Beam picks LOOPBACK itself for FlinkRunner without a cluster
      (``--flink_master`` [auto] or [local]) and SparkRunner on ``--spark_master_url=local[N]``, when no
      environment is given.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

    args = list(beam_args)
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner or DEFAULT_RUNNER
    if is_local(runner):
        return args
    check = _dataflow_container if is_dataflow(runner) else _portable_container
    if check(options, runner) or options.view_as(SetupOptions).setup_file:
        return args
    if any(kind in environment_type(options) for kind in SELF_STARTED_ENVIRONMENTS):
        return args
    return [*args, f"--setup_file={project_setup_file(runner)}"]


def _dataflow_container(options: PipelineOptions, runner: str) -> bool:
    """Whether the user gave Dataflow a container; the environment flags it ignores are a UserError."""
    from apache_beam.options.pipeline_options import PortableOptions, WorkerOptions

    portable = options.view_as(PortableOptions)
    if portable.environment_type and "DOCKER" not in portable.environment_type.upper():
        raise UserError(
            f"{runner} ignores --environment_type={portable.environment_type} (its workers always start from a "
            "container): leave it out, and give a container, if any, as --sdk_container_image=IMAGE"
        )
    for flag, given in (
        ("--environment_config", portable.environment_config),
        ("--environment_options=docker_container_image", portable.lookup_environment_option("docker_container_image")),
    ):
        if given:
            raise UserError(f"{runner} ignores {flag}: pass the container as --sdk_container_image={given}")
    worker = options.view_as(WorkerOptions)
    return bool(worker.sdk_container_image or worker.worker_harness_container_image)


def _portable_container(options: PipelineOptions, runner: str) -> bool:
    """Whether the user gave a portable runner a container; the Dataflow flags it ignores are a UserError."""
    from apache_beam.options.pipeline_options import PortableOptions, SetupOptions, WorkerOptions

    worker = options.view_as(WorkerOptions)
    # --prebuild_sdk_container_engine builds the workers' image FROM --sdk_container_image: there it is read.
    if not options.view_as(SetupOptions).prebuild_sdk_container_engine:
        for flag in ("sdk_container_image", "worker_harness_container_image"):
            if image := getattr(worker, flag):
                raise UserError(
                    f"{runner} ignores --{flag}: pass the container as --environment_type=DOCKER "
                    f"--environment_config={image} (or --environment_options=docker_container_image={image})"
                )
    portable = options.view_as(PortableOptions)
    image = portable.environment_config or portable.lookup_environment_option("docker_container_image")
    return "DOCKER" in environment_type(options) and bool(image)


def runs_remotely(beam_args: list[str]) -> bool:
    """True when the workers run on other machines: a remote runner, its environment neither EXTERNAL nor LOOPBACK.

    EXTERNAL workers are a pool the user started (often on this machine), LOOPBACK ones this process.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(list(beam_args))
    if is_local(options.view_as(StandardOptions).runner or DEFAULT_RUNNER):
        return False
    return not any(kind in environment_type(options) for kind in SELF_STARTED_ENVIRONMENTS)


def check_paths_reachable(beam_args: list[str], input_path: str, output_path: str, shared_mount: bool = False) -> None:
    """Refuses paths on this machine's disk when the workers run elsewhere, before anything starts.

    Remote workers would not find the inputs, or would write the shards to their own disks. The workers list
    the input and read a listing file themselves, so a local listing file is refused too; a listing naming
    local files is refused by the listing workers (``list_stage``), in one line as well.
    """
    from pipeline import fsutil  # imports Beam's filesystems: not at this module's import

    if shared_mount or not runs_remotely(beam_args):  # --shared-mount: the user says every worker sees these paths
        return
    runner = runner_name(beam_args)
    fix = (
        "use a shared filesystem URL (gs://, s3://, hdfs://...) or a local runner "
        "(or pass --shared-mount if every worker mounts this path)"
    )
    if fsutil.is_local(output_path):
        raise UserError(f"--output {output_path!r} is on this machine, which {runner} workers cannot reach; {fix}")
    if fsutil.is_local(input_path):
        raise UserError(f"--input {input_path!r} is on this machine, which {runner} workers cannot read; {fix}")


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

    runner = (options.view_as(StandardOptions).runner or DEFAULT_RUNNER).rsplit(".", 1)[-1].lower()
    if is_dataflow(runner):
        return "DOCKER"  # Dataflow workers are always containers, whatever --environment_type says
    given = options.view_as(PortableOptions).environment_type
    if given:
        return given.upper()
    if runner in ("flink", "flinkrunner") and options.view_as(FlinkRunnerOptions).flink_master in MAGIC_HOST_NAMES:
        return "LOOPBACK"
    if runner in ("spark", "sparkrunner") and re.match(
        LOCAL_MASTER_PATTERN, options.view_as(SparkRunnerOptions).spark_master_url
    ):
        return "LOOPBACK"
    return "DOCKER"
