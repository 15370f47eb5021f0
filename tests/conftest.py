"""Shared fixtures: the sample photos (in the repo) mixed with small bad files, and job runners."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
DATA = Path(__file__).resolve().parent / "data"


def run(input_dir: Path, output_dir: Path, beam_args: list[str] | None = None, **kwargs):
    """Runs the job with test-sized defaults; returns the manifest."""
    from pipeline.job.options import JobConfig
    from pipeline.job.run import run_job

    # photos_with_bad has 2 bad files of 17, over the default --max-error-rate 0.1.
    params = dict(image_size=(32, 32), copies=3, seed=1, num_shards=3, max_error_rate=0.5)
    params.update(kwargs)
    config = JobConfig.create(input=str(input_dir), output=str(output_dir), **params)
    return run_job(config, beam_args or [])


@pytest.fixture(scope="session")
def photos_with_bad(tmp_path_factory) -> Path:
    """The sample photos plus a truncated JPEG and a text file named .jpg in train classes."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    shutil.copytree(PHOTOS, root)
    shutil.copy(DATA / "truncated_half.jpg", root / "train" / "textures" / "truncated.jpg")
    shutil.copy(DATA / "not_an_image.jpg", root / "train" / "everyday" / "notes.jpg")
    return root


def shard_bytes(output: Path) -> dict[str, bytes]:
    """Every file the run wrote, by name."""
    return {p.name: p.read_bytes() for p in sorted(output.iterdir()) if p.is_file()}
