"""Learned features of a trained net: the average gradient outer product (AGOP) and matrix comparisons.

The Neural Feature Ansatz (Radhakrishnan, Beaglehole, Pandit & Belkin 2024, Science, eq. 3) states that after
training the Gram matrix of a layer's weights is proportional to a power of the AGOP of the net with respect to that
layer's input, ``W^T W ∝ AGOP^alpha``; for a two-layer linear net from balanced initialisation it holds exactly with
``alpha = 1/2`` (Radhakrishnan et al. 2024; ``alpha = 1/L`` for depth L, Tansley, Massart & Cartis 2025).

- :func:`agop`: ``(1/n) sum_i J(x_i)^T J(x_i)`` with ``J(x) = df(x)/dx`` the ``(k, d)`` input Jacobian.
- :func:`matrix_correlation`: Pearson correlation (or cosine similarity) of two matrices' flattened entries, the
  statistic the paper uses to compare ``W^T W`` with the AGOP.
- :func:`psd_power`: ``M^alpha`` of a symmetric positive semi-definite matrix (for the ``alpha = 1/2`` variant).
- :func:`eigenspace_overlap`: how well the top-k eigenvectors of two symmetric matrices span the same subspace.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import as_array, one_of, positive_float, positive_int

__all__ = ["agop", "matrix_correlation", "psd_power", "eigenspace_overlap"]


def agop(model: torch.nn.Module | Any, x: Any, *, chunk_size: int = 512) -> np.ndarray:
    """Average gradient outer product of ``model`` with respect to its inputs (Radhakrishnan et al. 2024, eq. 2).

    ``AGOP = (1/n) sum_i J_i^T J_i`` with ``J_i = d f(x_i) / d x_i`` the ``(k, d)`` Jacobian of the ``k`` outputs
    with respect to the ``d = prod(x.shape[1:])`` input coordinates (for a scalar output, ``J_i^T J_i`` is the
    outer product of the input gradient with itself; for ``k`` outputs it sums the ``k`` outer products, as the
    paper does for multi-class nets).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps a batch ``(m, *in_shape)`` to ``(m,)`` or ``(m, k)``, each row depending only on its own input (no
        batch statistics: put BatchNorm in eval mode).
    x : array or tensor, shape (n, *in_shape)
        Inputs; the computation runs on ``x``'s device (numpy arrays go to the device of the model's parameters),
        in the dtype of the model's parameters (a plain callable: that of ``x``).
    chunk_size : int
        Inputs per backward pass (memory ``chunk_size * d``).

    Returns
    -------
    numpy.ndarray, shape (d, d)
        Symmetric positive semi-definite, float64; units of (output / input)^2.
    """
    if not callable(model):
        raise ValueError(f"model must be a torch.nn.Module or callable, got {type(model).__name__}")
    chunk_size = positive_int(chunk_size, "chunk_size")
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    if isinstance(x, torch.Tensor):
        inputs = x.detach().to(params[0].dtype) if params and x.is_floating_point() else x.detach()
        if not inputs.is_floating_point():
            inputs = inputs.to(torch.get_default_dtype())
    else:
        device = params[0].device if params else torch.device("cpu")
        dtype = params[0].dtype if params else torch.get_default_dtype()
        inputs = torch.as_tensor(as_array(x, "x"), dtype=dtype, device=device)
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError(f"x must be a batch (n, *in_shape) with n >= 1, got shape {tuple(inputs.shape)}")
    if not torch.isfinite(inputs).all():
        raise ValueError("x contains NaN or inf")
    n, d = inputs.shape[0], int(np.prod(inputs.shape[1:]))
    total = torch.zeros(d, d, dtype=torch.float64, device=inputs.device)
    for start in range(0, n, chunk_size):
        batch = inputs[start:start + chunk_size].clone().requires_grad_(True)
        with torch.enable_grad():
            out = model(batch)
            if out.ndim == 1:
                out = out[:, None]
            if out.ndim != 2 or out.shape[0] != batch.shape[0]:
                raise ValueError(f"model must map (m, *in_shape) to (m,) or (m, k), got output {tuple(out.shape)}")
            # Rows are independent, so the gradient of sum_i f_j(x_i) with respect to x_i is row i of the Jacobian
            # of output j: k backward passes give all n Jacobians (cheaper than vmap'd jacrev for small k).
            for j in range(out.shape[1]):
                (grad,) = torch.autograd.grad(out[:, j].sum(), batch, retain_graph=j + 1 < out.shape[1])
                g = grad.reshape(len(batch), d).to(torch.float64)
                total += g.T @ g
    result = (total / n).cpu().numpy()
    return 0.5 * (result + result.T)


def matrix_correlation(a: Any, b: Any, *, kind: str = "pearson") -> float:
    """Similarity of two matrices of the same shape, compared entry by entry.

    ``kind="pearson"``: Pearson correlation of the flattened entries (each centred by its mean entry), the
    statistic Radhakrishnan et al. (2024) report between ``W^T W`` and the AGOP; invariant to positive scaling and
    to adding a constant to every entry. ``kind="cosine"``: ``<A, B>_F / (||A||_F ||B||_F)`` (uncentred), invariant
    to positive scaling only. Both lie in [-1, 1]; 1 iff one matrix is a positive multiple of the other (for
    Pearson: up to an added constant).

    Parameters
    ----------
    a, b : array, shape (p, q)
    kind : {"pearson", "cosine"}

    Returns
    -------
    float
    """
    one_of(kind, "kind", ("pearson", "cosine"))
    x = as_array(a, "a", ndim=2).ravel()
    y = as_array(b, "b", ndim=2).ravel()
    if np.shape(a) != np.shape(b):
        raise ValueError(f"a and b must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    if kind == "pearson":
        x, y = x - x.mean(), y - y.mean()
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    if norm == 0:
        raise ValueError(f"{kind} correlation is undefined for a matrix with all entries equal"
                         if kind == "pearson" else "cosine similarity is undefined for a zero matrix")
    return float(np.clip(x @ y / norm, -1.0, 1.0))


def psd_power(m: Any, alpha: float) -> np.ndarray:
    """``M^alpha`` of a symmetric positive semi-definite ``(d, d)`` matrix through its eigendecomposition.

    Eigenvalues are clipped at 0 first (a numerically PSD matrix such as an AGOP can have tiny negative ones).
    ``alpha = 1/2`` gives the principal square root, the power of the NFA in two-layer linear nets (Radhakrishnan
    et al. 2024).

    Returns
    -------
    numpy.ndarray, shape (d, d), symmetric.
    """
    mat = as_array(m, "m", ndim=2)
    if mat.shape[0] != mat.shape[1]:
        raise ValueError(f"m must be a square (d, d) matrix, got shape {mat.shape}")
    alpha = positive_float(alpha, "alpha")
    values, vectors = np.linalg.eigh(0.5 * (mat + mat.T))
    powered = np.clip(values, 0.0, None) ** alpha
    return (vectors * powered) @ vectors.T


def eigenspace_overlap(a: Any, b: Any, k: int) -> float:
    """Overlap ``||U_a^T U_b||_F^2 / k`` of the top-k eigenvector subspaces of two symmetric ``(d, d)`` matrices.

    ``U_a``, ``U_b``: ``(d, k)`` orthonormal eigenvectors of the k largest eigenvalues. The overlap is the mean
    squared cosine of the principal angles between the two subspaces: 1 when they coincide, 0 when orthogonal,
    and ``k / d`` on average for a uniformly random subspace (the chance level).

    Returns
    -------
    float in [0, 1].
    """
    ma, mb = as_array(a, "a", ndim=2), as_array(b, "b", ndim=2)
    if ma.shape[0] != ma.shape[1] or ma.shape != mb.shape:
        raise ValueError(f"a and b must be square matrices of the same shape, got {ma.shape} and {mb.shape}")
    k = positive_int(k, "k")
    if k > ma.shape[0]:
        raise ValueError(f"k must be <= the dimension {ma.shape[0]}, got {k}")
    ua = np.linalg.eigh(0.5 * (ma + ma.T))[1][:, -k:]
    ub = np.linalg.eigh(0.5 * (mb + mb.T))[1][:, -k:]
    return float(np.linalg.norm(ua.T @ ub) ** 2 / k)
