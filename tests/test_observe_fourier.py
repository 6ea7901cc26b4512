"""observe.fourier: per-frequency power vs an explicit DFT, top-k fractions on constructed embeddings, the null."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnmech.observe import fourier_null, fourier_power, top_k_fraction


def _explicit_power(embedding: np.ndarray) -> np.ndarray:
    """Per-column power at k = 0..p//2 from the DFT written out as sums of cosines and sines."""
    p, d = embedding.shape
    a = np.arange(p)
    full = np.zeros((p, d))
    for k in range(p):
        re = (np.cos(2 * np.pi * k * a / p)[:, None] * embedding).sum(axis=0)
        im = (np.sin(2 * np.pi * k * a / p)[:, None] * embedding).sum(axis=0)
        full[k] = (re**2 + im**2) / p
    out = full[: p // 2 + 1].copy()
    for k in range(1, p // 2 + 1):
        if p - k != k:
            out[k] += full[p - k]
    return out


@pytest.mark.parametrize("p", [7, 8, 13])
def test_matches_explicit_dft_and_parseval(p):
    e = np.random.default_rng(p).normal(size=(p, 5))
    per = fourier_power(e, per_column=True)
    np.testing.assert_allclose(per, _explicit_power(e), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fourier_power(e), per.sum(axis=1), rtol=1e-12)
    assert per.sum() == pytest.approx((e**2).sum(), rel=1e-10)  # Parseval


def test_single_frequency_neurons():
    """Gromov (2023)'s solution: neuron n is cos(2 pi k_n a / p + phi_n): all its power at k_n."""
    p, freqs, phases = 11, [1, 3, 3, 5], [0.0, 0.7, 2.0, -1.1]
    a = np.arange(p)[:, None]
    e = np.cos(2 * np.pi * np.array(freqs) * a / p + np.array(phases)) + 0.5  # plus a constant offset
    per = fourier_power(torch.tensor(e), per_column=True)
    for n, k in enumerate(freqs):
        assert per[k, n] == pytest.approx(p / 2, rel=1e-10)  # sum_a cos^2 = p/2
        assert np.delete(per[1:, n], k - 1).max() < 1e-10
    assert top_k_fraction(per, 1) == pytest.approx(1.0)
    # summed over neurons, 3 distinct frequencies carry everything; 2 carry 3/4 (freq 3 has two neurons)
    total = fourier_power(e)
    assert top_k_fraction(total, 3) == pytest.approx(1.0)
    assert top_k_fraction(total, 2) == pytest.approx(0.75)
    # with the constant included, the offset's power p * 0.25 per neuron joins the total (but is not the top)
    with_dc = top_k_fraction(per, 1, exclude_constant=False)
    assert with_dc == pytest.approx((p / 2) / (p / 2 + p * 0.25))


def test_null_is_chance_for_all_frequencies_and_above_chance_for_top_k():
    null_all = fourier_null(13, 4, k=6, n_samples=50)
    assert null_all.mean == pytest.approx(1.0)
    null = fourier_null(31, 64, k=5, n_samples=300, seed=1)
    assert null.chance == pytest.approx(5 / 15)
    assert null.chance < null.mean < null.upper < 0.5  # order statistics lift the mean a little above 2k/(p-1)
    # per-column top-1 of one neuron: (1/n) sum_{j} 1/j for n exponential powers (Renyi): the exact mean
    single = fourier_null(31, 1, k=1, per_column=True, n_samples=4000, seed=2)
    exact = np.sum(1 / np.arange(1, 16)) / 15
    assert single.mean == pytest.approx(exact, abs=0.01)
    two = fourier_null(31, 64, k=1, per_column=True, tokens=2, n_samples=100)
    one = fourier_null(31, 64, k=1, per_column=True, tokens=1, n_samples=100)
    assert two.mean < one.mean  # adding two operands' powers (4 degrees of freedom) spreads the maximum less


def test_bad_input():
    with pytest.raises(ValueError, match="embedding"):
        fourier_power(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="embedding"):
        fourier_power(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="k must be"):
        top_k_fraction(np.ones(4), k=4)
    with pytest.raises(ValueError, match="power"):
        top_k_fraction(-np.ones(4))
    with pytest.raises(ValueError, match="quantile"):
        fourier_null(7, 2, quantile=1.0)
    with pytest.raises(ValueError, match="k must be"):
        fourier_null(7, 2, k=4)
    assert np.isnan(top_k_fraction(np.zeros(4)))
