"""A DirectRunner ``multi_processing`` worker: Beam's SDK harness with a quiet stderr of its own.

Beam starts these workers as ``python -m apache_beam.runners.worker.sdk_worker_main``, sharing the stderr
of the command the user ran. That module sets the root logger to INFO and Beam's ``PipelineOptions`` add
a stderr handler (``logging.basicConfig``), so every run printed each worker's start-up lines, Beam's
warnings about options it does not know, and the traceback of any error a DoFn raised, such as a user's
mistake that the command then also prints as one line. Every record also reaches the driver through
Beam's logging service, which shows the warnings and errors (``worker_logs.quiet_worker_logs`` drops the
known noise there). So the worker's own stderr handler passes only CRITICAL records: a harness that dies.
"""

from __future__ import annotations

import logging
import sys


def main() -> None:
    """Runs Beam's SDK harness with a stderr handler for CRITICAL records only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.CRITICAL)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    logging.getLogger().addHandler(handler)  # so the basicConfig() in Beam's PipelineOptions adds no handler
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
