"""Saddle-to-saddle dynamics of diagonal linear networks from vanishing initialisation (Pesme & Flammarion 2023).

Model: ``beta = u * u - v * v`` (elementwise; the "2-layer diagonal linear network") on the least-squares loss
``L(beta) = ||X beta - y||^2 / (2 n)``, gradient flow on ``(u, v)`` from ``u(0) = v(0) = alpha``. With
``g = grad L(beta)`` the flow is ``du/dt = -2 u g``, ``dv/dt = 2 v g``, so with ``S(t) = -int_0^t g``:

    beta(t) = alpha^2 (exp(4 S) - exp(-4 S)) = 2 alpha^2 sinh(4 S(t)).

A coordinate is macroscopic only once ``|S_i| ~ log(1/alpha) / 2``. In the accelerated time
``t~ = t / (log(1/alpha) / 2)`` and with ``s = S / (log(1/alpha) / 2)`` the limit ``alpha -> 0`` is the
piecewise-constant *saddle-to-saddle* process of Pesme & Flammarion (2023, Thm. 2 and Algorithm 1, the LARS-like
recursion): ``ds/dt~ = -grad L(beta)``, ``s`` stays in ``[-1, 1]^d``, and while ``s`` is fixed on its faces
``beta`` sits at the saddle

    beta = argmin L(beta)  s.t.  beta_i >= 0 if s_i = +1,  beta_i <= 0 if s_i = -1,  beta_i = 0 if |s_i| < 1

(coordinates inside the cube are exponentially small: ``|beta_i| ~ alpha^(2 (1 - |s_i|))``). A *jump* happens
when a new ``s_j`` reaches ``+-1``: the accelerated jump time is the first such hitting time, found in closed form
because the gradient is constant between jumps. The process ends at the minimum-l1-norm interpolator (or the
least-squares solution when ``n > d``). Physical jump times are therefore ``t_k = t~_k log(1/alpha) / 2 + O(1)``:
plateaus whose length grows linearly in ``log(1/alpha)`` (Saxe et al. 2019 small init; Gissin, Shalev-Shwartz &
Daniely 2019 incremental learning; Jacot et al. 2021 saddle-to-saddle).

The ``1/2`` in ``log(1/alpha) / 2`` is this parametrization's (``beta = u^2 - v^2`` with ``u = v = alpha``,
``beta ~ alpha^2 e^{4 S}``); Pesme & Flammarion's ``u * v`` network with ``u(0) = sqrt(2) alpha``, ``v(0) = 0``
has ``beta ~ alpha^2 e^{2 S}`` and so ``t_k = t~_k log(1/alpha) + O(1)``: the accelerated process is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from .._checks import as_array, positive_float, positive_int

__all__ = [
    "SaddlePath",
    "DiagonalRun",
    "diagonal_saddles",
    "jump_times",
    "dormant_magnitude",
    "activation_rates",
    "simulate_diagonal",
    "crossing_times",
    "sequential_windows",
]


@dataclass
class SaddlePath:
    """The limiting saddle-to-saddle process (Pesme & Flammarion 2023, Algorithm 1).

    times: ``(K + 1,)`` accelerated jump times ``t~_k`` (``times[0] = 0``, the start at ``beta = 0``; units of
    ``t / (log(1/alpha) / 2)``). saddles: ``(K + 1, d)`` the saddle ``beta^k`` occupied after jump ``k``.
    entering: ``(K,)`` the coordinate whose ``s_j`` reaches ``+-1`` at jump ``k`` (``entering[k - 1]`` for jump
    ``k``). losses: ``(K + 1,)`` ``L(beta^k)``. s: ``(K + 1, d)`` the dual variable at each jump.
    """

    times: np.ndarray
    saddles: np.ndarray
    entering: np.ndarray
    losses: np.ndarray
    s: np.ndarray

    @property
    def order(self) -> list[int]:
        """Coordinates in the order they first become active (first entry; re-entries are dropped)."""
        seen: list[int] = []
        for j in self.entering.tolist():
            if j not in seen:
                seen.append(int(j))
        return seen

    def first_entry(self) -> dict[int, int]:
        """``{coordinate: jump index k}`` of each coordinate's first activation (``times[k]``, ``saddles[k]``)."""
        out: dict[int, int] = {}
        for k, j in enumerate(self.entering.tolist(), start=1):
            out.setdefault(int(j), k)
        return out


