"""Fourier structure of a learned embedding of Z_p: per-frequency power, top-k concentration and its random null.

Nets that grok modular addition represent a token ``a in Z_p`` by periodic functions of ``a``: Nanda, Chan,
Lieberum, Smith & Steinhardt (2023, "Progress measures for grokking via mechanistic interpretability", Sec. 4)
find a one-layer transformer's embedding sparse in the Fourier basis of Z_p (a handful of key frequencies), and
Gromov (2023, "Grokking modular arithmetic", eq. 6-7) gives an analytic solution of a two-layer MLP on
concatenated one-hot inputs in which hidden neuron ``n`` has input weights ``cos(2 pi k_n a / p + phi_n)``: one
frequency ``k_n`` per neuron (the same for both operands).

- :func:`fourier_power`: power of each column of a ``(p, d)`` embedding at each frequency ``k = 0..floor(p/2)``
  (``k`` and ``p - k`` merged, as a real embedding has conjugate-symmetric DFT); the powers sum to the squared
  Frobenius norm (Parseval).
- :func:`top_k_fraction`: fraction of the non-constant power in the ``k`` strongest frequencies, of the whole
  embedding or of each column separately (then power-weighted over columns).
- :func:`fourier_null`: the distribution of that fraction for random embeddings (i.i.d. Gaussian entries), by
  Monte Carlo: its mean and an upper quantile, the "random value" a trained embedding is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._aliases import renamed
from .._checks import as_array, positive_float, positive_int
from ..seeding import rng as make_rng

__all__ = ["FourierNull", "fourier_power", "top_k_fraction", "fourier_null"]


def fourier_power(embedding: Any, *, per_column: bool = False) -> np.ndarray:
    """Power of a ``(p, d)`` embedding of Z_p at each frequency of the discrete Fourier transform over tokens.

    With ``F_k = sum_a E[a, :] exp(-2 pi i k a / p)`` (the DFT along the token axis), the power at frequency ``k`` is
    ``|F_k|^2 / p``, and ``k`` and ``p - k`` (complex conjugates for a real embedding: one cosine/sine pair) are
    merged, so frequencies run over ``k = 0..floor(p/2)`` and, by Parseval, the powers sum to ``||E||_F^2``. This
    is the basis in which Nanda et al. (2023, Sec. 4.1) and Gromov (2023, eq. 6) read off the key frequencies.

    Parameters
    ----------
    embedding : array or tensor, shape (p, d)
        Row ``a`` is the vector that represents token ``a`` (e.g. the first-layer weights of a net on one-hot
        inputs, transposed); ``p >= 2``. A 1-D array is one column (``d = 1``).
    per_column : bool
        Keep the power of each column (each hidden neuron) separately instead of summing over columns.

    Returns
    -------
    numpy.ndarray
        ``(p // 2 + 1,)`` power per frequency (``k = 0`` is the constant component), or ``(p // 2 + 1, d)`` with
        ``per_column``; float64, in squared embedding units.
    """
    e = as_array(embedding, "embedding", ndim=(1, 2))
    if e.ndim == 1:
        e = e[:, None]
    p = e.shape[0]
    if p < 2:
        raise ValueError(f"embedding must have at least 2 rows (tokens of Z_p), got shape {e.shape}")
    spectrum = np.abs(np.fft.fft(e, axis=0)) ** 2 / p  # (p, d); Parseval: sum over k equals sum over a of E^2
    half = p // 2
    power = spectrum[: half + 1].copy()
    # merge k with p - k (its conjugate) for 0 < k < p/2; k = 0 and (even p) k = p/2 have no partner
    partners = np.arange(1, (p - 1) // 2 + 1)
    power[partners] += spectrum[p - partners]
    return power if per_column else power.sum(axis=1)


def top_k_fraction(power: Any, k: int = 1, *, exclude_constant: bool = True) -> float:
    """Fraction of the power in the ``k`` strongest frequencies.

    Parameters
    ----------
    power : array, shape (n_freq,) or (n_freq, d)
        Output of :func:`fourier_power` (row 0 is the constant component). For a 2-D array the ``k`` strongest
        frequencies are chosen per column (per neuron, as in Gromov 2023's one-frequency-per-neuron solution) and the
        result is ``sum_columns top-k power / sum_columns power``, i.e. the per-column fractions weighted by each
        column's power.
    k : int
        Number of frequencies kept, ``1 <= k <=`` the number of frequencies considered.
    exclude_constant : bool
        Drop frequency 0 first (Nanda et al. 2023 measure the non-constant directions; a constant offset carries no
        information about ``a``).

    Returns
    -------
    float
        In [0, 1]; 1 when all (non-constant) power sits in ``k`` frequencies; NaN if the power is all zero.
    """
    pw = as_array(power, "power", ndim=(1, 2))
    if np.any(pw < 0):
        raise ValueError("power must be non-negative (an output of fourier_power)")
    if pw.ndim == 1:
        pw = pw[:, None]
    if exclude_constant:
        pw = pw[1:]
    n_freq = pw.shape[0]
    k = positive_int(k, "k")
    if n_freq == 0 or k > n_freq:
        raise ValueError(f"k must be between 1 and the {n_freq} frequencies considered, got {k}")
    total = float(pw.sum())
    if total == 0:
        return float("nan")
    top = np.sort(pw, axis=0)[::-1][:k]
    return float(top.sum() / total)


@dataclass(frozen=True)
class FourierNull:
    """Distribution of :func:`top_k_fraction` for random embeddings.

    mean: Monte Carlo mean; upper: its ``quantile`` (e.g. 0.99); samples: ``(n_samples,)`` the draws; chance: the
    equal-power value ``k / n_freq`` (``~ 2k/(p-1)``), which the mean exceeds because the top-k of noisy powers are
    selected after the fact.
    """

    mean: float
    upper: float
    quantile: float
    chance: float
    samples: np.ndarray


@renamed(d="width")
def fourier_null(
    p: int,
    width: int,
    k: int = 1,
    *,
    per_column: bool = False,
    tokens: int = 1,
    n_samples: int = 1000,
    quantile: float = 0.99,
    seed: int = 0,
) -> FourierNull:
    """The random value of :func:`top_k_fraction`: Monte Carlo over embeddings with i.i.d. Gaussian entries.

    For i.i.d. entries the projections of each column onto the orthonormal real Fourier basis of Z_p are again
    i.i.d., so each non-constant frequency carries ``sigma^2 chi^2`` power with 2 degrees of freedom per column
    (1 at ``k = p/2``): all frequencies are equal on average (fraction ``k / n_freq`` ~ ``2k/(p-1)``), and the
    top-k fraction exceeds that by the spread of the order statistics, which this function samples. The scale
    ``sigma`` cancels, so the null holds for any i.i.d. initialisation with the same shape (exactly for Gaussian
    entries, by the central limit theorem for others such as PyTorch's uniform init).

    Parameters
    ----------
    p, width : int
        Embedding shape ``(p, width)``, ``p >= 3`` (at least one non-constant frequency besides the constant one).
        ``d`` is a deprecated keyword alias of ``width``.
    k : int
        Frequencies kept, as in :func:`top_k_fraction`.
    per_column : bool
        Null of the per-column statistic (``top_k_fraction(fourier_power(E, per_column=True), k)``).
    tokens : int
        Number of independent ``(p, d)`` embeddings whose powers are added before ranking (e.g. 2 for the two
        operands of ``a + b``, whose per-neuron powers are summed).
    n_samples : int
        Monte Carlo draws. quantile: the upper quantile reported, in (0, 1). seed: drives the draws.

    Returns
    -------
    FourierNull
    """
    p = positive_int(p, "p", minimum=3)
    d = positive_int(width, "width")
    k = positive_int(k, "k")
    tokens = positive_int(tokens, "tokens")
    n_samples = positive_int(n_samples, "n_samples", minimum=2)
    quantile = positive_float(quantile, "quantile")
    if quantile >= 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    n_freq = p // 2
    if k > n_freq:
        raise ValueError(f"k must be <= the {n_freq} non-constant frequencies of Z_{p}, got {k}")
    gen = make_rng(seed)
    samples = np.empty(n_samples)
    for i in range(n_samples):
        draws = gen.standard_normal((tokens, p, d))
        power = sum(fourier_power(draws[t], per_column=per_column) for t in range(tokens))
        samples[i] = top_k_fraction(power, k)
    return FourierNull(mean=float(samples.mean()), upper=float(np.quantile(samples, quantile)), quantile=quantile,
                       chance=k / n_freq, samples=samples)
