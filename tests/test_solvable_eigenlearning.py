"""Eigenlearning: the kappa equation, the conservation law, limits, robustness, and agreement with experiment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.solvable import (
    effective_regularization,
    eigenlearning,
    gaussian_feature_learning_curve,
    kernel_eigensystem,
    kernel_regression,
    learning_curve_exponent,
    power_law_spectrum,
)

spectra = st.lists(st.floats(1e-6, 10.0), min_size=3, max_size=40)


@settings(max_examples=60, deadline=None)
@given(lam=spectra, n_frac=st.floats(0.05, 0.95), ridge=st.floats(0.0, 5.0), noise=st.floats(0.0, 1.0))
def test_kappa_solves_the_equation_and_the_sum_rule_holds(lam, n_frac, ridge, noise):
    lam = np.array(lam)
    n = max(n_frac * lam.size, 0.5)
    coeffs = np.linspace(1.0, 0.1, lam.size)
    pred = eigenlearning(lam, coeffs, n, ridge=ridge, noise=noise)
    assert pred.kappa > 0
    # Conservation law: sum_i L_i + ridge/kappa = n (Simon et al. 2021).
    assert abs(pred.sum_rule_residual) <= 1e-8 * n
    assert np.all((pred.learnabilities >= 0) & (pred.learnabilities <= 1))
    assert pred.E0 >= 1.0
    # Test MSE is at least the noise and at most E0 (total power + noise).
    assert pred.test_mse >= noise - 1e-12
    assert pred.test_mse <= pred.E0 * (np.sum(coeffs**2) + noise) + 1e-12
    assert pred.train_mse <= pred.test_mse + 1e-12


def test_single_mode_matches_the_quadratic():
    # One eigenvalue: lam/(lam+k) + r/k = n  <=>  n k^2 + (n lam - lam - r) k - r lam = 0.
    lam, r, n = 2.0, 0.3, 1.5
    b = n * lam - lam - r
    kappa = (-b + math.sqrt(b * b + 4 * n * r * lam)) / (2 * n)
    assert effective_regularization([lam], n, r) == pytest.approx(kappa, rel=1e-12)


def test_limits_huge_ridge_learns_nothing_and_large_n_learns_everything():
    lam = power_law_spectrum(100, 2.0)
    coeffs = np.sqrt(power_law_spectrum(100, 2.0))
    nothing = eigenlearning(lam, coeffs, 10, ridge=1e9)
    assert nothing.test_mse == pytest.approx(np.sum(coeffs**2), rel=1e-6)
    assert nothing.train_mse == pytest.approx(nothing.test_mse, rel=1e-6)
    everything = eigenlearning(lam, coeffs, 99.9)
    assert everything.test_mse < 1e-3 * np.sum(coeffs**2)
    assert everything.train_mse == 0.0  # ridgeless interpolation


def test_multiplicity_equals_the_expanded_spectrum():
    lam, mult = np.array([1.0, 0.1, 0.01]), np.array([1, 3, 5])
    power = np.array([0.5, 0.3, 0.2])
    grouped = eigenlearning(lam, np.sqrt(power), 4.0, ridge=0.01, noise=0.1, multiplicity=mult)
    flat_lam = np.repeat(lam, mult)
    flat_coeffs = np.zeros(flat_lam.size)
    flat_coeffs[[0, 1, 4]] = np.sqrt(power)
    flat = eigenlearning(flat_lam, flat_coeffs, 4.0, ridge=0.01, noise=0.1)
    assert grouped.kappa == pytest.approx(flat.kappa, rel=1e-10)
    assert grouped.test_mse == pytest.approx(flat.test_mse, rel=1e-10)
    assert grouped.train_mse == pytest.approx(flat.train_mse, rel=1e-10)


def test_robust_for_a_million_eigenvalues_and_a_million_samples():
    lam = power_law_spectrum(1_000_000, 1.2)
    coeffs = np.sqrt(power_law_spectrum(1_000_000, 1.5))
    big = eigenlearning(lam, coeffs, 1_000_000, ridge=1e-6)
    assert np.isfinite(big.test_mse) and big.test_mse > 0
    assert abs(big.sum_rule_residual) < 1e-6 * 1e6
    ridgeless = eigenlearning(lam, coeffs, 500_000)
    assert np.isfinite(ridgeless.test_mse) and ridgeless.E0 > 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: eigenlearning([1.0, 0.5], [1.0, 1.0], 0), "n"),
        (lambda: eigenlearning([1.0, 0.5], [1.0, 1.0], -3), "n"),
        (lambda: eigenlearning([1.0, -0.5], [1.0, 1.0], 1), "eigenvalues"),
        (lambda: eigenlearning([1.0, 0.5], [1.0], 1), "target_coeffs"),
        (lambda: eigenlearning([1.0, 0.5, 0.0], [1.0, 1.0, 1.0], 2), "rank"),
        (lambda: eigenlearning([1.0, 0.5], [1.0, 1.0], 1, ridge=-1), "ridge"),
        (lambda: eigenlearning([1.0, 0.5], [1.0, 1.0], 1, noise=-1), "noise"),
        (lambda: eigenlearning([1.0, 0.5], [1.0, 1.0], 1, multiplicity=[1, 0]), "multiplicity"),
        (lambda: eigenlearning([], [], 1), "eigenvalues"),
        (lambda: learning_curve_exponent(0.8, 2.0), "spectrum_exponent"),
        (lambda: learning_curve_exponent(1.5, 1.0), "target_exponent"),
        (lambda: kernel_eigensystem(np.ones((3, 2)), np.ones(3)), "gram"),
        (lambda: kernel_regression(np.eye(3), np.ones((2, 4)), np.ones(3)), "k_test_train"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_learning_curve_exponent_regimes():
    assert learning_curve_exponent(1.5, 2.5) == pytest.approx(1.5)  # target-limited: b - 1
    assert learning_curve_exponent(1.2, 5.0) == pytest.approx(2.4)  # spectrum-limited: 2a


def test_kernel_eigensystem_of_a_linear_kernel():
    gen = np.random.default_rng(0)
    X = gen.standard_normal((400, 3)) * np.array([2.0, 1.0, 0.5])
    f = X @ np.array([1.0, -1.0, 2.0])
    lam, coeffs = kernel_eigensystem(X @ X.T, f)
    assert lam.shape == coeffs.shape == (400,)
    np.testing.assert_allclose(lam[:3], np.sort(np.linalg.eigvalsh(X.T @ X / 400))[::-1], rtol=1e-8)
    assert np.all(lam[3:] < 1e-10)
    assert np.sum(coeffs**2) == pytest.approx(np.mean(f**2), rel=1e-10)


def test_kernel_regression_interpolates_and_matches_direct_solve():
    gen = np.random.default_rng(1)
    X = gen.standard_normal((30, 4))
    K = np.exp(-np.sum((X[:, None] - X[None]) ** 2, axis=-1))
    y = gen.standard_normal(30)
    test_pred, train_pred = kernel_regression(K, K[:5], y)
    np.testing.assert_allclose(train_pred, y, atol=1e-6)
    ridge_pred = kernel_regression(K, K[:5], y, ridge=0.5)[0]
    np.testing.assert_allclose(ridge_pred, K[:5] @ np.linalg.solve(K + 0.5 * np.eye(30), y), rtol=1e-10)
    # A singular Gram (duplicated point) falls back to the minimum-norm solution instead of failing.
    K_dup = np.ones((2, 2))
    np.testing.assert_allclose(kernel_regression(K_dup, K_dup, np.array([1.0, 1.0]))[1], [1.0, 1.0])


def test_gaussian_design_learning_curve_matches_eigenlearning():
    # In the Gaussian-design model the eigenlearning estimate is accurate to a few percent (Simon et al. 2021).
    lam = power_law_spectrum(600, 1.5)
    coeffs = np.sqrt(power_law_spectrum(600, 2.0))
    sizes = [20, 60, 150]
    measured = gaussian_feature_learning_curve(lam, coeffs, sizes, seeds=range(24), noise=0.01)
    predicted = np.array([eigenlearning(lam, coeffs, n, noise=0.01).clean_test_mse for n in sizes])
    sem = measured.std(axis=0, ddof=1) / np.sqrt(measured.shape[0])
    assert np.all(np.abs(measured.mean(axis=0) - predicted) < 4 * sem + 0.03 * predicted)
