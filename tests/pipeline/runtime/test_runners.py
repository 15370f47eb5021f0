"""Runners: which get the project's setup file, the container flags each ignores, paths that remote workers cannot
reach, and the FnApiRunner for local batch jobs.
"""

from __future__ import annotations

import sys

import pytest

from pipeline.errors import UserError
from pipeline.runtime import runners
from pipeline.runtime.runners import is_local, runner_name, worker_packaging
from tests.helpers import FLINK_CLUSTER, ROOT
from tests.helpers import SETUP_FILE_ARG as SETUP
from tests.helpers import UNREACHABLE_FIX as FIX


def both_forms(option: str, value: str) -> list[list[str]]:
    """``--x=v`` and ``--x v``: Beam accepts both, so must we."""
    return [[f"--{option}={value}"], [f"--{option}", value]]


@pytest.mark.parametrize(
    "runner", ["DirectRunner", "direct", "InteractiveRunner", "PrismRunner", "BundleBasedDirectRunner", "FnApiRunner"]
)
def test_local_runners_are_left_alone(runner):
    for args in both_forms("runner", runner):
        assert is_local(runner_name(args))
        assert worker_packaging(args) == args
    assert worker_packaging([]) == []  # no --runner: the DirectRunner
    assert is_local("apache_beam.runners.direct.direct_runner.DirectRunner")


# Remote runners as a user would point them at a cluster (FlinkRunner and SparkRunner alone run locally).
REMOTE = {
    "DataflowRunner": ["--project=p", "--region", "europe-west1", "--temp_location=gs://b/tmp"],
    "dataflow": [],
    "FlinkRunner": ["--flink_master=flink-host:8081"],
    "SparkRunner": ["--spark_master_url", "spark://spark-host:7077"],
    "PortableRunner": ["--job_endpoint=job-server:8099"],
}


@pytest.mark.parametrize("runner", sorted(REMOTE))
def test_remote_runners_get_this_setup_file(runner):
    for args in both_forms("runner", runner):
        args += REMOTE[runner]
        assert not is_local(runner_name(args))
        assert worker_packaging(args) == args + [SETUP]
        assert worker_packaging(args + ["--environment_type=DOCKER"])[-1] == SETUP
    assert (ROOT / "setup.py").is_file()
    assert worker_packaging(["--runner=apache_beam.runners.dataflow.dataflow_runner.DataflowRunner"])[-1] == SETUP


@pytest.mark.parametrize(
    "args",
    [
        ["--runner=FlinkRunner"],  # Beam starts a local Flink with LOOPBACK workers
        ["--runner", "FlinkRunner", "--flink_master=[local]"],
        ["--runner=SparkRunner"],  # --spark_master_url defaults to local[4], LOOPBACK
        ["--runner=SparkRunner", "--spark_master_url", "local[*]"],
    ],
)
def test_local_flink_and_spark_get_no_setup_file(args):
    assert worker_packaging(args) == args
    assert worker_packaging(args + ["--environment_type=DOCKER"])[-1] == SETUP


DATAFLOW = {k: v for k, v in REMOTE.items() if k in ("DataflowRunner", "dataflow")}
PORTABLE = {k: v for k, v in REMOTE.items() if k not in DATAFLOW}


def one_line_error(args: list[str]) -> str:
    """worker_packaging's UserError message, checked to be one line."""
    with pytest.raises(UserError) as info:
        worker_packaging(args)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "given",
    [
        *both_forms("setup_file", "/elsewhere/setup.py"),
        *both_forms("sdk_container_image", "gcr.io/p/augbeam:1"),
        *both_forms("worker_harness_container_image", "gcr.io/p/augbeam:1"),
        ["--environment_type=DOCKER", "--sdk_container_image=gcr.io/p/augbeam:1"],  # DOCKER: what Dataflow runs
    ],
)
def test_dataflow_keeps_the_users_container_or_setup_file(given):
    for runner, extra in DATAFLOW.items():
        args = [f"--runner={runner}", *extra, *given]
        assert worker_packaging(args) == args


