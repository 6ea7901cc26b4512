"""neural-feature-ansatz: a reduced quick config agrees, every control is rejected, the figure draws the band."""

from __future__ import annotations

import pytest

from learnmech.claims import get


@pytest.fixture(scope="module")
def result():
    claim = get("neural-feature-ansatz")
    config = claim.config(quick=True, n_train=400, n_test=100, width=128, steps=200, linear_steps=1200)
    return claim.run(config, 0)


def test_verdict_and_controls(result):
    assert result.verdict == "agrees"
    assert result.controls and all(c.rejected for c in result.controls)
    assert {c.name for c in result.controls} == {"holds-at-init (linear)", "initial-gram (linear)",
                                                  "holds-at-init (digits)", "initial-gram (digits)"}
    # The theorem is exact in the linear setting: rho(W^T W, AGOP^(1/2)) is 1 up to the small init imbalance.
    assert result.measurement["rho_linear"] > 0.999
    assert result.metrics["digits"]["top_k_overlap"] > result.metrics["digits"]["top_k_chance"]


def test_figure_has_prediction_band(result):
    bands = [s for p in result.figure for s in p.series if s.role == "prediction"]
    assert bands and bands[0].lower is not None and bands[0].upper is not None
    assert "digits" in result.figure[0].title
