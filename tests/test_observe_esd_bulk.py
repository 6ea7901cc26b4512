"""Bulk-versus-spike ESD tools (observe.esd): the bulk fit drops the spikes, the spiked null has the requested
outliers on a Marchenko-Pastur bulk, the power-law bulk has the requested exponent, and min_tail bounds the tail."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.observe import bulk_fit, fit_tail, power_law_bulk, spectral_density, spiked_null


def test_power_law_bulk_recovers_its_exponent_and_mean() -> None:
    w = power_law_bulk((1000, 1000), alpha=3.0, mean=2.0, seed=0)
    eigenvalues = spectral_density(w)
    assert eigenvalues.mean() == pytest.approx(2.0, rel=0.15)
    fit = fit_tail(eigenvalues, min_tail=100)
    assert abs(fit.alpha - 3.0) < 3 * fit.sigma
    with pytest.raises(ValueError, match="alpha"):
        power_law_bulk((4, 4), alpha=2.0)


def test_spiked_null_has_the_requested_outliers_above_the_mp_edge() -> None:
    n, k = 400, 3
    strengths = np.array([6.0, 5.0, 4.0])  # spike singular values, well above the bulk's edge at 2
    w = spiked_null((n, n), strengths, bulk_variance=1.0 / n, seed=1)
    eigenvalues = spectral_density(w)[::-1]
    edge = (1 + 1) ** 2  # MP edge of W^T W for entry variance 1/n, square: (1 + sqrt(1))^2
    assert np.all(eigenvalues[:k] > edge) and eigenvalues[k] < edge * 1.1
    # BBP (Benaych-Georges & Nadakuditi 2012): an outlier of strength theta sits at ((1 + theta^2)/theta)^2
    theta = strengths
    np.testing.assert_allclose(eigenvalues[:k], (1 + theta**2) ** 2 / theta**2, rtol=0.1)


def test_bulk_fit_ignores_the_spikes() -> None:
    n = 300
    bulk = spiked_null((n, n), [], bulk_variance=1.0, seed=2)
    spiked = spiked_null((n, n), [80.0] * 5, bulk_variance=1.0, seed=2)
    full = fit_tail(spectral_density(spiked)).alpha
    assert bulk_fit(spiked, 5).alpha == pytest.approx(bulk_fit(bulk, 0).alpha, rel=0.25)
    assert full < bulk_fit(spiked, 5).alpha  # the whole-ESD fit sees the spikes as a heavy tail
    with pytest.raises(ValueError, match="spikes"):
        bulk_fit(spiked, -1)


def test_min_tail_bounds_the_tail_size() -> None:
    data = np.random.default_rng(0).pareto(2.0, 500) + 1.0
    assert fit_tail(data, min_tail=200).n_tail >= 200
    assert fit_tail(data).n_tail >= 2
    with pytest.raises(ValueError, match="min_tail"):
        fit_tail(data, min_tail=501)
