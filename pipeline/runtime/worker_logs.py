"""What the driver shows of its workers' logs while a job runs: not a user's mistake twice, not Beam's noise.

A ``UserError`` found on a worker travels to the driver as a ``WorkerRefusal`` and the command prints it as
one line (``errors.refusal_in``). On its way Beam logs it at ERROR with its traceback: the DoFn runner (a
worker in this process), the SDK harness ("Error processing instruction"), and, for worker processes, the
driver's relay of their log records (``local_job_service``: "Worker: ..."). Those records are dropped here,
with two warnings every ``multi_processing`` worker sends at start-up that say nothing to a user. Anything
else, a real bug's traceback included, is still shown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pipeline.errors import REFUSED

# The loggers that log a DoFn's error, in this process or relayed from a worker process; root for Beam's
# other relay (``BasicLoggingService``), which logs on the root logger.
LOGGERS = (
    "",
    "apache_beam.runners.common",
    "apache_beam.runners.worker.sdk_worker",
    "apache_beam.runners.portability.local_job_service",
)
RELAY_PREFIX = "Worker: "
# Warnings each multi_processing worker sends at start-up, about Beam's own options and its pickler.
WORKER_NOISE = ("No semi_persistent_directory found", "Discarding unparseable args")


class QuietWorkerLogs(logging.Filter):
    """Drops log records of a refusal (the command prints its one line) and the workers' start-up noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if REFUSED in message:
            return False
        return not (message.startswith(RELAY_PREFIX) and any(noise in message for noise in WORKER_NOISE))


@contextlib.contextmanager
def quiet_worker_logs() -> Iterator[None]:
    """``QuietWorkerLogs`` on the loggers that carry worker errors, for the block (the job's run)."""
    quiet = QuietWorkerLogs()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
