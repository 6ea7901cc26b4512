"""learnmech.laws.power: one-variable power laws, broken power laws, held-out model comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.laws import compare_power_laws, fit_broken_power_law, fit_power_law, power_law

X = np.geomspace(10, 1e4, 20)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 100.0), st.floats(0.05, 2.0), st.floats(1e-3, 1e3))
def test_pure_power_law_is_recovered_and_scale_equivariant(c, k, scale):
    fit = fit_power_law(X, power_law(X, c, k), n_bootstrap=0)
    assert fit.params["c"] == pytest.approx(c, rel=1e-8)
    assert fit.params["k"] == pytest.approx(k, rel=1e-8, abs=1e-10)
    assert fit.params["E"] == 0.0 and fit.rmse_log < 1e-8
    # rescaling y rescales c only (a power law has no preferred units)
    scaled = fit_power_law(X, scale * power_law(X, c, k), n_bootstrap=0)
    assert scaled.params["c"] == pytest.approx(scale * c, rel=1e-7)
    assert scaled.params["k"] == pytest.approx(k, rel=1e-7, abs=1e-9)


def test_irreducible_term_recovered_with_intervals():
    rng = np.random.default_rng(0)
    y = power_law(X, 3.0, 0.4, 0.5) * np.exp(0.01 * rng.normal(size=X.size))
    fit = fit_power_law(X, y, irreducible=True, n_bootstrap=200, seed=1)
    truth = {"c": 3.0, "k": 0.4, "E": 0.5}
    for name, value in truth.items():
        low, high = fit.intervals[name]
        assert low < value < high, name
        assert fit.params[name] == pytest.approx(value, rel=0.05)
    low, high = fit.predict_interval(np.array([1e5]))
    assert low[0] < power_law(1e5, 3.0, 0.4, 0.5) < high[0]


def test_broken_power_law_finds_the_break():
    y = np.where(X < 300, X**-0.5, 300**-0.5 * (X / 300) ** -1.0)
    fit = fit_broken_power_law(X, y, n_breaks=400)
    assert fit.params["k1"] == pytest.approx(0.5, rel=0.02)
    assert fit.params["k2"] == pytest.approx(1.0, rel=0.02)
    assert fit.params["x_break"] == pytest.approx(300, rel=0.1)
    np.testing.assert_allclose(fit.predict(X), y, rtol=0.05)


def test_held_out_comparison_prefers_the_true_model():
    rng = np.random.default_rng(2)
    y = power_law(X, 3.0, 0.6, 0.2) * np.exp(0.005 * rng.normal(size=X.size))
    errors = compare_power_laws(X, y, holdout=4)
    assert errors["power+constant"] < errors["power"]
    assert errors["best"] == 1.0  # index of "power+constant" in MODELS
    pure = compare_power_laws(X, power_law(X, 2.0, 0.3), holdout=3, models=("power", "broken"))
    assert pure["power"] < 1e-8


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fit_power_law([1, 2, 3], [1, 2, -3]), "y must be strictly positive"),
        (lambda: fit_power_law([1, 2, 3], [1, 2]), "same length"),
        (lambda: fit_power_law([1, 2, 3], [1, 2, 3], irreducible=True), "more than 3 points"),
        (lambda: fit_power_law(X, X, confidence=0), "confidence"),
        (lambda: compare_power_laws(X, X, models=("cubic",)), "models must be one of"),
        (lambda: fit_broken_power_law([1, 2, 3, 4], [1, 2, 3, 4]), "more than 4 points"),
    ],
)
def test_bad_input_is_a_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