@pytest.mark.parametrize(
    "given",
    [
        *both_forms("setup_file", "/elsewhere/setup.py"),
        *both_forms("environment_config", "registry/augbeam:1"),  # DOCKER is the default environment
        ["--environment_type=DOCKER", "--environment_config=registry/augbeam:1"],
        ["--environment_type", "DOCKER", "--environment_options=docker_container_image=registry/augbeam:1"],
        ["--environment_options", "docker_container_image=registry/augbeam:1"],
    ],
)
def test_portable_runners_keep_the_users_container_or_setup_file(given):
    for runner, extra in PORTABLE.items():
        args = [f"--runner={runner}", *extra, *given]
        assert worker_packaging(args) == args


@pytest.mark.parametrize("flag", ["sdk_container_image", "worker_harness_container_image"])
def test_portable_runners_refuse_the_container_flag_they_ignore(flag):
    """Beam 2.77's Flink, Spark and PortableRunner start their plain SDK image whatever --sdk_container_image says."""
    for runner, extra in PORTABLE.items():
        for given in both_forms(flag, "registry/augbeam:1"):
            for more in ([], ["--setup_file=/elsewhere/setup.py"], ["--environment_type=DOCKER"]):
                message = one_line_error([f"--runner={runner}", *extra, *given, *more])
                assert f"{runner} ignores --{flag}" in message
                assert "--environment_type=DOCKER --environment_config=registry/augbeam:1" in message
    # Local Flink and local runners never use a container: nothing to refuse, nothing added.
    assert worker_packaging(["--runner=DirectRunner", "--sdk_container_image=i"]) == [
        "--runner=DirectRunner",
        "--sdk_container_image=i",
    ]


def test_portable_runners_read_sdk_container_image_when_prebuilding():
    """--prebuild_sdk_container_engine builds the workers' image from --sdk_container_image (and the setup file)."""
    args = ["--runner=FlinkRunner", *REMOTE["FlinkRunner"], "--sdk_container_image=base:1"]
    args.append("--prebuild_sdk_container_engine=local_docker")
    assert worker_packaging(args) == args + [SETUP]


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        (["--environment_config=registry/augbeam:1"], "--environment_config"),
        (["--environment_type=DOCKER", "--environment_config", "registry/augbeam:1"], "--environment_config"),
        (
            ["--environment_options=docker_container_image=registry/augbeam:1"],
            "--environment_options=docker_container_image",
        ),
    ],
)
def test_dataflow_refuses_the_container_flags_it_ignores(given, flag):
    """Dataflow builds its environment from --sdk_container_image alone (apiclient.get_container_image_from_options)."""
    for runner, extra in DATAFLOW.items():
        for more in ([], ["--sdk_container_image=registry/augbeam:1"], ["--setup_file=/elsewhere/setup.py"]):
            message = one_line_error([f"--runner={runner}", *extra, *given, *more])
            assert message == f"{runner} ignores {flag}: pass the container as --sdk_container_image=registry/augbeam:1"


@pytest.mark.parametrize("environment", ["EXTERNAL", "LOOPBACK", "PROCESS"])
def test_dataflow_refuses_self_started_environments(environment):
    """Dataflow's workers are always containers: LOOPBACK or EXTERNAL there must not skip the setup file."""
    for args in both_forms("environment_type", environment):
        message = one_line_error(["--runner=DataflowRunner", *args])
        assert f"DataflowRunner ignores --environment_type={environment}" in message
        assert "--sdk_container_image=IMAGE" in message
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--runner=dataflow", "--environment_type=LOOPBACK"])
    assert runners.environment_type(options) == "DOCKER"
    assert runners.runs_remotely(["--runner=dataflow", "--environment_type=LOOPBACK"])


@pytest.mark.parametrize("environment", ["EXTERNAL", "LOOPBACK"])
def test_self_started_workers_get_no_setup_file(environment):
    for env_args in both_forms("environment_type", environment):
        for runner in ("FlinkRunner", "SparkRunner", "PortableRunner"):
            args = [f"--runner={runner}", *REMOTE[runner], *env_args]
            if environment == "EXTERNAL":
                args.append("--environment_config=localhost:50000")
            assert worker_packaging(args) == args
    # PROCESS workers are started by the cluster from a command: they still need the project.
    assert worker_packaging(["--runner=FlinkRunner", "--environment_type=PROCESS"])[-1] == SETUP
    assert worker_packaging(["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL"]) == [
        "--runner=PortableRunner",
        "--job_endpoint=embed",
        "--environment_type=EXTERNAL",
    ]


