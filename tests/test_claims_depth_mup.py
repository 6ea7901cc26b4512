"""depth-mup claim: verdict, rejected controls and result structure (quick config, seed 0: ~11 s CPU)."""

from __future__ import annotations

import math

from learnmech.claims import registry


def test_depth_mup_claim() -> None:
    claim = registry()["depth-mup"]
    result = claim.run(claim.config(quick=True, variance_nets=8), seed=0)
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {
        "standard-no-drift", "depth-mup-drifts-like-standard", "standard-variance-flat"}
    assert all(c.rejected for c in result.controls)
    ratios = result.metrics["criteria_error_over_tolerance"]
    assert set(ratios) == {"lr* slope", "stream variance slope"}
    assert math.isclose(result.error, max(ratios.values()))
    assert result.measurement["standard_lr_slope"] < result.measurement["depth_mup_lr_slope"]
    assert len(result.figure) == 4 and result.units
    assert any(s.role == "prediction" and s.lower is not None for s in result.figure[2].series)
