"""Heavy-tailed self-regularization: the power-law exponent of a layer's empirical spectral density.

Martin & Mahoney (2021, JMLR 22(165), sec. 3 and 5) fit the tail of the ESD of X = W^T W (the squared singular
values of a layer's weight matrix) by a power law p(lambda) ~ lambda^-alpha for lambda >= lambda_min; well-trained
layers have alpha in about 2..6, random (Marchenko-Pastur) matrices a much larger apparent alpha. The fit is the
continuous power-law maximum-likelihood estimate with xmin chosen to minimise the Kolmogorov-Smirnov distance
(Clauset, Shalizi & Newman 2009, eqs. 3.1 and 3.9): the method WeightWatcher uses, vectorised here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_array, positive_int

__all__ = ["PowerLawFit", "spectral_density", "power_law_fit", "esd_alpha", "layer_alphas"]

# Eigenvalues at or below this are numerically zero (rank deficiency) and are dropped before the fit, as
# WeightWatcher does (its EVALS_THRESH).
ZERO_EIGENVALUE = 1e-5
# Candidate-by-tail block size for the vectorised KS scan: bounds memory at about 32 MB of float64.
_BLOCK_ELEMENTS = 4_000_000


@dataclass
class PowerLawFit:
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


def power_law_fit(samples: Any, *, xmin: float | None = None) -> PowerLawFit:
    """Fit a continuous power law to positive ``samples`` (n,) by MLE, with ``xmin`` either given or chosen
    among the samples (all but the largest) to minimise the KS distance (Clauset et al. 2009, sec. 3.3)."""
    data = np.sort(as_array(samples, "samples", ndim=1))
    if np.any(data <= 0):
        raise ValueError("samples must all be > 0 for a power-law fit")
    if len(data) < 2:
        raise ValueError(f"samples must hold at least 2 values for a power-law fit, got {len(data)}")
    n = len(data)
    logs = np.log(data)
    # Sum of log x over the tail starting at each index: tail_log_sum[i] = sum_{j >= i} log x_j.
    tail_log_sum = np.cumsum(logs[::-1])[::-1]
    if xmin is not None:
        start = int(np.searchsorted(data, float(xmin), side="left"))
        if start >= n - 1:
            raise ValueError(f"xmin must leave at least 2 samples in the tail, got xmin={xmin}")
        candidates = np.array([start])
    else:
        candidates = np.arange(n - 1)
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
    return PowerLawFit(
        alpha=alpha,
        xmin=float(data[candidates[best]]),
        ks_distance=float(distances[best]),
        n_tail=size,
        sigma=float((alpha - 1) / np.sqrt(size)),
    )


def esd_alpha(weight: Any) -> float:
    """Power-law exponent alpha of the ESD of ``weight`` (Martin & Mahoney 2021): the CSN fit of the nonzero
    eigenvalues of W^T W (see :func:`spectral_density`). Dimensionless; 2..6 is "heavy-tailed, well trained"."""
    eigenvalues = spectral_density(weight)
    eigenvalues = eigenvalues[eigenvalues > ZERO_EIGENVALUE]
    if len(eigenvalues) < 2:
        raise ValueError("weight has fewer than 2 nonzero singular values; its ESD has no tail to fit")
    return power_law_fit(eigenvalues).alpha


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
            alphas[name] = power_law_fit(eigenvalues).alpha
    return alphas
