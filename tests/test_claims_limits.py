"""The three "limits" claims: quick configs run, return well-formed results that agree with theory, and the
verdicts have power (a wrong analytic kernel is detected)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnmech.claims import Panel, Result, get, registry
from learnmech.kernels import mlp

LIMITS = ("ntk-convergence", "wide-net-dynamics", "nngp-posterior")




@pytest.fixture(scope="module")
def quick_results() -> dict[str, Result]:
    return {name: get(name).run(get(name).config(quick=True), 0) for name in LIMITS}


def test_claims_are_registered_in_the_limits_strand() -> None:
    claims = registry()
    for name in LIMITS:
        assert claims[name].strand == "limits"
        assert "(20" in claims[name].reference  # author (year) citation


@pytest.mark.parametrize("name", LIMITS)
def test_quick_run_agrees_and_is_well_formed(quick_results: dict[str, Result], name: str) -> None:
    result = quick_results[name]
    # Fixed seed: each claim's experiment is exactly what its theory describes, so it must agree.
    assert result.verdict == "agrees", (result.error, result.tolerance)
    assert np.isfinite(result.error) and 0 < result.tolerance < 1
    assert result.figure and all(isinstance(p, Panel) for p in result.figure)
    roles = {s.role for p in result.figure for s in p.series}
    assert {"prediction", "measurement"} <= roles
    assert all(p.xlabel and p.ylabel for p in result.figure)
    json.dumps(result.to_dict())  # storable
    assert Result.from_dict(result.to_dict()).verdict == result.verdict


def test_quick_runs_are_deterministic(quick_results: dict[str, Result]) -> None:
    again = get("nngp-posterior").run(get("nngp-posterior").config(quick=True), 0)
    assert again.error == quick_results["nngp-posterior"].error


def test_ntk_convergence_numbers(quick_results: dict[str, Result]) -> None:
    result = quick_results["ntk-convergence"]
    assert result.prediction == -0.5
    errors = np.asarray(result.metrics["mean_relative_error"])
    assert errors[-1] < errors[0] / 2  # 16x wider: about 4x smaller
    # the constant C in error ~ C / sqrt(n) is stable across widths (within the seed spread)
    scaled = np.asarray(result.metrics["error_times_sqrt_width"])
    assert scaled.max() / scaled.min() < 2


def test_wide_net_budget_terms(quick_results: dict[str, Result]) -> None:
    metrics = quick_results["wide-net-dynamics"].metrics
    assert metrics["ntk_init_relative_error"] < 0.3
    assert metrics["ntk_drift_relative"] < metrics["ntk_init_relative_error"]  # lazy regime
    assert metrics["discretisation_term"] < 0.02
    result = quick_results["wide-net-dynamics"]
    assert result.measurement["final_loss"] == pytest.approx(result.prediction["final_loss"], rel=0.3)


def test_nngp_error_is_monte_carlo_sized(quick_results: dict[str, Result]) -> None:
    result = quick_results["nngp-posterior"]
    expected = result.metrics["monte_carlo_rms_expected"]
    assert 0.3 * expected < result.measurement < 3 * expected
    assert abs(result.metrics["mean_output"]) < 0.1


def test_nngp_claim_detects_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # Power check: if the "theory" used a weight scale 10% off, the ensemble must disagree with it.
    import learnmech.claims.nngp_posterior as module

    def wrong_mlp(hidden_layers, activation, W_std=1.0, b_std=0.0, **kwargs):
        return mlp(hidden_layers, activation, W_std=1.1 * W_std, b_std=b_std, **kwargs)

    monkeypatch.setattr(module, "mlp", wrong_mlp)
    claim = get("nngp-posterior")
    assert claim.run(claim.config(quick=True), 0).verdict == "disagrees"
