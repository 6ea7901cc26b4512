"""ESD power-law exponent (Martin & Mahoney 2021) with CSN xmin selection (Clauset, Shalizi & Newman 2009)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.observe import esd_alpha, layer_alphas, power_law_fit, spectral_density


def _pareto(alpha: float, n: int, seed: int, xmin: float = 1.0) -> np.ndarray:
    """Samples of p(x) ~ x^-alpha on [xmin, inf) by inversion of the CDF 1 - (x/xmin)^(1-alpha)."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0))


def _naive_fit(samples: np.ndarray) -> tuple[float, float]:
    """CSN by the book, one xmin at a time (the loop the vectorised code replaces)."""
    data = np.sort(samples)
    best = (np.inf, np.nan, np.nan)
    for i in range(len(data) - 1):
        tail = data[i:]
        alpha = 1 + len(tail) / np.sum(np.log(tail / tail[0]))
        if not alpha > 1:
            continue
        distance = np.max(np.abs(1 - (tail / tail[0]) ** (1 - alpha) - np.arange(len(tail)) / len(tail)))
        if distance < best[0]:
            best = (distance, alpha, tail[0])
    return best[1], best[2]


def test_mle_recovers_the_exponent_of_pure_power_law_samples():
    for alpha in (2.0, 3.5):
        fit = power_law_fit(_pareto(alpha, 4000, seed=1))
        # CSN eq. 3.2: the MLE's standard error is (alpha - 1) / sqrt(n_tail).
        assert abs(fit.alpha - alpha) <= 4 * fit.sigma
        assert fit.sigma == pytest.approx((fit.alpha - 1) / np.sqrt(fit.n_tail))


def test_xmin_is_found_at_the_start_of_the_tail():
    rng = np.random.default_rng(2)
    bulk = rng.uniform(0.1, 1.0, 3000)  # not a power law
    tail = _pareto(3.0, 2000, seed=3, xmin=1.0)
    fit = power_law_fit(np.concatenate([bulk, tail]))
    assert 0.9 <= fit.xmin <= 1.3
    assert abs(fit.alpha - 3.0) <= 4 * fit.sigma


@settings(max_examples=20, deadline=None)
@given(n=st.integers(5, 60), seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_vectorised_fit_equals_the_naive_loop_and_is_scale_invariant(n, seed, scale):
    samples = np.random.default_rng(seed).lognormal(0.0, 1.5, n)
    fit = power_law_fit(samples)
    alpha, xmin = _naive_fit(samples)
    assert fit.alpha == pytest.approx(alpha, rel=1e-9)
    assert fit.xmin == pytest.approx(xmin, rel=1e-12)
    # A power law has no scale: multiplying the data leaves alpha unchanged.
    assert power_law_fit(scale * samples).alpha == pytest.approx(fit.alpha, rel=1e-8)


def test_given_xmin_uses_that_tail():
    samples = _pareto(2.5, 500, seed=4)
    cut = float(np.quantile(samples, 0.5))
    fit = power_law_fit(samples, xmin=cut)
    tail = samples[samples >= cut]
    assert fit.n_tail == len(tail)
    assert fit.alpha == pytest.approx(1 + len(tail) / np.sum(np.log(tail / tail.min())))


def test_spectral_density_is_squared_singular_values_including_conv_slices():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((30, 20))
    np.testing.assert_allclose(spectral_density(w), np.sort(np.linalg.svd(w, compute_uv=False) ** 2))
    kernel = rng.standard_normal((8, 4, 3, 3))
    expected = np.sort(np.concatenate([np.linalg.svd(kernel[:, :, i, j], compute_uv=False) ** 2
                                       for i in range(3) for j in range(3)]))
    np.testing.assert_allclose(spectral_density(torch.as_tensor(kernel)), expected)


def test_heavy_tailed_matrices_have_smaller_alpha_than_gaussian_ones():
    rng = np.random.default_rng(6)
    gaussian = esd_alpha(rng.standard_normal((300, 500)))
    heavy = esd_alpha(rng.standard_t(2.5, size=(300, 500)))
    # Marchenko-Pastur bulk has a sharp edge: a very steep apparent tail; Student-t entries with 2.5 degrees of
    # freedom give a power-law ESD in the "heavy-tailed" range 2..6 (Martin & Mahoney 2021, table 1).
    assert gaussian > 6
    assert 2 <= heavy <= 6


def test_layer_alphas_covers_weight_matrices_with_enough_eigenvalues():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(40, 60), torch.nn.ReLU(), torch.nn.Linear(60, 30),
                                torch.nn.Linear(30, 5))
    alphas = layer_alphas(model)
    assert list(alphas) == ["0.weight", "2.weight"]  # 5 eigenvalues is too few; biases are not matrices
    assert alphas["2.weight"] == pytest.approx(esd_alpha(model[2].weight))
    assert list(layer_alphas(model, min_eigenvalues=5)) == ["0.weight", "2.weight", "3.weight"]


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="weight must have ndim"):
        esd_alpha(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        esd_alpha(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="fewer than 2 nonzero"):
        esd_alpha(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="> 0"):
        power_law_fit([1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="xmin"):
        power_law_fit([1.0, 2.0, 3.0], xmin=10.0)
    with pytest.raises(ValueError, match="model"):
        layer_alphas(np.ones((3, 3)))
