"""critical-batch-size on a reduced quick config: powered (both controls rejected), agrees, draws its bands."""

from __future__ import annotations

import json
import math

from learnmech.claims import Result, registry
from learnmech.claims.hyper.critical_batch_size import CLAIM


def test_registered():
    assert registry()["critical-batch-size"] is CLAIM


def test_reduced_quick_run_agrees_with_controls_rejected():
    config = CLAIM.config(quick=True, batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128, 256], replicates=3,
                          lr_grid=[-6.0, 1.0, 0.5])
    result = CLAIM.run(config, 0)
    assert result.verdict == "agrees"
    assert {c.name for c in result.controls} == {"constant-steps", "linear-scaling"}
    assert all(c.rejected for c in result.controls)
    assert result.error <= result.tolerance
    # the hyperbola's defining identity holds for the fitted curve and B_crit = E_min / S_min
    m = result.measurement
    assert m["b_crit"] == m["e_min"] / m["s_min"]
    assert 0 < result.metrics["hyperbola_error_over_tolerance"] <= 1
    assert abs(result.metrics["log10_bcrit_over_bpred"]) <= 1
    assert not result.metrics["best_lr_at_grid_edge"]
    # figure: the held-out prediction with its band; the B_pred band; controls labelled as rejected
    bands = [s for p in result.figure for s in p.series if s.role == "prediction" and s.lower is not None]
    assert len(bands) == 2
    labels = [s.label for p in result.figure for s in p.series]
    assert sum("rejected" in label for label in labels) == 2
    assert "digits" in result.figure[0].title
    assert math.isfinite(result.metrics["b_noise_step_mean"])
    stored = Result.from_dict(json.loads(json.dumps(result.to_dict())))  # what the runner stores
    assert stored.verdict == result.verdict
