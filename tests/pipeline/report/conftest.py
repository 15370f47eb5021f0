"""The report's real run, shared by the page, sheet, params and inspect tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import report_run


@pytest.fixture(scope="session")
def report_job(tmp_path_factory) -> Path:
    """A real small run: random ops (a composite and a policy), a corrupt input and a text file named .jpg."""
    return report_run(tmp_path_factory.mktemp("report"), "out")
