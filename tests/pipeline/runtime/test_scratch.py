"""pipeline/runtime/scratch.py: a run's scratch folder named with its pid; the next run removes dead runs' folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from pipeline.runtime.scratch import PREFIX, drop_pipeline_temp, make_scratch, remove_dead_scratch

# What make_scratch does, without importing Beam (seconds) in each process.
MAKE_AND_WAIT = f"import os, tempfile; print(tempfile.mkdtemp(prefix=f'{PREFIX}{{os.getpid()}}-'), flush=True); input()"


def scratch_of_a_process(tmp_path) -> tuple[subprocess.Popen, str]:
    """A real process that made its scratch folder in ``tmp_path`` and waits: (the process, its folder)."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", MAKE_AND_WAIT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    folder = proc.stdout.readline().strip()
    assert os.path.basename(folder).startswith(f"{PREFIX}{proc.pid}-") and os.path.isdir(folder)
    with open(os.path.join(folder, "rows.parts"), "wb") as handle:
        handle.write(b"spilled rows")
    return proc, folder


def test_only_the_folders_of_dead_runs_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed, killed_folder = scratch_of_a_process(tmp_path)
    killed.send_signal(signal.SIGKILL)  # no failure path: its folder stays
    killed.wait()
    alive, alive_folder = scratch_of_a_process(tmp_path)
    ours = make_scratch()
    assert os.path.basename(ours).startswith(f"{PREFIX}{os.getpid()}-")
    other = tmp_path / "augbeam-run-notapid-x"
    other.mkdir()
    try:
        assert os.path.isdir(killed_folder)
        assert remove_dead_scratch() == [killed_folder]
        assert os.path.isdir(alive_folder) and os.path.isdir(ours) and other.is_dir()
    finally:
        alive.communicate("")
    assert remove_dead_scratch() == [alive_folder]  # once it has ended


def test_a_built_pipeline_leaves_no_beam_temp_folder(tmp_path, monkeypatch):
    """Beam's Pipeline makes beam-pipeline-temp* when built and removes it only at the end of run()."""
    from pipeline.job.options import JobConfig
    from pipeline.job.run import graph_size
    from tests.helpers import PHOTOS

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert graph_size(JobConfig.create(input=str(PHOTOS), output=str(tmp_path / "out"))) > 0
    assert not list(tmp_path.glob("beam-pipeline-temp*"))
    drop_pipeline_temp(object())  # anything else: nothing to remove, no error
