"""saddle-to-saddle claim: verdict, rejected controls and result structure on a reduced quick config."""

from __future__ import annotations

import math

from learnmech.claims import registry


def test_saddle_to_saddle_claim() -> None:
    claim = registry()["saddle-to-saddle"]
    config = claim.config(quick=True, replicates=3, deep_nets=1, alphas=[1e-4, 1e-6, 1e-8], records=1000)
    result = claim.run(config, seed=0)
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"lazy-diagonal", "lazy-deep", "alpha-independent-timing"}
    assert all(c.rejected for c in result.controls)
    ratios = result.metrics["criteria_error_over_tolerance"]
    assert set(ratios) == {"timing slope", "diagonal order, one at a time", "deep rank one step at a time"}
    assert math.isclose(result.error, max(ratios.values()))
    assert len(result.metrics["replicate_slope_ratios"]) == 3
    assert len(result.figure) == 5 and result.units
    assert any(s.role == "prediction" and s.lower is not None for s in result.figure[1].series)
