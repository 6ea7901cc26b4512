"""Ridge(less) regression asymptotics: closed forms, limits, optimal ridge, and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.solvable import optimal_ridge, ridge_risk, simulate_ridge_risk
from learnmech.solvable.ridge import marchenko_pastur_stieltjes, ridge_risk_finite_ridgeless


@settings(max_examples=50, deadline=None)
@given(gamma=st.floats(0.05, 20.0), ridge=st.floats(1e-4, 10.0))
def test_stieltjes_transform_solves_the_marchenko_pastur_equation(gamma, ridge):
    m, dm = marchenko_pastur_stieltjes(gamma, ridge)
    z = -ridge
    assert m > 0
    assert gamma * z * m * m - (1 - gamma - z) * m + 1 == pytest.approx(0, abs=1e-9 * max(1, m))
    h = 1e-6 * ridge
    numeric = (marchenko_pastur_stieltjes(gamma, ridge - h)[0] - marchenko_pastur_stieltjes(gamma, ridge + h)[0]) / (
        2 * h)
    assert dm == pytest.approx(numeric, rel=1e-5)


@settings(max_examples=50, deadline=None)
@given(gamma=st.floats(0.05, 10.0), signal=st.floats(0.1, 5.0), noise=st.floats(0.01, 2.0))
def test_optimal_ridge_minimises_the_risk(gamma, signal, noise):
    best = optimal_ridge(gamma, signal, noise)
    at_best = ridge_risk(gamma, best, signal, noise)
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert at_best <= ridge_risk(gamma, best * factor, signal, noise) + 1e-12
    assert at_best <= signal + 1e-12  # never worse than predicting zero


def test_ridgeless_formulas_and_continuity():
    gamma = np.array([0.25, 0.5, 2.0, 4.0])
    risk = ridge_risk(gamma, 0.0, signal=2.0, noise=0.5)
    np.testing.assert_allclose(risk, [0.5 * 0.25 / 0.75, 0.5, 2 * 0.5 + 0.5, 2 * 0.75 + 0.5 / 3])
    np.testing.assert_allclose(ridge_risk(gamma, 1e-9, 2.0, 0.5), risk, rtol=1e-6)
    assert ridge_risk(1.0, 0.0, 1.0, 0.1) == np.inf


def test_simulation_matches_finite_and_asymptotic_risk():
    gen = np.random.default_rng(0)
    d = 60
    for n, ridge in [(150, 0.0), (30, 0.0), (90, 0.3)]:
        draws = np.array([simulate_ridge_risk(n, d, ridge, 1.0, 0.25, gen) for _ in range(150)])
        sem = draws.std(ddof=1) / np.sqrt(draws.size)
        exact = ridge_risk_finite_ridgeless(n, d, 1.0, 0.25) if ridge == 0 else float(ridge_risk(d / n, ridge, 1, 0.25))
        slack = 0 if ridge == 0 else exact / min(n, d)
        assert abs(draws.mean() - exact) < 4 * sem + slack


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ridge_risk(-1.0), "gamma"),
        (lambda: ridge_risk(0.5, ridge=-1.0), "ridge"),
        (lambda: ridge_risk(0.5, noise=-1.0), "noise"),
        (lambda: optimal_ridge(0.5, signal=0.0), "signal"),
        (lambda: ridge_risk_finite_ridgeless(10, 11), "differ"),
        (lambda: simulate_ridge_risk(10, 10, 0.0, 1.0, 0.1, np.random.default_rng(0)), "differ"),
        (lambda: simulate_ridge_risk(0, 10, 0.1, 1.0, 0.1, np.random.default_rng(0)), "n"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
