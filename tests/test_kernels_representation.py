"""kernels.cka_width_coefficient: E[1 - CKA] * width of independently seeded random-feature layers, brute force."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech.kernels import cka_width_coefficient
from learnmech.kernels.representation import _unbiased_rank_one
from learnmech.observe import cka, unbiased_hsic


def _sampler(n: int = 30, d: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))

    def features(m: int) -> np.ndarray:  # m i.i.d. ReLU neurons with N(0, 2/d) weights on the n inputs
        return np.maximum(x @ (rng.normal(size=(d, m)) * np.sqrt(2 / d)), 0)

    return features


def test_rank_one_unbiased_hsic_matches_the_general_estimator():
    features = _sampler()
    phi, other = features(3), features(40)
    k = other @ other.T
    for j in range(3):
        m = np.outer(phi[:, j], phi[:, j])
        assert _unbiased_rank_one(phi[:, j:j + 1], k)[0] == pytest.approx(unbiased_hsic(m, k), rel=1e-10)
        assert _unbiased_rank_one(phi[:, j:j + 1], None)[0] == pytest.approx(unbiased_hsic(m, m), rel=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_coefficient_matches_brute_force_pairs_of_random_layers(debiased):
    features = _sampler()
    c = cka_width_coefficient(features(100_000), debiased=debiased)
    width, pairs = 400, 300
    gaps = [1 - cka(features(width), features(width), debiased=debiased) for _ in range(pairs)]
    scaled, se = np.mean(gaps) * width, np.std(gaps) * width / np.sqrt(pairs)
    # Leading order in 1/width: the O(1/width^2) term shifts the mean by ~2% at width 400 (9% at width 100 in a
    # separate run, scaling as 1/width), so allow 4 standard errors plus 5% of c.
    assert abs(scaled - c) < 4 * se + 0.05 * c


def test_coefficient_with_analytic_kernel_and_bad_input():
    features = _sampler()
    phi = features(20_000)
    assert cka_width_coefficient(phi, kernel=phi @ phi.T / phi.shape[1]) == pytest.approx(cka_width_coefficient(phi))
    with pytest.raises(ValueError, match="features must be"):
        cka_width_coefficient(phi[:3])
    with pytest.raises(ValueError, match="kernel must be"):
        cka_width_coefficient(phi, kernel=np.eye(4))
