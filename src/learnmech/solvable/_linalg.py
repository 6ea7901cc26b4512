"""Small dense linear algebra run single-threaded through torch.

The solvable strand's systems are small (n <= a few thousand) and its claims share 2 CPU cores with other
work; multi-threaded BLAS then spends most of its time spinning (we measured a 400 x 400 Cholesky at 0.4 s with
2 OpenBLAS threads on a loaded machine vs 0.01 s with one). torch lets us pin the thread count per call.
"""

from __future__ import annotations

import numpy as np
import torch

from .._threads import single_threaded


def solve_psd(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x = matrix^-1 rhs for a symmetric positive (semi-)definite ``(n, n)`` matrix and ``(n,)``/``(n, k)`` rhs.

    Cholesky when it succeeds; otherwise the minimum-norm least-squares solution (singular Gram matrices, e.g.
    ridgeless regression with repeated points). float64 throughout.
    """
    with single_threaded():
        A = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float64))
        b = torch.from_numpy(np.ascontiguousarray(rhs, dtype=np.float64))
        b2 = b.reshape(b.shape[0], -1)
        factor, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            x = torch.cholesky_solve(b2, factor)
            if bool(torch.isfinite(x).all()):
                return x.reshape(b.shape).numpy()
        x = torch.linalg.lstsq(A, b2, driver="gelsd").solution
        return x.reshape(b.shape).numpy()


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in float64 on one thread (see the module docstring)."""
    with single_threaded():
        return (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
                @ torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))).numpy()


def eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric ``(n, n)`` matrix, float64, one thread."""
    with single_threaded():
        values, vectors = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float64)))
    return values.numpy(), vectors.numpy()
