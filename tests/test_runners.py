"""Remote workers get the project: the option logic, Beam's sdist of setup.py, and the Dockerfile's pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pipeline import runners
from pipeline.errors import UserError
from pipeline.runners import is_local, runner_name, worker_packaging
from tests.conftest import ROOT

SETUP = f"--setup_file={ROOT / 'setup.py'}"


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


@pytest.mark.parametrize(
    "given",
    [
        *both_forms("setup_file", "/elsewhere/setup.py"),
        *both_forms("sdk_container_image", "gcr.io/p/augbeam:1"),
        *both_forms("worker_harness_container_image", "gcr.io/p/augbeam:1"),
        *both_forms("environment_config", "registry/augbeam:1"),  # DOCKER is the default environment
        ["--environment_type=DOCKER", "--environment_config=registry/augbeam:1"],
        ["--environment_type", "DOCKER", "--environment_options=docker_container_image=registry/augbeam:1"],
    ],
)
def test_user_packaging_is_kept(given):
    for runner, extra in REMOTE.items():
        args = [f"--runner={runner}", *extra, *given]
        assert worker_packaging(args) == args


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


def test_installed_without_setup_py_is_a_clear_error(tmp_path, monkeypatch):
    for package in ("pipeline", "transforms"):  # site-packages after a wheel install: packages, no setup.py
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.setattr(runners, "PROJECT_ROOT", tmp_path)
    message = r"--sdk_container_image=IMAGE built from the repository's Dockerfile.*--setup_file"
    with pytest.raises(UserError, match=message):
        worker_packaging(["--runner=DataflowRunner"])
    assert worker_packaging(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    assert worker_packaging(["--runner=DataflowRunner", "--sdk_container_image=i"])[-1] == "--sdk_container_image=i"
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='someone-else')\n")
    with pytest.raises(UserError):  # a setup.py, but not ours
        worker_packaging(["--runner=FlinkRunner", "--flink_master=flink-host:8081"])
    assert worker_packaging(["--runner=FlinkRunner"]) == ["--runner=FlinkRunner"]  # local Flink, LOOPBACK


def test_pipeline_options_adds_the_setup_file_and_says_so(capsys):
    from apache_beam.options.pipeline_options import SetupOptions

    from pipeline.job import pipeline_options

    options = pipeline_options(["--runner", "FlinkRunner", "--flink_master=localhost:8081"])
    assert options.view_as(SetupOptions).setup_file == str(ROOT / "setup.py")
    err = capsys.readouterr().err
    assert f"FlinkRunner workers get the project through {SETUP} (added)" in err
    assert len(err.strip().splitlines()) == 1
    options = pipeline_options(["--direct_num_workers=2"])
    assert options.view_as(SetupOptions).setup_file is None
    assert capsys.readouterr().err == ""


def _copy_project(dst: Path) -> Path:
    """The checkout without environments, outputs and build leftovers (so the build touches nothing shared)."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "output", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "build", "dist", ".whl"
    )
    shutil.copytree(ROOT, dst, ignore=ignore)
    return dst / "setup.py"


def test_beam_stager_builds_an_installable_sdist_offline(tmp_path):
    """Subprocesses, a few seconds: Beam's own --setup_file build, then an offline install of its result.

    Beam runs ``python -m build --no-isolation --sdist`` and falls back to ``python setup.py sdist``; neither
    reaches a package index. The install uses only local setuptools, as a worker without an index would.
    """
    from apache_beam.runners.portability.stager import Stager

    setup = _copy_project(tmp_path / "src")
    (tmp_path / "dist").mkdir()
    tarball = Path(Stager._build_setup_package(str(setup), str(tmp_path / "dist")))
    with tarfile.open(tarball) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for module in ("setup.py", "README.md", "pipeline/job.py", "pipeline/runners.py", "transforms/augment.py"):
        assert module in names, f"{module} missing from the sdist {tarball.name}"
    modules = {str(p.relative_to(ROOT)) for d in ("pipeline", "transforms") for p in (ROOT / d).glob("*.py")}
    assert modules <= names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
        + ["--target", str(target), str(tarball)],
        check=True,
        capture_output=True,
    )
    assert (target / "pipeline" / "runners.py").is_file() and (target / "transforms" / "augment.py").is_file()


def test_dockerfile_matches_the_pinned_beam_and_copies_existing_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    beam = re.search(r'^BEAM = "([^"]+)"', (ROOT / "setup.py").read_text(), re.M).group(1)
    assert f"apache-beam=={beam}\n" in (ROOT / "constraints.txt").read_text()
    base = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base == [f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{beam}"]
    assert "ENTRYPOINT" not in dockerfile  # the SDK image's /opt/apache/beam/boot stays the entry point
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copied = []
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        sources = [word for word in line.split() if not word.startswith("--")][:-1]
        copied += sources
    assert {"setup.py", "constraints.txt", "pipeline", "transforms"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert source not in ignored, f".dockerignore drops {source}, which the Dockerfile copies"
