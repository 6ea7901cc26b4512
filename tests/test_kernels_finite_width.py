"""learnmech.kernels.finite_width: the last-layer kernels of random MLPs and the exact posterior of a GP mixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnmech.kernels import mlp, nngp_posterior
from learnmech.kernels.finite_width import last_layer_kernels, mixture_posterior


def _data(n: int = 7, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def test_one_hidden_layer_kernels_average_to_the_analytic_nngp() -> None:
    # With one hidden layer E[K_hat] = K exactly (preactivations are exactly Gaussian); the Monte-Carlo error of the
    # mean of M draws is ~ sqrt(2/M) K per entry relative (a product of Gaussians), so 4000 draws: ~2%.
    x = _data()
    ks = last_layer_kernels(x, 1, width=16, members=4000, W_std=1.3, b_std=0.2, seed=1)
    analytic = mlp(1, "relu", W_std=1.3, b_std=0.2)(x).nngp
    assert ks.shape == (4000, 7, 7)
    assert np.allclose(ks, ks.transpose(0, 2, 1))
    assert np.linalg.norm(ks.mean(axis=0) - analytic) / np.linalg.norm(analytic) < 0.03


def test_wide_deep_kernels_concentrate_on_the_nngp() -> None:
    x = _data()
    analytic = mlp(2, "erf", W_std=1.5, b_std=0.1)(x).nngp
    ks = last_layer_kernels(x, 2, width=2048, members=4, activation="erf", W_std=1.5, b_std=0.1, seed=2)
    rel = np.linalg.norm(ks - analytic, axis=(1, 2)) / np.linalg.norm(analytic)
    assert np.all(rel < 0.1)  # O(n^-1/2) fluctuation at width 2048


def test_kernels_are_seeded_and_follow_a_torch_input() -> None:
    x = _data()
    a = last_layer_kernels(x, 2, width=8, members=10, seed=3, chunk=3)
    b = last_layer_kernels(torch.from_numpy(x), 2, width=8, members=10, seed=3, chunk=3)
    assert np.allclose(a, b)
    assert not np.allclose(a, last_layer_kernels(x, 2, width=8, members=10, seed=4))


def test_mixture_of_identical_kernels_is_the_gp_posterior() -> None:
    x = _data()
    k = mlp(2, "relu")(x).nngp
    y = np.array([0.3, -1.0, 0.5])
    mix = mixture_posterior(np.stack([k] * 5), 3, y, noise=0.05)
    exact = nngp_posterior(k[:3, :3], k[3:, :3], k[3:, 3:], y, noise=0.05)
    assert np.allclose(mix.mean, exact.mean) and np.allclose(mix.covariance, exact.covariance)
    assert mix.effective_sample_size == pytest.approx(5.0)


def test_two_component_mixture_matches_brute_force_bayes() -> None:
    # Two scalar-output GPs on one train and one test point: the posterior by direct numerical integration of
    # p(f_*, f | y) over the mixture prior, on a grid.
    k1 = np.array([[1.0, 0.8], [0.8, 1.0]])
    k2 = np.array([[2.0, -0.5], [-0.5, 0.7]])
    y, noise = np.array([0.9]), 0.2
    mix = mixture_posterior(np.stack([k1, k2]), 1, y, noise)
    grid = np.linspace(-8, 8, 801)
    f, g = np.meshgrid(grid, grid, indexing="ij")  # f: train output, g: test output
    pts = np.stack([f, g], axis=-1)
    density = 0.0
    for k in (k1, k2):
        inv = np.linalg.inv(k)
        density = density + np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts)) / np.sqrt(np.linalg.det(k))
    density = density * np.exp(-0.5 * (y[0] - f) ** 2 / noise)
    density /= density.sum()
    mean = float((density * g).sum())
    var = float((density * g**2).sum()) - mean**2
    assert mix.mean[0] == pytest.approx(mean, abs=1e-6)
    assert mix.covariance[0, 0] == pytest.approx(var, abs=1e-6)


def test_bad_input_is_named() -> None:
    x = _data()
    with pytest.raises(ValueError, match="width"):
        last_layer_kernels(x, 1, width=0, members=2)
    with pytest.raises(ValueError, match="activation"):
        last_layer_kernels(x, 1, width=4, members=2, activation="softplus")
    ks = last_layer_kernels(x, 1, width=4, members=2)
    with pytest.raises(ValueError, match="n_train"):
        mixture_posterior(ks, 7, np.zeros(7), 0.1)
    with pytest.raises(ValueError, match="y_train"):
        mixture_posterior(ks, 3, np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="noise"):
        mixture_posterior(ks, 3, np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="kernels"):
        mixture_posterior(ks[0], 3, np.zeros(3), 0.1)
