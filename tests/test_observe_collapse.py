"""Neural collapse statistics (Papyan, Han & Donoho 2020) on constructed feature geometries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnmech.observe import neural_collapse


def _simplex_etf(num_classes: int, dim: int, scale: float, seed: int) -> np.ndarray:
    """Centred class means forming a simplex ETF of norm ``scale * sqrt(1 - 1/C)``, embedded in ``dim``."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, num_classes)))
    return scale * (np.eye(num_classes) - 1.0 / num_classes) @ q.T


def test_exact_collapse_gives_all_zeros():
    means = _simplex_etf(4, 10, 3.0, seed=0)
    labels = np.arange(40) % 4
    stats = neural_collapse(means[labels], labels, means)
    for value in stats.as_dict().values():
        assert value == pytest.approx(0.0, abs=1e-10)


def test_nc1_matches_isotropic_noise_theory():
    # Sigma_W = sigma^2 I and Sigma_B has C-1 eigenvalues scale^2 / C, so
    # Tr(Sigma_W Sigma_B^+) / C = sigma^2 (C - 1) / scale^2; finite n perturbs it by O(n^-1/2).
    num_classes, dim, scale, sigma, n = 5, 12, 4.0, 0.5, 5000
    means = _simplex_etf(num_classes, dim, scale, seed=1)
    labels = np.arange(n) % num_classes
    features = means[labels] + sigma * np.random.default_rng(2).standard_normal((n, dim))
    stats = neural_collapse(features, labels, means)
    expected = sigma**2 * (num_classes - 1) / scale**2
    assert stats.nc1 == pytest.approx(expected, rel=5 * np.sqrt(2.0 / n))
    assert stats.nc2_equinorm < 0.05 and stats.nc2_maxangle < 0.05 and stats.nc3 < 0.01
    assert stats.nc4 == 0.0


def test_nc1_falls_as_noise_shrinks_and_nc4_counts_disagreements():
    means = _simplex_etf(3, 6, 2.0, seed=3)
    labels = np.arange(300) % 3
    noise = np.random.default_rng(4).standard_normal((300, 6))
    nc1 = [neural_collapse(means[labels] + s * noise, labels, means).nc1 for s in (1.0, 0.1, 0.01)]
    assert nc1[0] > 50 * nc1[1] > 2500 * nc1[2]
    # A classifier that swaps two classes disagrees with nearest-class-centre on exactly those examples.
    swapped = means[[1, 0, 2]]
    stats = neural_collapse(means[labels] + 0.01 * noise, labels, swapped)
    assert stats.nc4 == pytest.approx(2 / 3)
    assert stats.nc3 > 0.1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_statistics_are_invariant_to_rotation_and_nc1_to_scale(seed, scale):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((60, 5))
    labels = np.arange(60) % 3
    weight = rng.standard_normal((3, 5))
    base = neural_collapse(features, labels, weight)
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    rotated = neural_collapse(features @ rotation, labels, weight @ rotation)
    for key, value in base.as_dict().items():
        assert getattr(rotated, key) == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert neural_collapse(scale * features, labels, weight).nc1 == pytest.approx(base.nc1, rel=1e-6)


def test_accepts_torch_tensors():
    means = _simplex_etf(3, 4, 1.0, seed=5)
    labels = np.arange(9) % 3
    stats = neural_collapse(torch.as_tensor(means[labels]), torch.as_tensor(labels), torch.as_tensor(means))
    assert stats.nc1 == pytest.approx(0.0, abs=1e-10)


def test_bad_inputs_raise_value_errors():
    features = np.random.default_rng(0).standard_normal((6, 4))
    weight = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
        neural_collapse(features, [0, 1, 2, 0, 1, 3], weight)
    with pytest.raises(ValueError, match="every class"):
        neural_collapse(features, [0, 1, 0, 1, 0, 1], weight)
    with pytest.raises(ValueError, match="classifier_weight must have shape"):
        neural_collapse(features, [0, 1, 2, 0, 1, 2], np.ones((3, 5)))
    with pytest.raises(ValueError, match="one entry per feature"):
        neural_collapse(features, [0, 1, 2], weight)
    with pytest.raises(ValueError, match="features must not be empty"):
        neural_collapse(np.zeros((0, 4)), [], weight)
    with pytest.raises(ValueError, match="at least 2 rows"):
        neural_collapse(features, np.zeros(6), np.ones((1, 4)))
    with pytest.raises(ValueError, match="classifier_bias"):
        neural_collapse(features, [0, 1, 2, 0, 1, 2], weight, classifier_bias=np.ones(2))


def test_simplex_etf_has_unit_rows_and_equal_negative_cosines():
    from learnmech.observe import simplex_etf

    etf = simplex_etf(5)
    assert np.allclose(np.linalg.norm(etf, axis=1), 1.0)
    cosines = (etf @ etf.T)[~np.eye(5, dtype=bool)]
    assert np.allclose(cosines, -1.0 / 4) and np.allclose(etf.sum(axis=0), 0.0)
    with pytest.raises(ValueError, match="num_classes"):
        simplex_etf(1)


def test_etf_sampling_null_is_zero_without_spread_and_calibrated_with_it():
    from learnmech.observe import etf_sampling_null

    num_classes, dim, per_class = 4, 12, 40
    means = _simplex_etf(num_classes, dim, 3.0, seed=6)
    labels = np.arange(num_classes * per_class) % num_classes
    exact = etf_sampling_null(means[labels], labels, num_draws=20)
    assert all(np.allclose(v, 0.0, atol=1e-12) for v in exact.values())
    # features = exact ETF + noise: their own statistics are one draw of the null, so they sit inside it
    inside = 0
    for seed in range(20):
        features = means[labels] + 0.3 * np.random.default_rng(seed).standard_normal((labels.size, dim))
        stats = neural_collapse(features, labels, means)
        null = etf_sampling_null(features, labels, num_draws=200, seed=seed)
        inside += stats.nc2_maxangle <= np.quantile(null["nc2_maxangle"], 0.99)
        assert null["nc3"].shape == (200,) and np.all(null["nc2_equinorm"] > 0)
    assert inside >= 17
    with pytest.raises(ValueError, match="labels"):
        etf_sampling_null(means[labels], labels[:-1])
