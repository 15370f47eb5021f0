"""Fixtures of the transforms tests."""

from __future__ import annotations

import pytest

from transforms.decode import Decoder


@pytest.fixture(scope="module")
def decoder():
    return Decoder()
