"""What the driver and its worker processes show of a refusal raised on a worker: nothing but the one line."""

from __future__ import annotations

import logging

import pytest

from pipeline.errors import REFUSED, WorkerRefusal
from pipeline.runtime import sdk_worker
from pipeline.runtime.worker_logs import LOGGERS, quiet_worker_logs

REFUSAL = str(WorkerRefusal("--input 'x.csv' row 0: split 'Train Set' is not a lowercase name"))


@pytest.mark.parametrize("name", LOGGERS)
def test_refusals_and_worker_start_up_noise_are_dropped_while_the_job_runs(name, caplog):
    logger = logging.getLogger(name)
    relayed = 'Worker: severity: WARN message: "No semi_persistent_directory found: ..."'
    with caplog.at_level(logging.WARNING), quiet_worker_logs():
        logger.error(REFUSAL)
        logger.error("Error processing instruction bundle_9. Original traceback is\n%s", f"...\n{REFUSAL}\n")
        logger.warning(relayed)
        logger.error("a real bug: KeyError 'x'")
        logger.warning("augbeam: could not write the marker")
    shown = ["a real bug: KeyError 'x'", "augbeam: could not write the marker"]
    assert [r.getMessage() for r in caplog.records] == shown
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        logger.error(REFUSAL)  # outside the run: left alone
    assert [r.getMessage() for r in caplog.records] == [REFUSAL]


def test_a_worker_process_does_not_print_a_refusals_traceback(capsys):
    sdk_worker._print_unless_refusal(f"Traceback (most recent call last):\n  ...\n{REFUSAL}\n")
    sdk_worker._print_unless_refusal("Traceback (most recent call last):\n  ...\nKeyError: 'x'")
    err = capsys.readouterr()
    assert REFUSED not in err.out + err.err
    assert "KeyError: 'x'" in err.out