@pytest.mark.parametrize(
    "beam_args",
    [
        FLINK_CLUSTER,
        ["--runner=DataflowRunner", "--project=p", "--sdk_container_image=gcr.io/p/augbeam:1"],
        ["--runner", "SparkRunner", "--spark_master_url=spark://spark-host:7077", "--environment_type=PROCESS"],
        ["--runner=PortableRunner", "--job_endpoint=job-server:8099"],
    ],
)
def test_remote_workers_refuse_local_paths(beam_args):
    check = runners.check_paths_reachable
    runner = runner_name(beam_args)
    with pytest.raises(UserError) as info:
        check(beam_args, "gs://b/photos", "out")
    assert str(info.value) == f"--output 'out' is on this machine, which {runner} workers cannot reach; {FIX}"
    # The workers list the input, a listing file included: a local one is out of their reach too.
    for source in ("/data/photos", "photos", "/data/list.csv"):
        with pytest.raises(UserError, match=f"^--input '{source}' is on this machine, which {runner} workers cannot"):
            check(beam_args, source, "s3://b/out")
    check(beam_args, "gs://b/photos", "hdfs://nn/out")
    check(beam_args, "gs://b/list.csv", "gs://b/out")  # its rows naming local files are refused by the listing
    # --shared-mount: the user says every worker mounts these paths.
    check(beam_args, "/mnt/nfs/photos", "/mnt/nfs/out", shared_mount=True)


@pytest.mark.parametrize(
    "beam_args",
    [
        [],
        ["--runner=DirectRunner", "--direct_num_workers=2"],
        ["--runner=PrismRunner"],
        ["--runner=FlinkRunner"],  # local Flink: LOOPBACK
        ["--runner=SparkRunner", "--spark_master_url=local[2]"],
        ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL"],
        [*FLINK_CLUSTER, "--environment_type=LOOPBACK"],
    ],
)
def test_local_and_self_started_workers_take_local_paths(beam_args):
    runners.check_paths_reachable(beam_args, "photos", "out")
    assert not runners.runs_remotely(beam_args)


def test_installed_without_setup_py_is_a_clear_error(tmp_path, monkeypatch):
    for package in ("pipeline", "transforms"):  # site-packages after a wheel install: packages, no setup.py
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.setattr(runners, "PROJECT_ROOT", tmp_path)
    message = r"--sdk_container_image=IMAGE with an image built from the repository's Dockerfile.*--setup_file"
    with pytest.raises(UserError, match=message):
        worker_packaging(["--runner=DataflowRunner"])
    message = r"--environment_type=DOCKER --environment_config=IMAGE with an image built from the repository's"
    with pytest.raises(UserError, match=message):
        worker_packaging(["--runner=PortableRunner", "--job_endpoint=job-server:8099"])
    assert worker_packaging(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    assert worker_packaging(["--runner=DataflowRunner", "--sdk_container_image=i"])[-1] == "--sdk_container_image=i"
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='someone-else')\n")
    with pytest.raises(UserError):  # a setup.py, but not ours
        worker_packaging(["--runner=FlinkRunner", "--flink_master=flink-host:8081"])
    assert worker_packaging(["--runner=FlinkRunner"]) == ["--runner=FlinkRunner"]  # local Flink, LOOPBACK


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "FnApiRunner"),
        (["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_threading"], "FnApiRunner"),
        (["--runner=apache_beam.runners.direct.direct_runner.SwitchingDirectRunner"], "FnApiRunner"),
        (["--runner=DirectRunner", "--streaming"], None),
        (["--runner=BundleBasedDirectRunner"], None),
        (["--runner=PrismRunner"], None),
        (["--runner=DataflowRunner"], None),
    ],
)
def test_batch_direct_jobs_run_on_fn_api_runner_without_trying_prism(args, expected):
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    runner = runners.fn_api_runner(PipelineOptions(args))
    assert (FnApiRunner.__name__ if isinstance(runner, FnApiRunner) else runner) == expected


