"""Fixtures shared by test modules in several folders: input folders and the real runs they share.

A run used by modules in different folders is session-scoped, so the suite makes it once. Plain helpers
(paths, ``run``, ``shard_bytes``...) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# First, as in the job's processes: TensorFlow by name (transforms.tf_import), so the golden files check that path.
import pipeline.job  # noqa: F401, I001
from tests.helpers import CLEAN_ARGS, DATA, PHOTOS, cli_args, in_process, run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def photos_with_bad(tmp_path_factory) -> Path:
    """The sample photos plus a truncated JPEG and a text file named .jpg in train classes."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    shutil.copytree(PHOTOS, root)
    shutil.copy(DATA / "truncated_half.jpg", root / "train" / "textures" / "truncated.jpg")
    shutil.copy(DATA / "not_an_image.jpg", root / "train" / "everyday" / "notes.jpg")
    return root


@pytest.fixture(scope="session")
def run_a(photos_with_bad, tmp_path_factory):
    """Run A: ``photos_with_bad`` through the command line (``cli_args``), one in-process worker."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("a") / "out"
    code = main(in_process(cli_args(photos_with_bad, out)))
    assert code == 0
    return out


@pytest.fixture(scope="session")
def run_b(photos_with_bad, tmp_path_factory):
    """Run B: the same config as run A, through ``run``."""
    out = tmp_path_factory.mktemp("b") / "out"
    run(photos_with_bad, out)
    return out


@pytest.fixture(scope="session")
def clean(photos_with_bad, tmp_path_factory) -> Path:
    """A run without faults (``CLEAN_ARGS``), verified: what a run that met faults must equal."""
    from pipeline.checks.verify import verify

    out = tmp_path_factory.mktemp("clean") / "out"
    run(photos_with_bad, out, **CLEAN_ARGS)
    assert verify(str(out), sample=4).ok
    return out


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    """4 good train images in 2 classes, 1 corrupt, 1 file outside a class folder; 1 validation image."""
    root = tmp_path_factory.mktemp("progress") / "src"
    for rel, name in [
        ("train/a/rocket.jpg", "rocket_small.jpg"),
        ("train/a/gray.png", "gray.png"),
        ("train/b/rgba.png", "rgba.png"),
        ("train/b/pixel.png", "one_pixel.png"),
        ("train/b/broken.jpg", "truncated_half.jpg"),
        ("train/stray.png", "gray.png"),
        ("validation/a/gray.png", "gray.png"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / name, root / rel)
    return root
