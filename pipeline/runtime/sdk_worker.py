"""A DirectRunner ``multi_processing`` worker: Beam's SDK harness with a quiet stderr of its own.

Beam starts these workers as ``python -m apache_beam.runners.worker.sdk_worker_main``, sharing the stderr
of the command the user ran. That module sets the root logger to INFO and Beam's ``PipelineOptions`` add
a stderr handler (``logging.basicConfig``), so every run printed each worker's start-up lines and Beam's
warnings about options it does not know; and the harness prints the traceback of any error a DoFn raises,
such as a user's mistake that the command then also prints as one line. Every log record also reaches the
driver through Beam's logging service, which shows the warnings and errors (``worker_logs`` drops the known
noise there), and every error reaches it as the job's failure. So here the worker's own stderr handler
passes only CRITICAL records (a harness that dies), and the harness's print of a refusal is dropped.

When a job fails (one worker's shard met a full disk, say), the runner ends every worker's harness while
another worker may still be rendering a shard inside TensorFlow. The harness then returns, and Python's
teardown with that thread still in TensorFlow's C++ aborted the process ("terminate called ... FATAL:
exception not rethrown", exit code 134), which the driver printed as a traceback of its own beside the job's
one-line error. Nothing is left to do once the harness returns: the worker exits at once instead (its
unfinished shard is under a temporary name, which the next run's finalize removes).
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
from typing import Any

from pipeline.errors import REFUSED


def _print_unless_refusal(*values: Any, **kwargs: Any) -> None:
    """``print``, less the harness's print of a traceback that carries a ``WorkerRefusal``."""
    if any(REFUSED in str(value) for value in values):
        return
    builtins.print(*values, **kwargs)


def quiet_stderr() -> None:
    """A root handler that passes CRITICAL records only, added before anything logs.

    With a handler there, neither the ``basicConfig()`` in Beam's ``PipelineOptions`` nor the
    ``logging.warning`` of an import (Beam's, about apitools) adds Python's default stderr handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.CRITICAL)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    logging.getLogger().addHandler(handler)


def run_harness() -> None:
    """Beam's SDK harness, with refusals not printed (``quiet_stderr`` done first).

    Returns when the runner ends the harness; raises if the harness failed. A worker forked from the warm
    server (``fork_server``) calls this too, so both kinds of worker start the same harness the same way.
    """
    from apache_beam.runners.worker import sdk_worker, sdk_worker_main

    # The harness prints a failed instruction's traceback with the builtin print (sdk_worker._execute); a
    # module global of that name comes first.
    sdk_worker.print = _print_unless_refusal  # type: ignore[attr-defined]
    sdk_worker_main.main(sys.argv)


def main() -> None:
    """Runs the harness, then exits at once (see the module's docstring)."""
    quiet_stderr()
    run_harness()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no teardown: a bundle still running in TensorFlow would abort it (see above)


if __name__ == "__main__":
    main()
