"""Finite-width fluctuations of random-feature representations: how similar two independently seeded layers are.

A layer of ``w`` i.i.d. random neurons has the Gram ``K_w = (1/w) sum_i phi_i phi_i^T`` on ``n`` inputs, with
``phi_i`` the ``(n,)`` feature vector of neuron ``i``. As ``w -> inf`` it concentrates on the deterministic kernel
``K = E[phi phi^T]`` (the NNGP kernel of the layer; Neal 1996; Lee et al. 2018), so the CKA between two independently
seeded layers tends to 1. Expanding the CKA (a cosine between Grams) to second order in the fluctuations
``E = K_w - K = O(w^-1/2)`` gives ``E[1 - CKA] = c / w + O(w^-2)`` with

    c = (E h(M, M) - E h(M, K)^2 / h(K, K)) / h(K, K),     M = phi phi^T (one neuron's rank-one Gram),

where ``h`` is the HSIC bilinear form of the estimator: ``h(A, B) = <H A H, H B H>_F`` for linear CKA (Kornblith et
al. 2019) or the unbiased HSIC of Song et al. (2012) for the debiased CKA (Nguyen, Raghu & Kornblith 2021).
Derivation: with unit vectors a = (K + E_1)/|K + E_1|_h and b likewise, 1 - CKA = |a - b|_h^2 / 2 and, to first
order, a - b = P_perp(E_1 - E_2) / |K|_h (P_perp removes the component along K); the two layers are independent,
so E|P_perp(E_1 - E_2)|^2 = 2 E|P_perp E_1|^2 = (2/w) (E h(M, M) - E h(M, K)^2 / h(K, K)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import as_array

__all__ = ["cka_width_coefficient"]


def _unbiased_rank_one(phi: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """Unbiased HSIC (Song et al. 2012, eq. 5) between each rank-one Gram phi_m phi_m^T (columns of phi, (n, m))
    and ``other`` (n, n); ``other=None``: each rank-one Gram with itself. Returns (m,)."""
    n = phi.shape[0]
    sums, squares = phi.sum(axis=0), (phi**2).sum(axis=0)
    row = phi * sums - phi**2  # A~ 1 for A~ = phi phi^T - diag(phi^2), one column per neuron
    ones_a = sums**2 - squares  # 1^T A~ 1
    if other is None:
        trace = squares**2 - (phi**4).sum(axis=0)  # tr(A~ A~) = sum_{a != b} phi_a^2 phi_b^2
        ones_b, cross = ones_a, (row**2).sum(axis=0)
    else:
        lz = other - np.diag(np.diag(other))
        trace = np.einsum("am,am->m", phi, lz @ phi)  # phi^T L~ phi (L~ has a zero diagonal)
        ones_b, cross = lz.sum(), row.T @ lz.sum(axis=0)
    value = trace + ones_a * ones_b / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross
    return value / (n * (n - 3))


def cka_width_coefficient(features: Any, *, debiased: bool = False, kernel: Any = None) -> float:
    """Coefficient ``c`` of ``E[1 - CKA] = c / width + O(width^-2)`` for two independently seeded random-feature
    layers of ``width`` i.i.d. neurons (derivation in the module docstring).

    Parameters
    ----------
    features : array, shape (n, m)
        ``m`` independent draws of one neuron's feature vector on the same ``n`` inputs (e.g. the hidden layer of a
        very wide untrained net with an independent seed: its columns are i.i.d. neurons). Monte Carlo error
        O(m^-1/2); the plug-in kernel adds an O(1/m) bias.
    debiased : bool
        False: the linear CKA of :func:`learnmech.observe.cka`; True: its debiased version (unbiased HSIC).
    kernel : array, shape (n, n), optional
        The infinite-width kernel ``E[phi phi^T]`` in the features' units (e.g. an analytic NNGP kernel); default
        the plug-in ``features @ features.T / m``.

    Returns
    -------
    float
        ``c >= 0`` (dimensionless; ``1 - CKA`` at width ``w`` is about ``c / w``).
    """
    phi = as_array(features, "features", ndim=2)
    n, m = phi.shape
    if n < 4 or m < 2:
        raise ValueError(f"features must be (n, m) with n >= 4 inputs and m >= 2 neurons, got shape {phi.shape}")
    k = phi @ phi.T / m if kernel is None else as_array(kernel, "kernel", ndim=2)
    if k.shape != (n, n):
        raise ValueError(f"kernel must be ({n}, {n}) like the features' inputs, got {k.shape}")
    if debiased:
        kz = k - np.diag(np.diag(k))
        ones = kz.sum(axis=0)
        hkk = float((np.sum(kz * kz) + ones.sum() ** 2 / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones @ ones)
                    / (n * (n - 3)))
        hmm = _unbiased_rank_one(phi, None)
        hmk = _unbiased_rank_one(phi, k)
    else:
        centred = phi - phi.mean(axis=0)
        kc = k - k.mean(axis=0) - k.mean(axis=1, keepdims=True) + k.mean()
        hkk = float(np.sum(kc * kc))
        hmm = (centred**2).sum(axis=0) ** 2  # |H phi|^4 = <H M H, H M H>
        hmk = np.einsum("am,am->m", centred, kc @ centred)
    if not hkk > 0:
        raise ValueError("the kernel's HSIC with itself is not positive (constant features?)")
    return float(max((hmm.mean() - (hmk**2).mean() / hkk) / hkk, 0.0))
