"""quanta-scaling: a reduced quick config agrees, the D^-1/2 rival is rejected, the figure draws the band."""

from __future__ import annotations

import pytest

from learnmech.claims import get


@pytest.fixture(scope="module")
def result():
    claim = get("quanta-scaling")
    return claim.run(claim.config(quick=True, n_tasks=2048, sizes=[1024, 2048, 4096, 8192], steps=300), 0)


def test_verdict_and_control(result):
    assert result.verdict == "agrees"
    assert [c.name for c in result.controls] == ["rival-1/2"]
    assert all(c.rejected for c in result.controls)
    # the prediction is the finite-grid staircase exponent, within a few hundredths of alpha/(alpha+1) = 1/3
    assert abs(result.prediction - 1 / 3) < 0.06
    low, high = result.metrics["staircase_range"]
    assert low <= result.prediction <= high


def test_figure_has_prediction_band(result):
    bands = [s for p in result.figure for s in p.series if s.role == "prediction"]
    assert bands and bands[0].lower is not None and bands[0].upper is not None
    assert any("rejected" in s.label for p in result.figure for s in p.series if s.role == "reference")
