"""A batched L-BFGS: many independent small minimisations advanced together with numpy.

Scaling-law fits are tiny problems (5 parameters) solved many times: from a grid of starting points
(Hoffmann et al. 2022, approach 3) and again for every bootstrap resample (Besiroglu et al. 2024). Solving them one
at a time spends almost all the time in Python overhead; here the whole batch moves in lock-step, each problem with
its own L-BFGS memory and its own backtracking line search, so one objective call evaluates every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._checks import as_array, positive_float, positive_int

__all__ = ["BatchedMinimum", "minimize_batched"]

# fun_and_grad(x, rows) -> (values (b,), gradients (b, P)) for the problems ``rows`` (indices into the batch)
# evaluated at x (b, P). Passing ``rows`` lets problems carry their own data (e.g. bootstrap weights).
Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

_ARMIJO = 1e-4  # sufficient-decrease constant c1 (Nocedal & Wright 2006, eq. 3.4), scipy's value too


@dataclass(frozen=True)
class BatchedMinimum:
    """Result of :func:`minimize_batched` for a batch of B problems with P parameters.

    x (B, P): final points; fun (B,): objective there; grad_norm (B,): max-abs gradient there;
    iterations (B,): L-BFGS iterations used; converged (B,): stopped by a tolerance rather than ``max_iter``.
    """

    x: np.ndarray
    fun: np.ndarray
    grad_norm: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def _two_loop(grad: np.ndarray, s_hist: np.ndarray, y_hist: np.ndarray, count: np.ndarray) -> np.ndarray:
    """L-BFGS search direction -H g for every problem (Nocedal & Wright 2006, algorithm 7.4), vectorised.

    grad (b, P); s_hist, y_hist (b, m, P) stored newest-last; count (b,) how many pairs of each row are valid
    (the valid ones are the last ``count``), invalid pairs are masked out.
    """
    b, m, _ = s_hist.shape
    valid = np.arange(m)[None, :] >= (m - count)[:, None]  # (b, m)
    sy = np.einsum("bmp,bmp->bm", s_hist, y_hist)
    rho = np.where(valid, 1.0 / np.where(valid, sy, 1.0), 0.0)
    q = grad.copy()
    alphas = np.zeros((b, m))
    for j in range(m - 1, -1, -1):
        alphas[:, j] = rho[:, j] * np.einsum("bp,bp->b", s_hist[:, j], q)
        q -= alphas[:, j, None] * y_hist[:, j]
    # initial Hessian scaling gamma = s'y / y'y of the newest pair (eq. 7.20); identity when no pair yet
    yy = np.einsum("bp,bp->b", y_hist[:, -1], y_hist[:, -1])
    gamma = np.where(count > 0, sy[:, -1] / np.where(yy > 0, yy, 1.0), 1.0)
    r = gamma[:, None] * q
    for j in range(m):
        beta = rho[:, j] * np.einsum("bp,bp->b", y_hist[:, j], r)
        r += (alphas[:, j] - beta)[:, None] * s_hist[:, j]
    return -r


def minimize_batched(
    fun_and_grad: Objective,
    x0: np.ndarray,
    *,
    max_iter: int = 1000,
    history: int = 10,
    gtol: float = 1e-9,
    ftol: float = 1e-12,
    max_backtracks: int = 40,
    chunk: int = 256,
) -> BatchedMinimum:
    """Minimise B independent smooth objectives with L-BFGS in lock-step.

    fun_and_grad: ``(x (b, P), rows (b,)) -> (f (b,), grad (b, P))`` for the problems ``rows`` of the batch.
    x0: (B, P) starting points. Each problem stops when its max-abs gradient is <= ``gtol`` or its objective
    decreases by less than ``ftol * max(|f|, 1e-300)`` in one iteration (relative, because scaling-law objectives
    are ~1e-3 in absolute size), or after ``max_iter`` iterations. Line search: backtracking with the Armijo
    condition; curvature pairs with non-positive s'y are skipped so the inverse Hessian stays positive definite.
    chunk: problems per objective call; the objective's temporaries (chunk x points) then stay in the CPU cache,
    which is several times faster than one call over the whole batch.
    """
    x = as_array(x0, "x0", ndim=2).copy()
    # far-off line-search trials may overflow; such trials are rejected (non-finite f) or give a non-descent
    # direction that is replaced by steepest descent, so the warnings carry no information
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _minimize(_in_chunks(fun_and_grad, positive_int(chunk, "chunk")), x, max_iter, history, gtol, ftol,
                         max_backtracks)


def _in_chunks(fun_and_grad: Objective, chunk: int) -> Objective:
    """The objective evaluated ``chunk`` problems at a time (same values, better memory locality)."""

    def evaluate(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if rows.size <= chunk:
            value, grad = fun_and_grad(x, rows)
            return np.asarray(value, dtype=float), np.asarray(grad, dtype=float)
        values, grads = np.empty(rows.size), np.empty(x.shape)
        for start in range(0, rows.size, chunk):
            part = slice(start, start + chunk)
            values[part], grads[part] = fun_and_grad(x[part], rows[part])
        return values, grads

    return evaluate


def _minimize(fun_and_grad: Objective, x: np.ndarray, max_iter: int, history: int, gtol: float, ftol: float,
              max_backtracks: int) -> BatchedMinimum:
    max_iter = positive_int(max_iter, "max_iter")
    history = positive_int(history, "history")
    gtol, ftol = positive_float(gtol, "gtol"), positive_float(ftol, "ftol")
    n_problems, n_params = x.shape
    rows_all = np.arange(n_problems)
    f, g = fun_and_grad(x, rows_all)
    f, g = np.asarray(f, dtype=float).copy(), np.asarray(g, dtype=float).copy()
    s_hist = np.zeros((n_problems, history, n_params))
    y_hist = np.zeros((n_problems, history, n_params))
    count = np.zeros(n_problems, dtype=int)
    iterations = np.zeros(n_problems, dtype=int)
    converged = np.max(np.abs(g), axis=1) <= gtol
    active = ~converged & np.isfinite(f)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xr, fr, gr = x[rows], f[rows], g[rows]
        direction = _two_loop(gr, s_hist[rows], y_hist[rows], count[rows])
        slope = np.einsum("bp,bp->b", gr, direction)
        # not a descent direction (numerical trouble): restart from steepest descent and forget the memory
        bad = ~(slope < 0) | ~np.all(np.isfinite(direction), axis=1)
        if bad.any():
            direction[bad] = -gr[bad]
            slope[bad] = -np.einsum("bp,bp->b", gr[bad], gr[bad])
            count[rows[bad]] = 0
        # first step of a fresh memory: unit-length move, as scipy's L-BFGS-B does
        step = np.where(count[rows] == 0, np.minimum(1.0, 1.0 / np.maximum(np.linalg.norm(direction, axis=1),
                                                                          1e-300)), 1.0)
        x_new, f_new, g_new = xr.copy(), fr.copy(), gr.copy()
        pending = np.arange(rows.size)
        for _ in range(max_backtracks):
            trial = xr[pending] + step[pending, None] * direction[pending]
            ft, gt = fun_and_grad(trial, rows[pending])
            ok = np.isfinite(ft) & (ft <= fr[pending] + _ARMIJO * step[pending] * slope[pending])
            done = pending[ok]
            x_new[done], f_new[done], g_new[done] = trial[ok], ft[ok], gt[ok]
            pending = pending[~ok]
            if pending.size == 0:
                break
            step[pending] *= 0.5
        # rows whose line search failed keep their point and are finished: no decrease is possible along -Hg
        stalled = np.zeros(rows.size, dtype=bool)
        stalled[pending] = True
        s, yv = x_new - xr, g_new - gr
        sy = np.einsum("bp,bp->b", s, yv)
        keep = (sy > 1e-12 * np.einsum("bp,bp->b", yv, yv)) & np.isfinite(sy) & ~stalled
        kr = rows[keep]
        s_hist[kr] = np.roll(s_hist[kr], -1, axis=1)
        y_hist[kr] = np.roll(y_hist[kr], -1, axis=1)
        s_hist[kr, -1], y_hist[kr, -1] = s[keep], yv[keep]
        count[kr] = np.minimum(count[kr] + 1, history)
        decrease = fr - f_new
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        iterations[rows] += 1
        small_grad = np.max(np.abs(g_new), axis=1) <= gtol
        small_step = ~stalled & (decrease <= ftol * np.maximum(np.abs(fr), 1e-300))
        finished = small_grad | small_step | stalled
        converged[rows] = small_grad | small_step | stalled
        active[rows[finished]] = False
    return BatchedMinimum(x=x, fun=f, grad_norm=np.max(np.abs(g), axis=1), iterations=iterations,
                          converged=converged)
