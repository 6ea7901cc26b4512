"""fourier-features: a reduced quick config agrees, the memorising run is rejected, the figure draws the band."""

from __future__ import annotations

import pytest

from learnmech.claims import get


@pytest.fixture(scope="module")
def result():
    claim = get("fourier-features")
    return claim.run(claim.config(quick=True, steps=1000, every=20, null_samples=50), 0)


def test_verdict_and_control(result):
    assert result.verdict == "agrees"
    assert [c.name for c in result.controls] == ["any-trained-net"]
    assert all(c.rejected for c in result.controls)
    m = result.metrics["midpoint_m"]
    # F starts at its random value, is below m when the training set is fit, above m at the test jump
    assert abs(result.metrics["F_initial"] - result.metrics["null_mean"]) < 0.02
    assert result.measurement["F_at_train_fit"] < m <= result.measurement["F_at_test_jump"]
    assert result.metrics["step_train_95"] < result.metrics["step_F_crosses_m"] <= result.metrics["step_test_95"]


def test_figure_has_prediction_band(result):
    bands = [s for p in result.figure for s in p.series if s.role == "prediction"]
    assert bands and bands[0].lower is not None and bands[0].upper is not None
    assert any("rejected" in s.label for p in result.figure for s in p.series if s.role == "reference")
