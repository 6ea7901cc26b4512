"""The interaction form of L(N, D) (Kaplan et al. 2020, eq. 1.5 plus a floor) and its fit."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.laws.forms import fit_interaction_law, interaction_law


def test_interaction_law_formula_and_limits():
    assert interaction_law(10.0, 100.0, 0.5, 20.0, 300.0, 0.5, 0.25) == pytest.approx(
        0.5 + ((20.0 / 10.0) ** 2 + 3.0) ** 0.25)
    # D -> infinity leaves E + A^alpha / N^alpha: the N-limited power law
    assert interaction_law(50.0, 1e30, 0.1, 20.0, 300.0, 0.7, 0.4) == pytest.approx(0.1 + (20.0 / 50.0) ** 0.7)


def test_fit_recovers_the_parameters_of_exact_data():
    N, D = np.meshgrid(np.geomspace(40, 640, 5), np.geomspace(128, 2048, 5), indexing="ij")
    true = {"E": 0.01, "A": 50.0, "B": 300.0, "alpha": 0.8, "beta": 0.6}
    fit = fit_interaction_law(N.ravel(), D.ravel(), interaction_law(N, D, **true).ravel(), starts=16)
    for key, value in true.items():
        assert fit.params[key] == pytest.approx(value, rel=1e-4)
    assert fit.rms_log < 1e-8 and fit.n_points == 25
    assert fit.predict(100.0, 500.0) == pytest.approx(interaction_law(100.0, 500.0, **true), rel=1e-6)


def test_fit_is_deterministic_and_validates():
    N, D = np.meshgrid(np.geomspace(40, 640, 4), np.geomspace(128, 2048, 4), indexing="ij")
    loss = interaction_law(N, D, 0.02, 30.0, 200.0, 0.5, 0.5).ravel()
    noisy = loss * np.exp(0.01 * np.random.default_rng(0).standard_normal(loss.size))
    first = fit_interaction_law(N.ravel(), D.ravel(), noisy, starts=8, seed=1)
    assert fit_interaction_law(N.ravel(), D.ravel(), noisy, starts=8, seed=1).params == first.params
    with pytest.raises(ValueError, match="loss"):
        fit_interaction_law(N.ravel(), D.ravel(), -noisy)
