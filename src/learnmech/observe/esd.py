"""Heavy-tailed self-regularization: the power-law exponent of a layer's empirical spectral density.

Martin & Mahoney (2021, JMLR 22(165), sec. 3 and 5) fit the tail of the ESD of X = W^T W (the squared singular
values of a layer's weight matrix) by a power law p(lambda) ~ lambda^-alpha for lambda >= lambda_min; well-trained
layers have alpha in about 2..6, random (Marchenko-Pastur) matrices a much larger apparent alpha. The fit is the
continuous power-law maximum-likelihood estimate with xmin chosen to minimise the Kolmogorov-Smirnov distance
(Clauset, Shalizi & Newman 2009, eqs. 3.1 and 3.9): the method WeightWatcher uses, vectorised here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_array, positive_int

__all__ = [
    "TailFit", "spectral_density", "fit_tail", "esd_alpha", "layer_alphas", "bulk_fit", "spiked_null",
    "power_law_bulk",
]

# Eigenvalues at or below this are numerically zero (rank deficiency) and are dropped before the fit, as
# WeightWatcher does (its EVALS_THRESH).
ZERO_EIGENVALUE = 1e-5
# Candidate-by-tail block size for the vectorised KS scan: bounds memory at about 32 MB of float64.
_BLOCK_ELEMENTS = 4_000_000


@dataclass
class TailFit:
    """Continuous power-law fit p(x) = (alpha - 1) / xmin * (x / xmin)^-alpha for x >= xmin.

    alpha: exponent (dimensionless); xmin: lower cutoff (units of the data); ks_distance: the KS distance of the
    tail to the fit; n_tail: number of samples >= xmin; sigma: the MLE's standard error (alpha - 1) / sqrt(n_tail)
    (Clauset et al. 2009, eq. 3.2).
    """

    alpha: float
    xmin: float
    ks_distance: float
    n_tail: int
    sigma: float


def spectral_density(weight: Any) -> np.ndarray:
    """Eigenvalues of W^T W, ascending (float64), for a weight of shape (out, in); a convolution kernel
    (out, in, k1, k2, ...) contributes the singular values squared of each of its (out, in) slices, as in
    Martin & Mahoney (2021, sec. 4.1)."""
    matrix = torch.as_tensor(as_array(weight, "weight", ndim=(2, 3, 4, 5)))
    slices = matrix.reshape(matrix.shape[0], matrix.shape[1], -1).permute(2, 0, 1)
    # torch's batched SVD (float64, so small singular values keep their relative accuracy) honours torch's
    # thread setting, unlike numpy's, which oversubscribes a shared CPU badly.
    singular = torch.linalg.svdvals(slices).reshape(-1).numpy()
    return np.sort(singular**2)


# The ESD tail fit was called PowerLawFit / power_law_fit, names that clash with laws.PowerLawFit / fit_power_law
# (a curve fit y = c x^-k, an unrelated thing): the old names stay as deprecated aliases.
PowerLawFit = TailFit


def fit_tail(samples: Any, *, xmin: float | None = None, min_tail: int = 2) -> TailFit:
    """Fit a continuous power law to positive ``samples`` (n,) by MLE, with ``xmin`` either given or chosen
    among the samples (all but the largest) to minimise the KS distance (Clauset et al. 2009, sec. 3.3).

    min_tail: only candidates ``xmin`` that leave at least this many samples in the tail are scanned (default 2:
    all of them, CSN's rule). A larger floor bounds the MLE's standard error ``(alpha - 1) / sqrt(n_tail)``: on
    a spectrum with a hard edge (Marchenko-Pastur) the unconstrained KS scan often settles on a handful of
    points, whose alpha is mostly noise."""
    data = np.sort(as_array(samples, "samples", ndim=1))
    if np.any(data <= 0):
        raise ValueError("samples must all be > 0 for a power-law fit")
    if len(data) < 2:
        raise ValueError(f"samples must hold at least 2 values for a power-law fit, got {len(data)}")
    n = len(data)
    min_tail = positive_int(min_tail, "min_tail", minimum=2)
    if min_tail > n:
        raise ValueError(f"min_tail must be <= the number of samples ({n}), got {min_tail}")
    logs = np.log(data)
    # Sum of log x over the tail starting at each index: tail_log_sum[i] = sum_{j >= i} log x_j.
    tail_log_sum = np.cumsum(logs[::-1])[::-1]
    if xmin is not None:
        start = int(np.searchsorted(data, float(xmin), side="left"))
        if start >= n - 1:
            raise ValueError(f"xmin must leave at least 2 samples in the tail, got xmin={xmin}")
        candidates = np.array([start])
    else:
        candidates = np.arange(n - min_tail + 1)
    tail_sizes = (n - candidates).astype(float)
    # CSN eq. 3.1: alpha = 1 + n_tail / sum_tail log(x / xmin).
    log_excess = tail_log_sum[candidates] - tail_sizes * logs[candidates]
    with np.errstate(divide="ignore"):
        alphas = 1.0 + tail_sizes / log_excess
    distances = np.full(len(candidates), np.inf)
    offsets = np.arange(n)
    block = max(1, _BLOCK_ELEMENTS // n)
    for lo in range(0, len(candidates), block):
        idx = np.arange(lo, min(lo + block, len(candidates)))
        first = candidates[idx]
        alpha = alphas[idx][:, None]
        size = tail_sizes[idx][:, None]
        rank = offsets[None, :] - first[:, None]  # position of sample j inside candidate i's tail
        in_tail = rank >= 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            model_cdf = 1.0 - (data[None, :] / data[first][:, None]) ** (1.0 - alpha)
        # Empirical CDF taken as the fraction of the tail strictly below each sample, rank / n_tail: the
        # convention of the reference CSN implementation (Alstott, Bullmore & Plenz 2014, ``powerlaw``) and of
        # WeightWatcher, so the chosen xmin, and alpha, are the same as theirs.
        gap = np.where(in_tail, np.abs(model_cdf - rank / size), 0.0)
        ok = np.isfinite(alphas[idx]) & (alphas[idx] > 1)
        distances[idx] = np.where(ok, gap.max(axis=1), np.inf)
    best = int(np.argmin(distances))
    alpha = float(alphas[best])
    size = int(tail_sizes[best])
    return TailFit(
        alpha=alpha,
        xmin=float(data[candidates[best]]),
        ks_distance=float(distances[best]),
        n_tail=size,
        sigma=float((alpha - 1) / np.sqrt(size)),
    )



def power_law_fit(samples: Any, *, xmin: float | None = None, min_tail: int = 2) -> TailFit:
    """Deprecated alias of :func:`fit_tail` (the name clashed with :func:`learnmech.laws.fit_power_law`)."""
    warnings.warn("observe.power_law_fit is deprecated, use observe.fit_tail", DeprecationWarning, stacklevel=2)
    return fit_tail(samples, xmin=xmin, min_tail=min_tail)

def esd_alpha(weight: Any) -> float:
    """Power-law exponent alpha of the ESD of ``weight`` (Martin & Mahoney 2021): the CSN fit of the nonzero
    eigenvalues of W^T W (see :func:`spectral_density`). Dimensionless; 2..6 is "heavy-tailed, well trained"."""
    eigenvalues = spectral_density(weight)
    eigenvalues = eigenvalues[eigenvalues > ZERO_EIGENVALUE]
    if len(eigenvalues) < 2:
        raise ValueError("weight has fewer than 2 nonzero singular values; its ESD has no tail to fit")
    return fit_tail(eigenvalues).alpha


def layer_alphas(model: torch.nn.Module, *, min_eigenvalues: int = 20) -> dict[str, float]:
    """``{parameter name: esd_alpha}`` for every weight of ``model`` with 2 or more dimensions (linear and
    convolution layers) that has at least ``min_eigenvalues`` nonzero eigenvalues: a power-law tail fitted to
    fewer points is mostly noise (CSN's MLE has standard error (alpha - 1) / sqrt(n_tail)); WeightWatcher too
    stops using this estimator below 20 eigenvalues."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    min_eigenvalues = positive_int(min_eigenvalues, "min_eigenvalues", minimum=2)
    alphas = {}
    for name, param in model.named_parameters():
        if param.ndim < 2 or not name.endswith("weight"):
            continue
        eigenvalues = spectral_density(param)
        eigenvalues = eigenvalues[eigenvalues > ZERO_EIGENVALUE]
        if len(eigenvalues) >= min_eigenvalues:
            alphas[name] = fit_tail(eigenvalues).alpha
    return alphas


def bulk_fit(weight: Any, spikes: int, *, min_tail_fraction: float = 0.1) -> TailFit:
    """CSN power-law fit of the *bulk* of the ESD of ``weight``: the nonzero eigenvalues of W^T W without the
    ``spikes`` largest ones.

    A trained classifier layer's ESD is often a random-like bulk plus a few outliers, the learned low-rank signal
    (Martin & Mahoney 2021, sec. 5.2, the "Bulk+Spikes" phase); a power law fitted to the whole ESD then mostly
    fits the outliers. Removing ``spikes`` of them (e.g. the number of classes, the rank of the class-mean signal)
    lets the bulk be judged on its own. min_tail_fraction: the tail must hold at least this fraction of the bulk
    (and >= 2 points), see :func:`fit_tail`'s ``min_tail``. Returns the bulk's :class:`TailFit`.
    """
    spikes = int(spikes)
    if spikes < 0:
        raise ValueError(f"spikes must be >= 0, got {spikes}")
    if not 0 <= min_tail_fraction <= 1:
        raise ValueError(f"min_tail_fraction must be in [0, 1], got {min_tail_fraction}")
    eigenvalues = spectral_density(weight)
    eigenvalues = eigenvalues[eigenvalues > ZERO_EIGENVALUE]
    bulk = eigenvalues[: len(eigenvalues) - spikes]
    if len(bulk) < 2:
        raise ValueError(f"spikes={spikes} leaves fewer than 2 nonzero eigenvalues in the bulk")
    return fit_tail(bulk, min_tail=max(2, int(np.ceil(min_tail_fraction * len(bulk)))))


def spiked_null(shape: tuple[int, int], spike_singular_values: Any, bulk_variance: float, seed: int = 0) -> np.ndarray:
    """A random matrix with a random rank-k spike: ``B + U diag(s) V^T``.

    B: i.i.d. N(0, bulk_variance) entries of ``shape`` (out, in) (Marchenko-Pastur bulk); U (out, k), V (in, k):
    Haar-random orthonormal columns; s: ``spike_singular_values`` (k,). It is the null model for "a random bulk
    plus a learned low-rank signal" (the Bulk+Spikes phase of Martin & Mahoney 2021, sec. 5.2; the spiked model
    of Benaych-Georges & Nadakuditi 2012): any ESD statistic of a trained layer that this null reproduces is not
    evidence of a heavy-tailed bulk. Returns ``(out, in)`` float64.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (out, in) with positive sizes, got {shape}")
    out_dim, in_dim = int(shape[0]), int(shape[1])
    s = np.asarray(spike_singular_values, dtype=float).reshape(-1)
    if not np.all(np.isfinite(s)) or np.any(s < 0) or len(s) > min(out_dim, in_dim):
        raise ValueError(f"spike_singular_values must be >= 0 and at most min(shape) = {min(shape)} of them")
    if not bulk_variance > 0:
        raise ValueError(f"bulk_variance must be > 0, got {bulk_variance}")
    generator = np.random.default_rng(seed)
    bulk = generator.standard_normal((out_dim, in_dim)) * np.sqrt(bulk_variance)
    k = len(s)
    if k == 0:
        return bulk
    u, _ = np.linalg.qr(generator.standard_normal((out_dim, k)))
    v, _ = np.linalg.qr(generator.standard_normal((in_dim, k)))
    return bulk + (u * s) @ v.T


def power_law_bulk(shape: tuple[int, int], alpha: float, mean: float = 1.0, seed: int = 0) -> np.ndarray:
    """A random matrix whose ESD is an exact power law: ``U diag(sqrt(lambda)) V^T`` with the eigenvalues
    ``lambda`` of W^T W drawn i.i.d. from the Pareto density ``p(x) = (alpha - 1) xmin^(alpha-1) x^-alpha``
    (x >= xmin) scaled to the given ``mean``, and Haar-random U, V.

    A positive control for ESD statistics: its true tail exponent is ``alpha`` (> 2 for a finite mean), the
    heavy-tailed ESD Martin & Mahoney (2021, sec. 5.2) describe. shape: (out, in); returns float64 ``(out, in)``.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (out, in) with positive sizes, got {shape}")
    if not alpha > 2:
        raise ValueError(f"alpha must be > 2 (finite mean), got {alpha}")
    if not mean > 0:
        raise ValueError(f"mean must be > 0, got {mean}")
    out_dim, in_dim = int(shape[0]), int(shape[1])
    k = min(out_dim, in_dim)
    generator = np.random.default_rng(seed)
    # Inverse-CDF sampling: x = xmin * U^(-1/(alpha-1)); the Pareto mean is xmin (alpha-1)/(alpha-2).
    xmin = mean * (alpha - 2) / (alpha - 1)
    lam = xmin * generator.uniform(size=k) ** (-1.0 / (alpha - 1))
    u, _ = np.linalg.qr(generator.standard_normal((out_dim, k)))
    v, _ = np.linalg.qr(generator.standard_normal((in_dim, k)))
    return (u * np.sqrt(lam)) @ v.T
