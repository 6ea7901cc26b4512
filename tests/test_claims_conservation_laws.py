"""conservation-laws claim: verdict, rejected controls and result structure on a reduced quick config."""

from __future__ import annotations

import math

from learnmech.claims import registry


def test_conservation_laws_claim() -> None:
    claim = registry()["conservation-laws"]
    result = claim.run(claim.config(quick=True, n_lrs=2, horizon=6.0), seed=0)
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"tanh-balance", "lr-squared-at-fixed-time", "no-decay"}
    assert all(c.rejected for c in result.controls)
    ratios = result.metrics["criteria_error_over_tolerance"]
    assert set(ratios) >= {"linear amplitude", "relu amplitude", "scale-invariant amplitude", "weight decay"}
    assert math.isclose(result.error, max(ratios.values()))
    assert result.metrics["scale_invariant_identity_max_error"] < 1e-10  # exact per-step identity
    assert len(result.figure) == 2 and result.units
