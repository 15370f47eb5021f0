"""`augbeam run` with a config or option that would eat the machine: one line on stderr, exit code 2, nothing
written, and no memory spent on it.

The reported cases run as a user runs them (``python -m pipeline run``), each child limited to 4 GiB of address
space, so a regression fails with a MemoryError or the timeout instead of taking the machine with it. They start
together, so their start-ups overlap. The other bounded options go through ``main`` in this process, with the
job itself replaced by a failure (so a regression fails at once). The parsing cases are unit tests
(``tests/transforms/test_config_bounds.py``, ``tests/pipeline/job/test_options.py``).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.helpers import PHOTOS, ROOT, billion_laughs

CHILD_MEMORY = 4 * 2**30
CHILD_TIMEOUT_S = 120  # generous: never a speed assertion, only a bound for a regression that hangs


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def _run_all(commands: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Each command's (exit code, stderr), run at once in their own process groups; a hung one is killed whole."""
    children = {
        name: subprocess.Popen(
            [sys.executable, "-m", "pipeline", *argv],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_limit_memory,
            start_new_session=True,
        )
        for name, argv in commands.items()
    }
    results = {}
    try:
        for name, child in children.items():
            try:
                _, err = child.communicate(timeout=CHILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name}: still running after {CHILD_TIMEOUT_S} s")
            results[name] = (child.returncode, err)
    finally:
        for child in children.values():  # a regression's job (and its workers) must not outlive the test
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.communicate()
    return results


def test_reported_explosions_fail_in_one_line_through_the_real_command(tmp_path: Path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(billion_laughs())
    cases = {
        "billion laughs": (["--config", str(laughs)], f"{laughs}: line 2: YAML anchors and aliases"),
        "image size": (["--image-size", "16384", "16384"], "--image-size 16384 16384: 268435456 pixels a record"),
        "num shards": (["--num-shards", "1000000"], "--num-shards 1000000: at most 100000"),
        "copies": (["--copies", "100000"], "--copies 100000: at most 1000 copies"),
    }
    outputs = {name: tmp_path / f"out-{i}" for i, name in enumerate(cases)}
    commands = {
        name: ["run", "--input", str(PHOTOS), "--output", str(outputs[name]), *args]
        for name, (args, _) in cases.items()
    }
    for name, (code, err) in _run_all(commands).items():
        assert "Traceback" not in err and "MemoryError" not in err, f"{name}: {err[-2000:]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("augbeam: error: "), f"{name}: {err[-2000:]}"
        assert cases[name][1] in err, f"{name}: {err}"
        assert code == 2, f"{name}: exit {code}"
        assert not outputs[name].exists(), f"{name}: nothing may be written"


@pytest.fixture
def no_job(monkeypatch):
    """Fails the test at once if the job starts: a bound that regressed must not run the job it should refuse."""

    def started(*args, **kwargs):
        raise AssertionError("the job started: the option or config was not refused")

    monkeypatch.setattr("pipeline.job.run.run_job", started)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "4096", "4096"], "use --batch-size 5 or less, or a smaller --image-size"),
        (["--batch-size", "100000"], "--batch-size 100000: must be in [1, 1024]"),
        (["--eval-copies", "5000", "--augment-eval"], "--eval-copies 5000: at most 1000"),
        (["--shard-size-mb", "1e-9"], "--shard-size-mb 1e-09: use 1 to 1048576"),
        (["--shard-size-mb", "nan"], "--shard-size-mb nan: use 1 to 1048576"),
        (["--max-pixels", str(10**12)], "--max-pixels 1000000000000: use 1 to 1073741824"),
        (["--tf-threads", "1000000"], "--tf-threads '1000000': at most 1024 threads per worker process"),
        (["--seed", str(10**1000)], "--seed an integer of about 1000 digits: use an integer in [0, 2**63)"),
    ],
)
def test_other_bounded_options_are_one_line_before_any_work(tmp_path, capsys, no_job, args, message):
    out = tmp_path / "out"
    code = main(["run", "--input", str(PHOTOS), "--output", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("augbeam: error: "), err
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ops: " + "[" * 5000 + "]" * 5000, "nested more than 32 deep"),
        (f"ops: [{{op: rotation, degrees: [0, {10**1000}]}}]", "ops[0] (rotation).degrees: an integer of about"),
        ("ops: [{op: brightness, p: .nan}]", "ops[0] (brightness).p: expected a finite number, got nan"),
    ],
)
def test_bad_config_files_are_one_line_naming_the_file(tmp_path, capsys, no_job, text, message):
    config = tmp_path / "ops.yaml"
    config.write_text(text)
    code = main(["run", "--input", str(PHOTOS), "--output", str(tmp_path / "out"), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"augbeam: error: {config}: ") and message in err
    assert len(err.strip().splitlines()) == 1 and len(err) < 400
