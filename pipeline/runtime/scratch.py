"""A run's scratch folder in the temporary folder, named with its owner's pid, and the clean-up of dead runs'.

On the DirectRunner the listing's rows go through files in a folder outside
the output (``--overwrite`` may clear the output while they are still to be
read). The run removes it when it ends, however it ends, but a SIGKILL ends it
with no chance to: the folder stays in the temporary folder. Its name says
whose it was, ``augbeam-run-<pid>-<random>``, so the next run removes the
folders of runs whose process is gone (and only those: a live run's pid is
alive). A reused pid only keeps a dead run's folder until that process ends.

Beam's ``Pipeline`` makes a ``beam-pipeline-temp*`` folder when built and
removes it when ``run()`` ends; augbeam's graph never uses it (only
cross-language transforms do), so ``drop_pipeline_temp`` removes it at once
and a killed run leaves none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any

PREFIX = "augbeam-run-"


def scratch_prefix() -> str:
    """``augbeam-run-<pid>-``: what this process's scratch folders' names start with."""
    return f"{PREFIX}{os.getpid()}-"


def make_scratch() -> str:
    """A new scratch folder for this process's run: ``<TMPDIR>/augbeam-run-<pid>-<random>``."""
    from pipeline import fsutil  # imports Beam: not at this module's import (warm_workers imports it first thing)

    folder = os.path.join(tempfile.gettempdir(), scratch_prefix())
    with fsutil.writing(folder):
        return tempfile.mkdtemp(prefix=scratch_prefix())


def remove_scratch(folder: str) -> None:
    """Removes a scratch folder and what it holds; never raises (it runs while another error may be on its way)."""
    shutil.rmtree(folder, ignore_errors=True)


def remove_dead_scratch(temp_dir: str | None = None) -> list[str]:
    """Removes the scratch folders of runs whose process no longer exists; returns them.

    Only names of the form ``augbeam-run-<pid>-*`` are considered, and only
    when no process has that pid: a live run's folder is never touched.
    """
    root = temp_dir or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in sorted(names):
        pid = _owner(name)
        if pid is None or _alive(pid):
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            remove_scratch(path)
            removed.append(path)
    return removed


def drop_pipeline_temp(pipeline: Any) -> None:
    """Removes the ``beam-pipeline-temp*`` folder a Beam ``Pipeline`` made when built; augbeam's graph needs none.

    ``Pipeline.run()`` removes the folder it names, ignoring errors, so it may name one that is gone.
    """
    folder = getattr(pipeline, "local_tempdir", None)
    if isinstance(folder, str) and os.path.basename(folder).startswith("beam-pipeline-temp"):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # empty, or it is not ours to remove


def _owner(name: str) -> int | None:
    """The pid in ``augbeam-run-<pid>-<random>``, or None for any other name."""
    if not name.startswith(PREFIX):
        return None
    pid, sep, _rest = name[len(PREFIX) :].partition("-")
    return int(pid) if sep and pid.isdigit() and int(pid) > 0 else None


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
