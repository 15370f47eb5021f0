"""Golden targets: fixed (seed, key, copy) carry fixed objects to the recorded boxes, keypoints, masks, removals.

A failure means records made before the change would get other targets. If
intended, regenerate with ``python tests/golden/make_targets_golden.py`` and
say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.make_targets_golden import CASES, golden_targets

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "targets.json"


@pytest.fixture(scope="module")
def now():
    return json.loads(json.dumps(golden_targets(), sort_keys=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_targets_match_golden(name, now):
    recorded = json.loads(GOLDEN.read_text())
    assert sorted(recorded) == sorted(CASES)
    assert now[name] == recorded[name]
