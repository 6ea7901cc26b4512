"""Kernels and representations: NTK drift from initialisation, kernel alignment, and CKA.

ntk_drift measures how far training moves the empirical NTK: ~0 in the lazy (kernel) regime of wide networks,
O(1) in the rich (feature-learning) regime (Chizat, Oyallon & Bach 2019; Fort et al. 2020, fig. 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import as_array

__all__ = ["centered_gram", "kernel_alignment", "target_alignment", "cka", "unbiased_hsic", "ntk_drift"]


def centered_gram(kernel: Any, name: str = "kernel") -> np.ndarray:
    """H K H with H = I - 11^T/n, for a square (n, n) kernel matrix (Cortes, Mohri & Rostamizadeh 2012, eq. 1)."""
    k = as_array(kernel, name, ndim=2)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) kernel matrix, got shape {k.shape}")
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def kernel_alignment(kernel: Any, other: Any, *, centered: bool = True) -> float:
    """Alignment <K1, K2>_F / (||K1||_F ||K2||_F) of two (n, n) kernels on the same inputs, after centring by
    default (centred kernel alignment, Cortes et al. 2012, def. 1; uncentred: Cristianini et al. 2002).
    In [-1, 1]; 1 means proportional kernels."""
    if centered:
        k1, k2 = centered_gram(kernel, "kernel"), centered_gram(other, "other")
    else:
        k1, k2 = as_array(kernel, "kernel", ndim=2), as_array(other, "other", ndim=2)
    if k1.shape != k2.shape:
        raise ValueError(f"kernel and other must have the same shape, got {k1.shape} and {k2.shape}")
    norm = np.linalg.norm(k1) * np.linalg.norm(k2)
    if norm == 0:
        raise ValueError("kernel alignment is undefined for a (centred) kernel that is identically zero")
    return float(np.sum(k1 * k2) / norm)


def target_alignment(kernel: Any, targets: Any, *, centered: bool = True) -> float:
    """Alignment of an (n, n) kernel with the target kernel Y Y^T, for targets (n,) or (n, k) (e.g. one-hot):
    how much of the kernel's energy lies along the labels (Cristianini et al. 2002; Baratin et al. 2021)."""
    y = as_array(targets, "targets", ndim=(1, 2))
    y = y.reshape(len(y), -1)
    return kernel_alignment(kernel, y @ y.T, centered=centered)


def unbiased_hsic(k: Any, l: Any) -> float:
    """Unbiased estimator of HSIC from two (n, n) kernel matrices on the same n >= 4 inputs (Song, Smola, Gretton,
    Bedo & Borgwardt 2012, eq. 5): with K~, L~ the kernels with zeroed diagonals,
    ``[tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))``.
    It equals the U-statistic average over ordered distinct index quadruples (i, j, q, r) of
    ``k_ij l_ij + k_ij l_qr - 2 k_ij l_iq``; no centring of K, L is needed. Can be slightly negative."""
    a = as_array(k, "k", ndim=2)
    b = as_array(l, "l", ndim=2)
    if a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(f"k and l must be square kernel matrices of the same shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n < 4:
        raise ValueError(f"unbiased HSIC needs n >= 4 inputs, got {n}")
    a = a - np.diag(np.diag(a))
    b = b - np.diag(np.diag(b))
    ones_a, ones_b = a.sum(axis=0), b.sum(axis=0)
    value = np.sum(a * b) + ones_a.sum() * ones_b.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ones_a @ ones_b)
    return float(value / (n * (n - 3)))


def cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear centred kernel alignment between representations x (n, p1) and y (n, p2) of the same n inputs
    (Kornblith, Norouzi, Lee & Hinton 2019, eq. 5): ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F).
    Invariant to orthogonal transforms and isotropic scaling of either; in [0, 1].

    ``debiased=True``: the same ratio with each HSIC replaced by its unbiased estimator on the linear Grams
    X X^T, Y Y^T (:func:`unbiased_hsic`; Nguyen, Raghu & Kornblith 2021, app. C), which removes the O(1/n)
    finite-sample bias of the plain estimator (needs n >= 4; can exceed [0, 1] slightly by sampling noise)."""
    a = as_array(x, "x", ndim=2)
    b = as_array(y, "y", ndim=2)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"x and y must have the same number of rows (inputs), got {a.shape[0]} and {b.shape[0]}")
    if debiased:
        ka, kb = a @ a.T, b @ b.T
        norm2 = unbiased_hsic(ka, ka) * unbiased_hsic(kb, kb)
        if not norm2 > 0:
            raise ValueError("debiased cka is undefined: an unbiased self-HSIC is not positive (constant or "
                             "too few inputs)")
        return float(unbiased_hsic(ka, kb) / np.sqrt(norm2))
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    if a.shape[0] < min(a.shape[1], b.shape[1]):
        # Wide representations (p > n): the (n, n) Gram form is cheaper; ||B^T A||_F^2 = <A A^T, B B^T>_F.
        ga, gb = a @ a.T, b @ b.T
        cross, norm = float(np.sum(ga * gb)), np.linalg.norm(ga) * np.linalg.norm(gb)
    else:
        # The feature-space form avoids building (n, n) Grams; it equals the centred alignment of the linear Grams.
        cross = np.linalg.norm(b.T @ a) ** 2
        norm = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    if norm == 0:
        raise ValueError("cka is undefined when a representation is constant across inputs")
    return float(cross / norm)


def ntk_drift(initial: Any, current: Any, inputs: Any = None) -> float:
    """Relative change ||K_t - K_0||_F / ||K_0||_F of the empirical NTK on the same inputs.

    ``initial``/``current`` are either (n, n) kernel matrices or ``torch.nn.Module``s (then ``inputs`` (n, ...)
    is required and both kernels come from :func:`learnmech.kernels.empirical_ntk`, averaged over output logits).
    Dimensionless; ~width^-1/2 in the lazy regime (Lee et al. 2019, thm 2.1), O(1) when features are learned.
    """
    if isinstance(initial, torch.nn.Module) or isinstance(current, torch.nn.Module):
        if not (isinstance(initial, torch.nn.Module) and isinstance(current, torch.nn.Module)):
            raise ValueError("initial and current must both be modules or both be kernel matrices")
        if inputs is None:
            raise ValueError("inputs (n, ...) are required to compute the NTK of modules")
        from ..kernels import empirical_ntk  # late import: kernels is a sibling strand

        initial, current = empirical_ntk(initial, inputs), empirical_ntk(current, inputs)
    k0 = as_array(initial, "initial", ndim=2)
    kt = as_array(current, "current", ndim=2)
    if k0.shape != kt.shape:
        raise ValueError(f"initial and current kernels must have the same shape, got {k0.shape} and {kt.shape}")
    norm = np.linalg.norm(k0)
    if norm == 0:
        raise ValueError("initial kernel is identically zero; relative drift is undefined")
    return float(np.linalg.norm(kt - k0) / norm)