def _check_xy(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    X = as_array(x, "x", ndim=2)
    Y = as_array(y, "y", ndim=1)
    if Y.size != X.shape[0]:
        raise ValueError(f"y must have one entry per row of x ({X.shape[0]}), got {Y.size}")
    return X, Y


def diagonal_saddles(x: object, y: object, *, max_jumps: int | None = None, tol: float = 1e-9) -> SaddlePath:
    """The saddles and accelerated jump times of a diagonal linear network as ``alpha -> 0``.

    Pesme & Flammarion (2023), Algorithm 1: starting from ``beta = 0``, ``s = 0``, repeat: with the (constant)
    gradient ``g = grad L(beta)`` of ``L = ||X beta - y||^2 / (2n)``, every coordinate with ``g_j != 0`` moves
    ``s_j`` towards ``-sign(g_j)``; the next jump is after ``Delta = min_j |(-sign(g_j)) - s_j| / |g_j|``; then
    ``s <- s - Delta g`` and ``beta`` becomes the sign-constrained least-squares minimiser on the face of the cube
    that ``s`` is on (non-negative least squares after flipping signs). Stops when the gradient vanishes (relative
    to ``tol``) or after ``max_jumps`` (default ``10 d``).

    x: ``(n, d)`` inputs; y: ``(n,)`` targets. Returns a :class:`SaddlePath`.
    """
    X, Y = _check_xy(x, y)
    n, d = X.shape
    max_jumps = positive_int(max_jumps if max_jumps is not None else 10 * d, "max_jumps")
    tol = positive_float(tol, "tol")
    H = X.T @ X / n
    b = X.T @ Y / n
    scale = max(float(np.abs(b).max()), 1e-300)
    beta, s, t = np.zeros(d), np.zeros(d), 0.0
    times, saddles, entering, losses, duals = [0.0], [beta.copy()], [], [], [s.copy()]

    def loss(v: np.ndarray) -> float:
        r = X @ v - Y
        return float(r @ r / (2 * n))

    losses.append(loss(beta))
    for _ in range(max_jumps):
        g = H @ beta - b
        moving = np.abs(g) > tol * scale
        if not moving.any():
            break
        target = -np.sign(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(moving, np.abs(target - s) / np.abs(g), np.inf)
        # A coordinate already on the face it is pushed against (|s_j| = 1, beta_j != 0 ideally has g_j = 0) has
        # delta 0; it cannot jump again, so only strictly positive hitting times count.
        delta = np.where(delta > 1e-12, delta, np.inf)
        j = int(np.argmin(delta))
        step = float(delta[j])
        if not np.isfinite(step):
            break
        s = np.clip(s - step * g, -1.0, 1.0)
        s[j] = target[j]
        t += step
        face = np.abs(s) >= 1.0 - 1e-10
        beta = np.zeros(d)
        if face.any():
            signs = np.sign(s[face])
            gamma, _ = nnls(X[:, face] * signs, Y)
            beta[face] = signs * gamma
        times.append(t)
        saddles.append(beta.copy())
        entering.append(j)
        losses.append(loss(beta))
        duals.append(s.copy())
    return SaddlePath(np.array(times), np.array(saddles), np.array(entering, dtype=int), np.array(losses),
                      np.array(duals))


def jump_times(path: SaddlePath, alpha: object) -> np.ndarray:
    """Leading-order physical jump times ``t_k = t~_k log(1/alpha) / 2`` of the ``u^2 - v^2`` network.

    alpha: scalar or ``(A,)`` init scales in (0, 1). Returns ``(A, K + 1)`` (``(K + 1,)`` for a scalar) in units of
    gradient-flow time (learning rate x steps). The neglected term is ``O(1)`` in ``alpha``: only the slope in
    ``log(1/alpha)`` is exact.
    """
    a = np.asarray(alpha, dtype=float)
    if a.ndim > 1 or np.any(~np.isfinite(a)) or np.any(a <= 0) or np.any(a >= 1):
        raise ValueError(f"alpha must be a scalar or 1-D array of values in (0, 1), got {alpha!r}")
    out = np.multiply.outer(np.log(1.0 / a) / 2.0, path.times)
    return out


def dormant_magnitude(path: SaddlePath, alpha: float) -> np.ndarray:
    """Leading-order size ``alpha^(2 (1 - |s_i|))`` of every coordinate at each jump of the path.

    From ``beta_i = 2 alpha^2 sinh(4 S_i)`` with ``S_i = s_i log(1/alpha) / 2`` (module docstring):
    ``|beta_i| ~ alpha^2 exp(2 log(1/alpha) |s_i|) = alpha^(2 (1 - |s_i|))``, so a coordinate that is not yet
    active (``|s_i| < 1``) is small only by a power of alpha that shrinks as ``s_i`` nears ``+-1``: this says which
    finite alpha resolves the one-at-a-time picture. alpha: in (0, 1). Returns ``(K + 1, d)`` (1 on the active
    coordinates, where ``|s_i| = 1``; the active ones' actual size is the saddle value).
    """
    a = positive_float(alpha, "alpha")
    if a >= 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return a ** (2.0 * (1.0 - np.abs(path.s)))


def activation_rates(path: SaddlePath, x: object, y: object) -> np.ndarray:
    """Initial exponential growth rate ``4 |g_j|`` of the coordinate ``j`` that activates at each jump.

    Between jumps the gradient ``g = grad L(beta^{k-1})`` is constant, and ``u_j^2 ~ |beta_j|`` of the escaping
    coordinate grows like ``exp(4 |g_j| t)`` (``du/dt = -2 u g``) until it saturates at the next saddle, a
    logistic-like rise that takes about ``log(81) / (4 |g_j|)`` from 10% to 90% of its level. x: ``(n, d)``;
    y: ``(n,)`` (the data the path was computed from). Returns ``(K,)`` in 1 / (gradient-flow time).
    """
    X, Y = _check_xy(x, y)
    n = X.shape[0]
    if X.shape[1] != path.saddles.shape[1]:
        raise ValueError(f"x must have {path.saddles.shape[1]} columns (the path's dimension), got {X.shape[1]}")
    H, b = X.T @ X / n, X.T @ Y / n
    return np.array([4.0 * abs(float((H @ path.saddles[k - 1] - b)[j]))
                     for k, j in enumerate(path.entering.tolist(), start=1)])


@dataclass
class DiagonalRun:
    """Gradient descent on a ``u^2 - v^2`` diagonal network, several init scales at once.

    alphas: ``(A,)``; times: ``(T,)`` recorded times (steps x lr); beta: ``(A, T, d)``; loss: ``(A, T)``;
    lr: ``(A,)`` the learning rate each init scale used.
    """

    alphas: np.ndarray
    times: np.ndarray
    beta: np.ndarray
    loss: np.ndarray
    lr: np.ndarray


def simulate_diagonal(
    x: object, y: object, alphas: object, t_max: float, lr: float, *, num_records: int = 2000,
) -> DiagonalRun:
    """Full-batch GD of the diagonal network ``beta = u^2 - v^2`` from ``u = v = alpha`` for each alpha.

    The update is the real network's: ``u <- u - lr * 2 u g``, ``v <- v + lr * 2 v g`` with
    ``g = X^T (X beta - y) / n``. All alphas run in lock-step to time ``t_max`` with learning rate
    ``lr / max(1, max(alpha)^2)`` (the tangent kernel at init is ``8 alpha^2 X^T X / n``, so a large init needs a
    smaller step for the same stability margin); times are in gradient-flow units (steps x learning rate).

    x: ``(n, d)``; y: ``(n,)``; alphas: ``(A,)`` positive. Returns a :class:`DiagonalRun` with ``num_records``
    (about) equally spaced records in ``[0, t_max]``.
    """
    X, Y = _check_xy(x, y)
    a = as_array(alphas, "alphas", ndim=1)
    if np.any(a <= 0):
        raise ValueError(f"alphas must be > 0, got {a.tolist()}")
    t_max, lr = positive_float(t_max, "t_max"), positive_float(lr, "lr")
    num_records = positive_int(num_records, "num_records", minimum=2)
    n, d = X.shape
    H, b = X.T @ X / n, X.T @ Y / n
    yy = float(Y @ Y / (2 * n))
    # One step size for all alphas (they run in lock-step, one row each), set by the largest init.
    eta = lr / max(1.0, float(a.max()) ** 2)
    n_steps = int(np.ceil(t_max / eta))
    record_steps = np.unique(np.linspace(0, n_steps, num_records).round().astype(int))
    u = np.tile(a[:, None], (1, d))
    v = u.copy()
    beta_rec = np.empty((a.size, record_steps.size, d))
    k = 0
    for step_i in range(n_steps + 1):
        w = u * u - v * v
        if step_i == record_steps[k]:
            beta_rec[:, k] = w
            k += 1
            if k == record_steps.size:
                break
        g = w @ H - b  # H symmetric: row-wise H w - b
        u = u - (eta * 2.0) * u * g
        v = v + (eta * 2.0) * v * g
    loss_rec = 0.5 * np.einsum("atd,de,ate->at", beta_rec, H, beta_rec) - beta_rec @ b + yy
    lrs = np.full(a.size, eta)
    record_t = record_steps * eta
    return DiagonalRun(a, record_t, beta_rec, loss_rec, lrs)


def crossing_times(times: object, values: object, thresholds: object) -> np.ndarray:
    """First time each ``|values[:, j]|`` reaches ``thresholds[j]``, linearly interpolated; NaN if never.

    times: ``(T,)`` increasing; values: ``(T, M)``; thresholds: ``(M,)`` positive. Returns ``(M,)``.
    """
    t = as_array(times, "times", ndim=1)
    v = np.abs(as_array(values, "values", ndim=2))
    thr = as_array(thresholds, "thresholds", ndim=1)
    if v.shape != (t.size, thr.size):
        raise ValueError(f"values must have shape ({t.size}, {thr.size}), got {v.shape}")
    out = np.full(thr.size, np.nan)
    for j in range(thr.size):
        above = np.nonzero(v[:, j] >= thr[j])[0]
        if above.size == 0:
            continue
        i = int(above[0])
        if i == 0:
            out[j] = t[0]
            continue
        lo, hi = v[i - 1, j], v[i, j]
        out[j] = t[i - 1] + (t[i] - t[i - 1]) * (thr[j] - lo) / (hi - lo)
    return out


def sequential_windows(times: object, values: object, levels: object, low: float = 0.1,
                       high: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rise windows of coordinates meant to activate one after another, and whether consecutive ones overlap.

    times: ``(T,)``; values: ``(T, M)`` the coordinates in their predicted activation order; levels: ``(M,)`` the
    magnitude each reaches when it activates (e.g. its value at its first saddle). The window of coordinate ``m``
    is ``[t_low, t_high]``, the first times ``|values|`` reaches ``low`` and ``high`` times its level.
    Returns ``(t_low (M,), t_high (M,), disjoint (M - 1,))`` where ``disjoint[m]`` says coordinate ``m`` finished
    rising before ``m + 1`` started (``t_high[m] < t_low[m + 1]``; False where a window is undefined): the
    one-at-a-time signature of saddle-to-saddle learning (in the lazy regime all coordinates rise together).
    """
    lv = np.abs(as_array(levels, "levels", ndim=1))
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low}, high={high}")
    t_low = crossing_times(times, values, low * lv)
    t_high = crossing_times(times, values, high * lv)
    with np.errstate(invalid="ignore"):
        disjoint = t_high[:-1] < t_low[1:]
    return t_low, t_high, disjoint
