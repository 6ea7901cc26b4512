"""The "limits" claims: quick configs run, return well-formed results that agree with theory, every control is
rejected (the verdicts have power), and a wrong analytic kernel is detected."""

from __future__ import annotations

import json

import numpy as np
import pytest
from claim_checks import quick_result, registered

from learnmech.claims import Panel, Result, get

LIMITS = ("ntk-convergence", "wide-net-dynamics", "nngp-posterior")


@pytest.fixture(scope="module")
def quick_results() -> dict[str, Result]:
    return {name: quick_result(name) for name in LIMITS}


def test_claims_are_registered_in_the_limits_strand() -> None:
    for name in LIMITS:
        registered(name, "limits")  # in the strand, with an author (year) citation


@pytest.mark.parametrize("name", LIMITS)
def test_quick_run_agrees_with_power_and_is_well_formed(quick_results: dict[str, Result], name: str) -> None:
    result = quick_results[name]
    # Fixed seed: each claim's experiment is what its theory describes, so it must agree, with every rival rejected.
    assert result.verdict == "agrees", (result.error, result.tolerance)
    assert result.controls and all(c.rejected for c in result.controls), [(c.name, c.error) for c in result.controls]
    assert result.units
    assert np.isfinite(result.error) and result.tolerance > 0
    assert result.figure and all(isinstance(p, Panel) for p in result.figure)
    roles = {s.role for p in result.figure for s in p.series}
    assert {"prediction", "measurement", "reference"} <= roles
    assert any(s.role == "prediction" and s.lower is not None for p in result.figure for s in p.series)  # band
    assert any("control" in s.label for p in result.figure for s in p.series)
    assert all(p.xlabel and p.ylabel for p in result.figure)
    json.dumps(result.to_dict())  # storable
    restored = Result.from_dict(result.to_dict())
    assert restored.verdict == result.verdict and [c.verdict for c in restored.controls] == ["disagrees"] * len(
        result.controls)


def test_ntk_convergence_numbers(quick_results: dict[str, Result]) -> None:
    result = quick_results["ntk-convergence"]
    assert result.prediction == -0.5
    assert {c.name: c.prediction for c in result.controls} == {"slope-zero": 0.0, "slope-minus-one": -1.0}
    errors = np.asarray(result.metrics["mean_relative_error"])
    assert errors[-1] < errors[0] / 2  # 16x wider: about 4x smaller
    scaled = np.asarray(result.metrics["error_times_sqrt_width"])
    assert scaled.max() / scaled.min() < 2  # C in error ~ C / sqrt(n) is stable across widths


def test_wide_net_deviation_shrinks_like_inverse_sqrt_width(quick_results: dict[str, Result]) -> None:
    metrics = quick_results["wide-net-dynamics"].metrics
    assert metrics["ntk_drift_relative"] < metrics["ntk_init_relative_error"]  # lazy regime
    assert metrics["discretisation_term"] < 0.02
    assert -1.0 < metrics["deviation_slope"] < -0.2  # theory: -1/2
    assert metrics["nngp_flow_error"] > 2 * quick_results["wide-net-dynamics"].error


def test_nngp_posterior_error_shrinks_with_width(quick_results: dict[str, Result]) -> None:
    result = quick_results["nngp-posterior"]
    cov = np.asarray(result.metrics["covariance_relative_error"])
    tol = np.asarray(result.metrics["tolerance_covariance"])
    assert cov[-1] < cov[0] / 2  # 16x wider (O(1/n) bias; the widest sits near the Monte-Carlo floor)
    assert np.all(np.diff(tol) < 0)  # the tolerance shrinks with width
    assert result.metrics["kappa"] == pytest.approx(5.0, abs=1e-6)  # ReLU: E[phi^4]/E[phi^2]^2 - 1


def test_nngp_posterior_is_deterministic() -> None:
    claim = get("nngp-posterior")
    config = claim.config(quick=True, widths=[8, 32], members=300)
    assert claim.run(config, 3).error == claim.run(config, 3).error


def test_nngp_claim_rejects_the_ntk_as_the_bayesian_kernel(quick_results: dict[str, Result]) -> None:
    # Power check on the kernel's shape: the NTK-GP posterior (same prior variance) is a different prediction.
    result = quick_results["nngp-posterior"]
    control = {c.name: c for c in result.controls}["ntk-gp"]
    assert control.rejected and control.error > result.error
