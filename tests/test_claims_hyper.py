"""The hyper strand's claims: well-formed Results with a powered verdict (every control rejected), on configs small
enough for CI (smaller overrides of the quick configs where the quick one takes > 20 s)."""

from __future__ import annotations

import json
import math

from learnmech.claims import Result, get


def _run(name: str, **overrides) -> Result:
    claim = get(name)
    assert claim.strand == "hyper"
    result = claim.run(claim.config(quick=True, **overrides), 0)
    assert isinstance(result, Result) and result.status == "ok"
    assert math.isfinite(result.error) and result.tolerance > 0 and result.units
    assert result.figure and all(panel.series for panel in result.figure)
    # Every figure draws the judged prediction with its tolerance band.
    assert any(s.role == "prediction" and s.lower is not None for p in result.figure for s in p.series)
    assert result.verdict != "inconclusive" and result.controls and all(c.rejected for c in result.controls)
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))).verdict == result.verdict
    return result


def test_mup_transfer_quick():
    result = _run("mup-transfer")
    assert result.verdict == "agrees"
    assert result.measurement["sp_slope"] < -0.5 < result.measurement["mup_slope"]
    assert {c.name for c in result.controls} == {"sp-no-drift", "mup-drifts-like-sp"}
    assert result.metrics["sp_drifts"] is True


def test_stability_ceiling_one_example():
    result = _run("stability-ceiling", widths=[256, 1024], seeds=3, boundary_width=256)
    assert result.verdict == "agrees"
    for key, value in result.measurement.items():
        assert abs(value / (2.0 if key.startswith("spike") else 4.0) - 1) < 0.05
    catapult = result.metrics["catapult"]
    # Inside the band the loss spikes, comes back below its start, and the NTK ends below 2/lr.
    assert catapult["peak_loss_over_initial"] > 1 > catapult["final_loss_over_initial"]
    assert catapult["lambda_after"] < catapult["two_over_lr"]
    # The multi-example boundary is reported, not judged: there the ceiling is below 4 (second mode not isolated).
    boundary = result.metrics["boundary_multi_example"]
    assert boundary["mean"] < 4.0 and min(boundary["lambda2_over_lambda1"]) > 0.5


def test_lr_width_scaling_onset_and_exponent():
    result = _run("lr-width-scaling", widths=[64, 128, 256], seeds=2)
    assert result.verdict == "agrees"
    assert all(abs(result.measurement[f"onset[{w}]"] / 2 - 1) < 0.06 for w in (64, 128, 256))
    assert result.measurement["lr_exponent"] < -0.6
    assert result.measurement["worst_final_over_trivial"] < 0.25