def test_fn_api_runner_keeps_the_options_workers_read():
    """The workers' provision info carries the options, as the DirectRunner passes them."""
    from apache_beam.options.pipeline_options import PipelineOptions

    runner = runners.fn_api_runner(PipelineOptions(["--direct_num_workers=3", "--direct_running_mode=multi_threading"]))
    encoded = runner._provision_info.provision_info.pipeline_options
    assert int(encoded["beam:option:direct_num_workers:v1"]) == 3
    assert encoded["beam:option:direct_running_mode:v1"] == "multi_threading"


def test_a_local_job_leaves_nothing_in_the_temp_folder(tmp_path, monkeypatch):
    """The DirectRunner's Prism attempt left an empty beam-temp* folder per run; the job no longer makes one."""
    import tempfile

    from tests.helpers import PHOTOS, run

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    manifest = run(PHOTOS, tmp_path / "out", copies=1, num_shards=1)
    assert sum(split.counts.written for split in manifest.splits.values()) > 0
    assert sorted(p.name for p in scratch.iterdir()) == []


# --- the default local mode: every core ---------------------------------------------------------------------------

EVERY_CORE = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    ("args", "cpus", "expected"),
    [
        ([], 2, EVERY_CORE),
        ([], 8, ["--direct_num_workers=8", "--direct_running_mode=multi_processing"]),
        ([], 1, []),  # one core: worker processes would only add their start-up
        (["--runner=DirectRunner"], 2, ["--runner=DirectRunner", *EVERY_CORE]),
        (["--runner", "direct"], 2, ["--runner", "direct", *EVERY_CORE]),
        (["--job_name=x"], 2, ["--job_name=x", *EVERY_CORE]),
        # any explicit choice of the local mode wins, in either option form
        (["--direct_num_workers=1"], 8, ["--direct_num_workers=1"]),
        (["--direct_num_workers", "3"], 8, ["--direct_num_workers", "3"]),
        (["--direct_running_mode=in_memory"], 8, ["--direct_running_mode=in_memory"]),
        (["--direct_running_mode", "multi_threading"], 8, ["--direct_running_mode", "multi_threading"]),
        # other runners, and the DirectRunner's streaming mode, are left as they are
        (["--runner=PrismRunner"], 8, ["--runner=PrismRunner"]),
        (["--runner=DataflowRunner", "--project=p"], 8, ["--runner=DataflowRunner", "--project=p"]),
        (["--runner=DirectRunner", "--streaming"], 8, ["--runner=DirectRunner", "--streaming"]),
        (["--no_such_beam_option=1"], 2, ["--no_such_beam_option=1", *EVERY_CORE]),
    ],
)
def test_the_default_local_run_uses_every_core_unless_told_otherwise(args, cpus, expected):
    assert runners.default_parallelism(args, cpus) == expected


def test_the_default_counts_the_usable_cores(monkeypatch):
    from pipeline.runtime import tf_threads

    monkeypatch.setattr(tf_threads, "usable_cpus", lambda: 3)
    assert runners.default_parallelism([]) == ["--direct_num_workers=3", "--direct_running_mode=multi_processing"]
    assert runners.parallelism_line(runners.default_parallelism([])) == (
        "augbeam: DirectRunner with 3 worker processes, one per core (multi_processing; "
        "pass -- --direct_num_workers=1 for one in-process worker)"
    )


def test_multi_processing_workers_start_through_the_quiet_entry(monkeypatch):
    """The environment Beam gives multi_processing workers runs ``pipeline.runtime.sdk_worker`` instead."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    seen: list[bytes] = []

    def capture(self, proto, options):
        seen.extend(e.payload for e in proto.components.environments.values() if e.urn == python_urns.SUBPROCESS_SDK)
        raise RuntimeError("captured")

    monkeypatch.setattr(fn_runner.FnApiRunner, "run_via_runner_api", capture)
    options = PipelineOptions(EVERY_CORE)
    p = beam.Pipeline(runner=runners.fn_api_runner(options), options=options)
    _ = p | beam.Create([1]) | beam.Map(str)
    with pytest.raises(RuntimeError, match="captured"):
        p.run()
    assert seen == [f"{sys.executable} -m {runners.WORKER_MODULE}".encode()]
