"""solvable.saddle: Pesme & Flammarion (2023) saddle-to-saddle algorithm vs closed forms and brute-force GD."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from learnmech.solvable import saddle


def _orthogonal_design(n: int, d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, d)))
    return q * np.sqrt(n)  # X^T X / n = I


def test_orthogonal_design_closed_form() -> None:
    # With X^T X / n = I the coordinates decouple: g_j = beta_j - beta*_j, so s_j = t beta*_j reaches +-1 at
    # t~ = 1 / |beta*_j| and the saddle is beta* restricted to the coordinates active so far.
    X = _orthogonal_design(20, 5, 0)
    teacher = np.array([0.0, -2.0, 0.5, 4.0, 1.0])
    path = saddle.diagonal_saddles(X, X @ teacher)
    assert path.order == [3, 1, 4, 2]
    np.testing.assert_allclose(path.times, [0.0, 0.25, 0.5, 1.0, 2.0], rtol=1e-10)
    for k in range(1, len(path.order) + 1):
        expected = np.where(np.isin(np.arange(5), path.order[:k]), teacher, 0.0)
        np.testing.assert_allclose(path.saddles[k], expected, atol=1e-10)
    np.testing.assert_allclose(path.losses[-1], 0.0, atol=1e-20)
    np.testing.assert_allclose(saddle.jump_times(path, np.exp(-2.0)), path.times)  # log(1/alpha)/2 = 1
    assert path.first_entry() == {3: 1, 1: 2, 4: 3, 2: 4}


def test_overparametrised_ends_at_min_l1_interpolator() -> None:
    # Pesme & Flammarion (2023), Thm. 2: the last saddle is the minimum-l1-norm interpolator (n < d).
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 15))
    teacher = np.zeros(15)
    teacher[[2, 7, 11]] = [2.0, -1.0, 0.5]
    y = X @ teacher + 0.1 * rng.standard_normal(8)
    path = saddle.diagonal_saddles(X, y)
    # min ||b||_1 s.t. X b = y as an LP in (b+, b-) >= 0.
    lp = linprog(np.ones(30), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    l1 = lp.x[:15] - lp.x[15:]
    np.testing.assert_allclose(path.saddles[-1], l1, atol=1e-6)
    np.testing.assert_allclose(X @ path.saddles[-1], y, atol=1e-8)
    assert np.all(np.diff(path.times) > 0)
    assert np.all(np.abs(path.s) <= 1 + 1e-12)


def test_simulator_matches_first_plateau_closed_form() -> None:
    # While beta ~ 0 the gradient is -b = -X^T y / n, so beta(t) = 2 alpha^2 sinh(4 b t) exactly under gradient
    # flow; GD with a small step follows it to O(lr).
    X = _orthogonal_design(10, 3, 2)
    y = X @ np.array([1.0, -0.5, 0.25])
    alpha = 1e-6
    run = saddle.simulate_diagonal(X, y, [alpha], 2.0, 1e-4, num_records=50)
    b = X.T @ y / 10
    expected = 2 * alpha**2 * np.sinh(4 * np.outer(run.times, b))
    np.testing.assert_allclose(run.beta[0], expected, rtol=2e-3)
    assert run.loss.shape == (1, run.times.size)


def test_brute_force_jump_times_and_saddles() -> None:
    # Small alpha: the activation (half-saddle) times grow like t~_k log(1/alpha) / 2 (slope within 1%), and
    # mid-way between jumps the network sits at the predicted saddle.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 6))
    teacher = np.array([3.0, 0.0, -1.5, 0.0, 0.6, 0.0])
    y = X @ teacher
    path = saddle.diagonal_saddles(X, y)
    alphas = np.array([1e-5, 1e-7, 1e-9])
    t_max = path.times[-1] * np.log(1 / alphas.min()) / 2 + 5
    run = saddle.simulate_diagonal(X, y, alphas, t_max, 5e-4, num_records=3000)
    first = path.first_entry()
    coords = path.order
    levels = np.array([abs(path.saddles[first[j], j]) for j in coords])
    cross = np.array([saddle.crossing_times(run.times, run.beta[i][:, coords], levels / 2) for i in range(3)])
    slopes = np.polyfit(np.log(1 / alphas), cross, 1)[0]
    np.testing.assert_allclose(slopes, [path.times[first[j]] / 2 for j in coords], rtol=0.01)
    mid = (path.times[1:-1] + path.times[2:]) / 2 * np.log(1 / alphas[-1]) / 2
    for k, t in enumerate(mid, start=1):
        i = int(np.argmin(np.abs(run.times - t)))
        np.testing.assert_allclose(run.beta[-1][i], path.saddles[k], atol=0.02 * np.abs(teacher).max())


def test_dormant_magnitude() -> None:
    X = _orthogonal_design(12, 2, 4)
    path = saddle.diagonal_saddles(X, X @ np.array([2.0, 1.0]))
    # After jump 1 (t~ = 1/2) coordinate 1 has s = t~ beta*_1 = 0.5: size alpha^(2 * 0.5) = alpha.
    np.testing.assert_allclose(saddle.dormant_magnitude(path, 1e-3)[1], [1.0, 1e-3])


def test_crossing_and_windows() -> None:
    t = np.linspace(0, 3, 301)
    values = np.stack([np.clip(t, 0, 1), np.clip(t - 1.5, 0, 1), np.clip(t - 1.2, 0, 1)], axis=1)
    np.testing.assert_allclose(saddle.crossing_times(t, values, [0.5, 0.5, 2.0])[:2], [0.5, 2.0])
    assert np.isnan(saddle.crossing_times(t, values, [0.5, 0.5, 2.0])[2])
    t_low, t_high, disjoint = saddle.sequential_windows(t, values, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(t_low, [0.1, 1.6, 1.3])
    np.testing.assert_allclose(t_high, [0.9, 2.4, 2.1])
    assert disjoint.tolist() == [True, False]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="y"):
        saddle.diagonal_saddles(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="alpha"):
        saddle.jump_times(saddle.diagonal_saddles(np.eye(2), np.ones(2)), 2.0)
    with pytest.raises(ValueError, match="alphas"):
        saddle.simulate_diagonal(np.eye(2), np.ones(2), [-1.0], 1.0, 0.1)
    with pytest.raises(ValueError, match="values"):
        saddle.crossing_times([0, 1], np.ones((3, 1)), [1.0])
    with pytest.raises(ValueError, match="low"):
        saddle.sequential_windows([0, 1], np.ones((2, 1)), [1.0], low=0.5, high=0.2)
