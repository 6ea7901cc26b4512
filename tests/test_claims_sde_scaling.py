"""sde-scaling on a reduced quick config: the scaling rules agree in the pre-registered domain, both controls
(Adam under the linear rule, SGD with the batch alone scaled) are rejected, and the boundary is reported."""

from __future__ import annotations

import json

from learnmech.claims import Result, registry
from learnmech.claims.hyper.sde_scaling import CLAIM


def test_registered():
    assert registry()["sde-scaling"] is CLAIM


def test_reduced_quick_run_agrees_with_controls_rejected():
    config = CLAIM.config(quick=True, replicates=4, examples=1024, ks=[2, 4, 8, 128])
    result = CLAIM.run(config, 0)
    assert result.verdict == "agrees"
    assert result.prediction["domain_ks"] == [2, 4, 8]  # k = 128 is past k* = 2/(lr lambda_max) = 100
    assert all(c.rejected for c in result.controls)
    assert {c.name for c in result.controls} == {"adam-linear-rule", "sgd-batch-only"}
    # boundary: beyond k* the SGD linear rule leaves the tolerance
    assert result.metrics["ratio"]["128"]["sgd_linear"] > 1
    bands = [s for p in result.figure for s in p.series if s.role == "prediction" and s.lower is not None]
    assert len(bands) == 2
    assert all("digits" in p.title for p in result.figure[:2])
    stored = Result.from_dict(json.loads(json.dumps(result.to_dict())))  # what the runner stores
    assert stored.verdict == result.verdict
