"""Analytic infinite-width NNGP and NTK kernels of fully connected networks.

``mlp(L, activation, W_std, b_std, parameterization, width)`` reproduces, number for number, the kernels that
neural-tangents 0.6.5 returns for ``stax.serial(*[Dense(width, W_std, b_std, parameterization), Act()] * L,
Dense(1, W_std, b_std, parameterization))``:

- input layer: the input covariance is x1 . x2 / d (inputs of shape (n, d)), and the NTK starts at 0;
- ``Dense`` in NTK parameterization (Jacot, Gabriel & Hongler (2018), thm. 1; Lee et al. (2019), sec. 2):
  K <- W_std^2 K + b_std^2 and Theta <- K_new + W_std^2 Theta;
- ``Dense`` in standard parameterization (Sohl-Dickstein, Novak, Schoenholz & Lee (2020), "On the infinite
  width limit of neural networks with a standard parameterization", as neural-tangents' ``Dense`` implements it):
  Theta <- n_in K_old + W_std^2 Theta + 1 (the 1 is the bias gradient; n_in = d for the first layer and
  ``width`` after it), K <- W_std^2 K + b_std^2;
- activation: K <- E[phi(u) phi(v)] and Theta <- Theta * E[phi'(u) phi'(v)], (u, v) ~ N(0, K)
  (Neal (1996); Lee et al. (2018), sec. 2; Jacot et al. (2018), thm. 1).

The recursion is elementwise in the (n1, n2) block once the per-input variances of every layer are known, so
the variances are computed first (O(n L)) and then each tile of the block runs through all layers while it sits
in cache (memory O(n1 n2), one pass over the output). With ``x2=None`` only one triangle is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import as_array, one_of, positive_float, positive_int
from .._threads import single_threaded
from . import _analytic_closed as closed
from ._analytic_quadrature import as_torch_activation, dual_pairs, tanh_with_grad

__all__ = ["Kernel", "mlp", "ACTIVATIONS", "PARAMETERIZATIONS"]

ACTIVATIONS = ("relu", "erf", "gelu", "tanh", "identity")
PARAMETERIZATIONS = ("ntk", "standard")
# Tile edge for the blockwise recursion: 256 x 256 float64 = 512 KiB per buffer, a few buffers fit in L2.
_TILE = 256


@dataclass(frozen=True)
class Kernel:
    """Infinite-width kernels of a network's scalar output.

    nngp: (n1, n2) covariance of the outputs at initialisation (NNGP; Lee et al. 2018).
    ntk: (n1, n2) neural tangent kernel (Jacot et al. 2018). Units: output^2 (NTK: output^2 per unit of
    learning-rate x time under gradient flow).
    """

    nngp: np.ndarray
    ntk: np.ndarray


PairFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
DiagFn = Callable[[np.ndarray], np.ndarray]


def _numerical_layer(value_and_grad: Callable) -> tuple[PairFn, DiagFn]:
    """Layer maps for an activation without a closed form (2-D quadrature, see _analytic_quadrature)."""

    def pair(c: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The quadrature runs in float64 whatever the working precision: it is not the bottleneck.
        args = [torch.from_numpy(np.broadcast_to(a, c.shape).astype(np.float64).ravel()) for a in (q1, q2, c)]
        nngp, dot = dual_pairs(value_and_grad, *args)
        return nngp.numpy().reshape(c.shape).astype(c.dtype), dot.numpy().reshape(c.shape).astype(c.dtype)

    def diag(q: np.ndarray) -> np.ndarray:
        as_t = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64))
        return dual_pairs(value_and_grad, as_t, as_t, as_t)[0].numpy()

    return pair, diag


def _layer_maps(activation: str | Callable) -> tuple[PairFn, DiagFn]:
    if callable(activation):
        return _numerical_layer(as_torch_activation(activation))
    if activation == "tanh":
        return _numerical_layer(tanh_with_grad)
    return closed.CLOSED_FORMS[activation]


def check_activation(activation: object) -> str | Callable:
    """The package's one activation vocabulary: a name of :data:`ACTIVATIONS` (case-insensitive, returned
    lower-cased) or an elementwise callable (returned as is); anything else raises ValueError naming
    ``activation``. ``kernels.mlp``, ``kernels.mlp_network`` and ``kernels.stax.Activation`` all check with it."""
    if callable(activation):
        return activation
    if not isinstance(activation, str):
        raise ValueError(f"activation must be one of {ACTIVATIONS} or a callable, got {activation!r}")
    return one_of(activation.lower(), "activation", ACTIVATIONS)


def mlp(
    hidden_layers: int,
    activation: str | Callable,
    W_std: float = 1.0,  # noqa: N803 - neural-tangents' name
    b_std: float = 0.0,
    parameterization: str = "ntk",
    width: int | None = None,
) -> Callable[..., Kernel]:
    """Infinite-width NNGP/NTK of ``hidden_layers`` Dense+activation layers followed by a Dense readout.

    Parameters
    ----------
    hidden_layers : int
        Number of hidden (Dense, activation) blocks, >= 0.
    activation : str or callable
        "relu", "erf", "gelu" (exact x Phi(x)), "tanh", "identity" (case-insensitive; see
        :func:`check_activation`), or an elementwise callable (torch or numpy) whose kernels are computed by 2-D
        quadrature.
    W_std, b_std : float
        Weight and bias standard deviations (>= 0), as in neural-tangents' ``Dense``.
    parameterization : str
        "ntk" or "standard" (then the NTK depends on ``width``, which is required).
    width : int, optional
        Hidden width, only used (and required) for ``parameterization="standard"``.

    Returns
    -------
    kernel_fn : callable
        ``kernel_fn(x1, x2=None, dtype=np.float64) -> Kernel``: x1 ``(n1, in_dim)``, x2 ``(n2, in_dim)`` or None
        (= x1); the kernels are ``(n1, n2)`` arrays of ``dtype`` (output units^2). ``dtype=np.float32`` runs the
        closed-form recursion in single precision (about 2x faster); error bound 1e-3 of the largest entry at
        depth 10 (measured ~1e-6 for random inputs; nearly parallel inputs lose up to sqrt(eps_32) ~ 3e-4 in
        arccos near correlation 1). ``kernels.stax.MLP(...).kernel_fn`` is this function for the same network.

    Accuracy (float64): closed forms agree with neural-tangents to ~1e-8 of the largest entry up to depth 100.
    The quadrature (tanh, callables) is accurate to ~1e-10 relative per layer at any pre-activation variance
    (tested 1e-2 to 1e40) and correlation (up to +-(1 - 1e-9) and +-1), for kinked, step-like and bump-like
    activations and derivatives alike (see _analytic_quadrature); end to end at depth 100 with W_std = 2 it
    matches the closed forms to ~1e-13. Its cost per pair grows like log(variance)^2.
    """
    hidden_layers = positive_int(hidden_layers, "hidden_layers", minimum=0)
    activation = check_activation(activation)
    W_std = positive_float(W_std, "W_std", allow_zero=True)  # noqa: N806
    b_std = positive_float(b_std, "b_std", allow_zero=True)
    if not isinstance(parameterization, str):
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    parameterization = one_of(parameterization.lower(), "parameterization", PARAMETERIZATIONS)
    if width is not None:
        width = positive_int(width, "width")
    if parameterization == "standard" and width is None:
        raise ValueError("width is required for parameterization='standard' (the NTK then depends on it)")
    pair_fn, diag_fn = _layer_maps(activation)
    standard = parameterization == "standard"
    w_var, b_var = W_std**2, b_std**2

    def kernel_fn(x1: np.ndarray, x2: np.ndarray | None = None, dtype: type = np.float64) -> Kernel:
        """NNGP and NTK between the rows of x1 (n1, d) and x2 (n2, d) (x2=None: x1 with itself)."""
        x1 = as_array(x1, "x1", ndim=2)
        symmetric = x2 is None
        if not symmetric:
            x2 = as_array(x2, "x2", ndim=2)
            if x2.shape[1] != x1.shape[1]:
                raise ValueError(f"x2 must have the same number of features as x1 ({x1.shape[1]}), got {x2.shape}")
        if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be np.float64 or np.float32, got {dtype!r}")
        work = np.dtype(dtype)
        d = x1.shape[1]
        var1 = np.einsum("ij,ij->i", x1, x1) / d
        var2 = var1 if symmetric else np.einsum("ij,ij->i", x2, x2) / d
        pre1 = _preactivation_variances(var1, diag_fn, hidden_layers, w_var, b_var, work)
        pre2 = pre1 if symmetric else _preactivation_variances(var2, diag_fn, hidden_layers, w_var, b_var, work)
        rows = np.ascontiguousarray(x1, dtype=work)
        cols = rows if symmetric else np.ascontiguousarray(x2, dtype=work)
        rows_t, cols_t = torch.from_numpy(rows), torch.from_numpy(cols)
        n1, n2 = rows.shape[0], cols.shape[0]
        nngp, ntk = np.empty((n1, n2), dtype=work), np.empty((n1, n2), dtype=work)
        recurse = _Recursion(pair_fn, hidden_layers, w_var, b_var, standard, [d] + [width or 0] * hidden_layers)

        def one_tile(r0: int, c0: int) -> None:
            r1, c1 = min(n1, r0 + _TILE), min(n2, c0 + _TILE)
            # Input covariance x1.x2 / d (neural-tangents' convention for the input layer's fan-in), computed per
            # tile so that it is still in cache for the layer recursion; symmetric runs only do the lower tiles.
            # torch.mm, not numpy's matmul: torch's BLAS honours the single-thread setting of _run_tiles.
            k = torch.mm(rows_t[r0:r1], cols_t[c0:c1].T).numpy()
            k *= 1.0 / d
            on_diagonal = symmetric and r0 == c0
            if on_diagonal:
                np.fill_diagonal(k, var1[r0:r1])  # exact x.x / d for an input with itself
            k, theta = recurse(k, pre1[:, r0:r1, None], pre2[:, None, c0:c1], on_diagonal)
            if on_diagonal:  # exactly symmetric: the lower triangle wins
                k = np.tril(k) + np.tril(k, -1).T
                theta = np.tril(theta) + np.tril(theta, -1).T
            nngp[r0:r1, c0:c1] = k
            ntk[r0:r1, c0:c1] = theta
            if symmetric and c0 < r0:
                nngp[c0:c1, r0:r1] = k.T
                ntk[c0:c1, r0:r1] = theta.T

        tiles = [(r0, c0) for r0 in range(0, n1, _TILE) for c0 in range(0, (r0 + 1 if symmetric else n2), _TILE)]
        _run_tiles(one_tile, tiles)
        return Kernel(nngp=nngp, ntk=ntk)

    return kernel_fn


def _run_tiles(work: Callable[[int, int], None], tiles: list[tuple[int, int]]) -> None:
    """Run the tiles on a pool of torch.get_num_threads() Python threads, with single-threaded torch.

    Tiles are independent and write disjoint parts of the output, and numpy/torch release the GIL, so a thread
    pool parallelises them with no per-op synchronisation; library-level threads would synchronise on every
    small op, which collapses (10x slower, measured) when the cores are shared with other jobs. The global
    thread settings are restored afterwards.
    """
    workers = max(1, min(torch.get_num_threads(), len(tiles)))
    with single_threaded():
        if workers == 1:
            for tile in tiles:
                work(*tile)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(work, *tile) for tile in tiles]:
                    future.result()


def _preactivation_variances(
    var: np.ndarray, diag_fn: DiagFn, layers: int, w_var: float, b_var: float, work: np.dtype
) -> np.ndarray:
    """Pre-activation variances of every hidden layer, (layers, n), computed in float64, returned as ``work``.

    q_1 = W^2 var + b^2 and q_{l+1} = W^2 E[phi(u)^2] + b^2 with u ~ N(0, q_l) (Poole et al. (2016), the
    "length map").
    Clamped at sqrt(smallest positive float) so that a zero input (with b_std = 0) gives correlation 0, not NaN.
    """
    q = np.asarray(var, dtype=np.float64)
    out = np.empty((layers, q.size), dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    for layer in range(layers):
        q = w_var * q + b_var
        out[layer] = q
        q = diag_fn(np.maximum(q, tiny))
    return np.maximum(out, np.sqrt(np.finfo(work).tiny)).astype(work)  # so that q1 * q2 > 0 too


class _Recursion:
    """Runs one (r, c) tile of the input covariance through every layer (NTK and NNGP together)."""

    def __init__(
        self, pair_fn: PairFn, layers: int, w_var: float, b_var: float, standard: bool, widths: list[int]
    ) -> None:
        self.pair_fn, self.layers, self.w_var, self.b_var = pair_fn, layers, w_var, b_var
        self.standard, self.widths = standard, widths

    def _dense(self, k: np.ndarray, theta: np.ndarray | None, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense layer: returns (pre-activation covariance, NTK). ``k`` and ``theta`` are modified in place."""
        if self.standard:
            # Sohl-Dickstein et al. (2020): d f / d W contributes n_in * K_old, the bias gradient contributes 1.
            new_theta = k * float(fan_in)
            new_theta += 1.0
            if theta is not None:
                theta *= self.w_var
                new_theta += theta
            k *= self.w_var
            k += self.b_var
            return k, new_theta
        k *= self.w_var
        k += self.b_var
        if theta is None:
            return k, k.copy()
        theta *= self.w_var
        theta += k
        return k, theta

    def __call__(
        self, k: np.ndarray, pre1: np.ndarray, pre2: np.ndarray, on_diagonal: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """k: (r, c) input covariance tile; pre1 (layers, r, 1), pre2 (layers, 1, c): pre-activation variances.
        ``on_diagonal``: the tile straddles the diagonal of a symmetric kernel, whose diagonal entries are then
        pinned to the exactly computed variances (correlation exactly 1 for an input with itself)."""
        theta = None
        for layer in range(self.layers):
            k, theta = self._dense(k, theta, self.widths[layer])
            if on_diagonal:
                np.fill_diagonal(k, pre1[layer, :, 0])
            k, dot = self.pair_fn(k, pre1[layer], pre2[layer])
            theta *= dot
        return self._dense(k, theta, self.widths[self.layers])
