"""central-flows claim: verdict, rejected gradient-flow control and result structure on a reduced quick config."""

from __future__ import annotations

import math

from learnmech.claims import registry


def test_central_flows_claim() -> None:
    claim = registry()["central-flows"]
    result = claim.run(claim.config(quick=True, steps=80, block=30, warmup=100), seed=0)
    assert result.verdict == "agrees"
    assert [c.name for c in result.controls] == ["gradient-flow"]
    assert result.controls[0].rejected
    ratios = result.metrics["criteria_error_over_tolerance"]
    assert set(ratios) == {"weights", "loss", "oscillation"}
    assert math.isclose(result.error, max(ratios.values()))
    assert result.metrics["edge_violation_max"] < 1e-3  # the flow holds S = 2/lr
    assert result.metrics["control_ratios"]["loss_without_sigma2_term"] > 1.0  # the sigma^2/lr term is needed
    assert len(result.figure) == 3 and result.units
