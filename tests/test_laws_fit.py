"""learnmech.laws.fit / optim / data: approach-3 fitting, its gradient, bootstrap, frontier, Chinchilla data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.laws import (
    PARAMETER_NAMES,
    compute_optimal,
    default_start_grid,
    drop_highest,
    find_data_file,
    fit_scaling_law,
    huber,
    load_chinchilla,
    minimize_batched,
    scaling_law,
)
from learnmech.laws.fit import _objective

TRUE = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.3}
COARSE = default_start_grid(2)


def synthetic(noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    N, D = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8))
    N, D = N.ravel(), D.ravel()
    loss = scaling_law(N, D, **TRUE) * np.exp(noise * np.random.default_rng(seed).normal(size=N.size))
    return N, D, loss


def test_default_grid_is_hoffmanns():
    grid = default_start_grid()
    assert grid.shape == (4500, 5)
    assert set(np.unique(grid[:, 3])) == {0.0, 0.5, 1.0, 1.5, 2.0}
    assert set(np.unique(grid[:, 0])) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}
    assert COARSE.shape == (243, 5)


def test_noise_free_fit_recovers_the_law():
    fit = fit_scaling_law(*synthetic(), starts=COARSE, n_bootstrap=0)
    for name in PARAMETER_NAMES:
        assert fit.params[name] == pytest.approx(TRUE[name], rel=1e-3), name
    assert fit.objective < 1e-10
    assert np.isnan(fit.intervals["E"][0]) and fit.bootstrap.shape == (0, 5)
    N, D, loss = synthetic()
    np.testing.assert_allclose(fit.predict(N, D), loss, rtol=1e-5)
    assert fit.alpha == fit.params["alpha"]  # attribute shorthand


def test_bootstrap_intervals_cover_truth_and_are_seeded():
    data = synthetic(noise=0.01, seed=1)
    fit = fit_scaling_law(*data, starts=COARSE, n_bootstrap=100, seed=3)
    for name in ("E", "alpha", "beta"):
        low, high = fit.intervals[name]
        assert low < fit.params[name] < high
        assert low < TRUE[name] < high, name
        assert fit.standard_errors[name] > 0
    again = fit_scaling_law(*data, starts=COARSE, n_bootstrap=100, seed=3)
    np.testing.assert_array_equal(fit.bootstrap, again.bootstrap)
    other = fit_scaling_law(*data, starts=COARSE, n_bootstrap=100, seed=4)
    assert not np.array_equal(fit.bootstrap, other.bootstrap)
    low, high = fit.compute_optimal.intervals["a"]
    assert low < fit.compute_optimal.a < high


def test_objective_gradient_matches_finite_differences():
    N, D, loss = synthetic(noise=0.02)
    weights = np.random.default_rng(0).integers(0, 3, size=(3, N.size)).astype(float)
    objective = _objective(np.log(N), np.log(D), np.log(loss), weights, 1e-3)
    theta = np.array([[6.0, 7.0, 0.5, 0.3, 0.35], [5.5, 7.5, 0.4, 0.4, 0.3], [6.2, 6.8, 0.55, 0.33, 0.31]])
    rows = np.arange(3)
    _, grad = objective(theta, rows)
    step = 1e-7
    for k in range(5):
        shift = np.zeros_like(theta)
        shift[:, k] = step
        numeric = (objective(theta + shift, rows)[0] - objective(theta - shift, rows)[0]) / (2 * step)
        np.testing.assert_allclose(grad[:, k], numeric, rtol=1e-4, atol=1e-10)


def test_minimize_batched_solves_rosenbrock_from_many_starts():
    def rosenbrock(x, rows):
        a, b = x[:, 0], x[:, 1]
        value = (1 - a) ** 2 + 100 * (b - a**2) ** 2
        grad = np.stack([-2 * (1 - a) - 400 * a * (b - a**2), 200 * (b - a**2)], axis=1)
        return value, grad

    starts = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0], [1.5, 2.5]])
    result = minimize_batched(rosenbrock, starts, max_iter=2000)
    np.testing.assert_allclose(result.x, 1.0, atol=1e-5)
    assert result.converged.all() and (result.fun < 1e-10).all()


@settings(max_examples=40, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(1e-4, 1e-1))
def test_huber_is_quadratic_inside_linear_outside(r, delta):
    value = float(huber(np.array(r), delta))
    if abs(r) <= delta:
        assert value == pytest.approx(0.5 * r * r)
    else:
        assert value == pytest.approx(delta * (abs(r) - 0.5 * delta))
    assert value >= 0 and value == pytest.approx(float(huber(np.array(-r), delta)))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 1.0), st.floats(0.1, 1.0), st.floats(1.0, 1e4), st.floats(1.0, 1e4), st.floats(1e18, 1e26))
def test_compute_optimal_frontier_minimises_loss_at_fixed_compute(alpha, beta, A, B, compute):
    a, b, G = compute_optimal(1.0, A, B, alpha, beta)
    assert a + b == pytest.approx(1.0)
    n_opt = G * (compute / 6) ** a
    d_opt = (compute / 6) ** b / G
    assert 6 * n_opt * d_opt == pytest.approx(compute, rel=1e-9)
    # any other split of the same compute has a higher loss (Hoffmann et al. 2022, eq. 4)
    for factor in (0.5, 0.9, 1.1, 2.0):
        n = n_opt * factor
        assert scaling_law(n, compute / (6 * n), 1.0, A, B, alpha, beta) >= scaling_law(
            n_opt, d_opt, 1.0, A, B, alpha, beta) * (1 - 1e-12)


@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, -1]), "loss must be strictly positive"),
        (([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5], [1, 1, 1, 1, 1, 1]), "same length"),
        (([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 1, 1, 1, 1]), "more points than the 5 parameters"),
        (([1, 2, 3, 4, 5, np.nan], [1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 1]), "N contains NaN"),
    ],
)
def test_fit_rejects_bad_data(args, match):
    with pytest.raises(ValueError, match=match):
        fit_scaling_law(*args, n_bootstrap=0)


def test_fit_rejects_bad_options():
    N, D, loss = synthetic()
    with pytest.raises(ValueError, match="starts must have shape"):
        fit_scaling_law(N, D, loss, starts=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="confidence"):
        fit_scaling_law(N, D, loss, confidence=1.5)
    with pytest.raises(ValueError, match="n_bootstrap"):
        fit_scaling_law(N, D, loss, n_bootstrap=-1)


def test_chinchilla_data_and_epoch_fit():
    N, D, loss = load_chinchilla(exclude_highest=0)
    assert N.size == 245 and np.all(D > 0)
    N, D, loss = load_chinchilla()
    assert N.size == 240
    fit = fit_scaling_law(N, D, loss, starts=COARSE, n_bootstrap=0)
    epoch = {"E": 1.817, "A": 478.0, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}
    for name, value in epoch.items():
        assert fit.params[name] == pytest.approx(value, rel=2e-3), name


def test_drop_highest_and_data_location(tmp_path, monkeypatch):
    keep = drop_highest(np.array([3.0, 1.0, 5.0, 2.0, 4.0]), 2)
    np.testing.assert_array_equal(keep, [True, True, False, True, False])
    with pytest.raises(ValueError, match="exclude_highest"):
        drop_highest(np.ones(3), 3)
    (tmp_path / "chinchilla_svg_extracted.csv").write_text("x\n1\n")
    monkeypatch.setenv("LEARNMECH_DATA", str(tmp_path))
    assert find_data_file() == tmp_path / "chinchilla_svg_extracted.csv"
    with pytest.raises(FileNotFoundError, match="LEARNMECH_DATA"):
        find_data_file("no_such_file.csv")
