"""What remote workers install: Beam's sdist of setup.py builds and installs offline, and the Dockerfile's pins
and copies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.helpers import ROOT


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
    wanted = ("setup.py", "README.md", "augbeam.py", "pipeline/job/run.py", "pipeline/runtime/runners.py")
    for module in (*wanted, "transforms/augment.py"):
        assert module in names, f"{module} missing from the sdist {tarball.name}"
    modules = {str(p.relative_to(ROOT)) for d in ("pipeline", "transforms") for p in (ROOT / d).rglob("*.py")}
    assert modules <= names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
        + ["--target", str(target), str(tarball)],
        check=True,
        capture_output=True,
    )
    assert (target / "pipeline" / "runtime" / "runners.py").is_file()
    assert (target / "transforms" / "augment.py").is_file() and (target / "augbeam.py").is_file()


def test_dockerfile_matches_the_pinned_beam_and_copies_existing_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    beam = re.search(r'^BEAM = "([^"]+)"', (ROOT / "setup.py").read_text(), re.M).group(1)
    assert f"apache-beam=={beam}\n" in (ROOT / "constraints.txt").read_text()
    base = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base == [f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{beam}"]
    assert "ENTRYPOINT" not in dockerfile  # the SDK image's /opt/apache/beam/boot stays the entry point
    run = re.search(r"^RUN\s+((?:.*\\\n)*.*)$", dockerfile, re.M).group(1)
    steps = [step.strip() for step in run.replace("\\\n", " ").split("&&")]
    assert steps[0].startswith("pip install") and steps[1] == "pip check", steps  # a pin clash fails the build
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copied = []
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M):
        sources = [word for word in line.split() if not word.startswith("--")][:-1]
        copied += sources
    assert {"setup.py", "constraints.txt", "augbeam.py", "pipeline", "transforms"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert source not in ignored, f".dockerignore drops {source}, which the Dockerfile copies"
