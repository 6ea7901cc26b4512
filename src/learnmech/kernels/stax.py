"""Composable infinite-width kernels of real architectures, with neural-tangents' ``stax`` semantics, in PyTorch.

Every constructor returns a :class:`Layer` with

- ``kernel_fn(x1, x2=None) -> Kernel``: the NNGP and NTK of the network's (scalar per channel) output, ``(n1, n2)``
  numpy float64 arrays, the same numbers neural-tangents 0.6.5 returns for the same ``stax.serial(...)`` given the
  channels-last transpose of the inputs (cross-checked in tests/test_kernels_stax.py);
- ``module(in_shape, seed=0) -> torch.nn.Module``: the finite network with the same parameterization, so that
  ``empirical_ntk(layer.module(in_shape), x)`` converges to ``layer.kernel_fn(x).ntk`` as the widths
  (``out_dim``, ``out_chan``, attention heads/channels) grow (Jacot, Gabriel & Hongler (2018), thm. 1; Novak et al.
  (2019), "Bayesian deep convolutional networks with many channels are Gaussian processes"; Yang (2019), "Tensor
  programs I").

Inputs are channels-first, as PyTorch holds them: ``(N, D)``, ``(N, C, L)`` or ``(N, C, H, W)``.

Kernel representation (as neural-tangents with ``diagonal_spatial=False``, Novak et al. (2019), sec. 2.2-2.3):
for a batch block of t1 x t2 inputs the state holds ``nngp`` and ``ntk`` of shape ``(t1, t2, *X, *X)`` (X the
spatial shape, full position-position covariance, per channel: channels are i.i.d. in the limit), and the
per-input covariances ``cov1 (t1, *X, *X)``, ``cov2 (t2, *X, *X)`` whose diagonals are the pre-activation
variances. The input layer is K(x, x')[s, s'] = sum_c x[c, s] x'[c, s'] / C. Layer rules (W = W_std^2, B = b_std^2):

- ``Dense`` (per position, on the channel axis) / ``Conv``, NTK parameterization:
  K <- W A(K) + B, Theta <- W A(Theta) + K_new, with A the identity (Dense) or the filter average
  A(K)[i, i'] = (1/|f|) sum_p K[s i + p - lo, s i' + p - lo] over filter offsets p (shared by both positions:
  the weights are shared; zero padding for "SAME", periodic for "CIRCULAR"; Novak et al. (2019), eq. 7 and
  app. E). Standard parameterization (Sohl-Dickstein, Novak, Schoenholz & Lee (2020)):
  Theta <- fan_in A(K) + W A(Theta) + [1 if a bias], K <- W A(K) + B, with fan_in = C_in |f|.
- activations: K <- E[phi(u) phi(v)], Theta <- Theta E[phi'(u) phi'(v)] entrywise with (u, v) ~ N(0, [[K(x,x)[s,s],
  K(x,x')[s,s']], [., K(x',x')[s',s']]]) (Lee et al. (2018); Jacot et al. (2018)); closed forms and quadrature of
  ``kernels.mlp``.
- ``AvgPool``: independent window averages on both positions; ``GlobalAvgPool``: mean over all position pairs;
  ``Flatten``: mean of the position-diagonal (Novak et al. (2019), sec. 3.1: flattening then a dense readout sees
  each position through independent weights).
- ``LayerNorm``: K(x, x') / sqrt((eps + v(x)) (eps + v(x'))), v the mean variance over the normalised axes (the
  same division for Theta), as neural-tangents.
- ``GlobalSelfAttention`` (linear scaling, Hron, Bahri, Sohl-Dickstein & Novak (2020), "Infinite attention", sec.
  3 and app. C): G(x) = softmax(QK_std K(x, x)) over the second position, K <- OV G(x) K G(x')^T + B and
  Theta <- OV G Theta G'^T + B + 2 (K_new - B) (see :func:`GlobalSelfAttention`).
- ``FanOut``/``parallel``/``FanInSum``: branches see the same kernel; the sum of independent Gaussian branches
  adds their kernels.

When no layer mixes positions (no pooling, no attention: e.g. a CNN with a Flatten readout) only the
same-position entries K[s, s] can reach the output, and the blocks are ``(t1, t2, *X)`` instead (S times less
work and memory; neural-tangents' ``diagonal_spatial=True``).

Memory: the cross kernel is computed in tiles of t1 x t2 inputs that go through the whole network one at a time
(rows and columns carry their own per-input covariances, so no tile needs another), each holding about
``(4 + 2 b) t1 t2 S^2`` numbers at once (S = prod(X) of the input, b = number of live branches; S instead of S^2
in the same-position mode); t is chosen
so that this stays under ``_TILE_BYTES`` (32 MiB) per worker thread: total memory about
``2 n1 n2 + workers * 32 MiB`` (float64 outputs plus tiles; measured 32 MiB to be the fastest tile budget: each
buffer stays below glibc's mmap threshold, so freed tiles are reused without page faults), whatever n and S
(neural-tangents holds ``n1 n2 S^2`` at once unless the user batches). With ``x2=None`` only the lower tiles are
computed. Tiles run on ``torch.get_num_threads()`` Python threads (numpy and torch release the GIL) on the CPU,
one after another on other devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .._checks import one_of, positive_float, positive_int
from ..seeding import torch_generator
from ._stax_dual import DualMap
from .analytic import Kernel, _run_tiles, check_activation, mlp

__all__ = ["Layer", "serial", "parallel", "FanOut", "FanInSum", "Identity", "Dense", "Conv", "AvgPool",
           "GlobalAvgPool", "Flatten", "LayerNorm", "GlobalSelfAttention", "Relu", "Erf", "Gelu", "Tanh",
           "Elementwise", "Activation", "MLP", "MLPSpec"]

_TILE_BYTES = 32 * 2**20
_MAX_TILE = 512
PADDINGS = ("VALID", "SAME", "CIRCULAR")
PARAMETERIZATIONS = ("ntk", "standard")
Shape = tuple[int, ...]


# ----------------------------------------------------------------------------------------------------- state
@dataclass
class _State:
    """Kernels of one tile of inputs at one point of the network.

    nngp, ntk: (t1, t2, *X, *X) (ntk None means identically zero); cov1: (t1, *X, *X); cov2: (t2, *X, *X) or None
    when the columns are the rows (a diagonal tile of a symmetric kernel); shape: channels-first per-input shape
    (C, *X) of the activations; gaussian: the activations are a centred Gaussian process (after an affine layer).
    """

    nngp: torch.Tensor
    ntk: torch.Tensor | None
    cov1: torch.Tensor
    cov2: torch.Tensor | None
    shape: Shape
    gaussian: bool
    shared: bool = False  # tensors also held by another branch (FanOut): never update them in place
    diag: bool = False  # only same-position covariances: nngp/ntk (t1, t2, *X), cov1 (t1, *X), cov2 (t2, *X)

    @property
    def spatial(self) -> Shape:
        return self.shape[1:]

    def map(self, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> _State:
        """Apply a linear map ``fn(matrix, batch_ndim)`` to every kernel (same map for nngp, ntk and covs)."""
        return replace(self, nngp=fn(self.nngp, 2), ntk=None if self.ntk is None else fn(self.ntk, 2),
                       cov1=fn(self.cov1, 1), cov2=None if self.cov2 is None else fn(self.cov2, 1))

    def pin(self) -> _State:
        """On a diagonal tile, make K(x, x) of the cross block bit-identical to cov1 (correlation exactly 1)."""
        if self.cov2 is None:
            nngp = self.nngp.clone()
            idx = torch.arange(nngp.shape[0], device=nngp.device)
            nngp[idx, idx] = self.cov1
            return replace(self, nngp=nngp)
        return self


def _spatial_diag(cov: torch.Tensor, ndim_spatial: int, diag: bool = False) -> torch.Tensor:
    """(t, *X, *X) -> (t, *X): the variance at each position (``diag``: already (t, *X))."""
    if diag:
        return cov
    t = cov.shape[0]
    spatial = cov.shape[1:1 + ndim_spatial]
    size = math.prod(spatial)
    return cov.reshape(t, size, size).diagonal(dim1=1, dim2=2).reshape(t, *spatial)


def _q(diag: torch.Tensor, batch_pos: int, first: bool, d: int) -> torch.Tensor:
    """Broadcast per-input variances (t, *X) against a (t1, t2, *X, *X) block (batch_pos = 0 or 1) or a
    (t, *X, *X) cov (batch_pos = None handled by the caller); ``first``: the variances index the first X."""
    t, spatial = diag.shape[0], tuple(diag.shape[1:])
    ones = (1,) * d
    batch = (t, 1) if batch_pos == 0 else (1, t)
    return diag.reshape(*batch, *(spatial + ones if first else ones + spatial))


# -------------------------------------------------------------------------------------------- spatial helpers
@dataclass(frozen=True)
class _Window:
    """One spatial dimension of a conv/pool: size f, stride s, padding "VALID"/"SAME"/"CIRCULAR" or an explicit
    symmetric zero padding (int, torch's convention)."""

    size: int
    stride: int
    padding: str | int

    def resolve(self, n: int, name: str) -> tuple[int, int, int]:
        """(lo, hi, n_out) for an input of length n (jax.lax.padtype_to_pads for "SAME")."""
        f, s = self.size, self.stride
        if isinstance(self.padding, int):
            lo = hi = self.padding
            n_out = (n + 2 * lo - f) // s + 1
        elif self.padding == "VALID":
            lo = hi = 0
            n_out = (n - f) // s + 1
        else:
            n_out = -(-n // s)
            total = max((n_out - 1) * s + f - n, 0)
            lo, hi = total // 2, total - total // 2
        if n_out < 1:
            raise ValueError(f"{name}: window {f} (stride {s}, padding {self.padding!r}) does not fit a spatial "
                             f"dimension of size {n}")
        return lo, hi, n_out


def _wrap(mat: torch.Tensor, axes: Sequence[int], lo: int, hi: int) -> torch.Tensor:
    """Periodic padding of ``axes`` by (lo, hi) (numpy.pad mode "wrap")."""
    n = mat.shape[axes[0]]
    idx = torch.arange(-lo, n + hi, device=mat.device) % n
    for axis in axes:
        mat = mat.index_select(axis, idx)
    return mat


def _window_sum(mat: torch.Tensor, axes: Sequence[int], f: int, s: int, lo: int, n_out: int) -> torch.Tensor:
    """sum_p mat[s i + p - lo] over offsets p < f, the same offset on every axis in ``axes`` (out-of-range
    indices are zero padding)."""
    n = mat.shape[axes[0]]
    ranges = []
    for p in range(f):
        i0 = max(0, -((p - lo) // s))
        i1 = min(n_out, (n - 1 - p + lo) // s + 1)
        if i1 > i0:
            ranges.append((i0, i1, slice(s * i0 + p - lo, s * (i1 - 1) + p - lo + 1, s)))
    # Start from an offset that covers every output (saves a pass over zeros), else from zeros.
    full = next((r for r in ranges if r[1] - r[0] == n_out), None)
    if full is not None:
        ranges.remove(full)
        src_idx = [slice(None)] * mat.ndim
        for axis in axes:
            src_idx[axis] = full[2]
        out = mat[tuple(src_idx)].clone()
    else:
        shape = list(mat.shape)
        for axis in axes:
            shape[axis] = n_out
        out = mat.new_zeros(shape)
    for i0, i1, src in ranges:
        dst_idx, src_idx = [slice(None)] * mat.ndim, [slice(None)] * mat.ndim
        for axis in axes:
            dst_idx[axis], src_idx[axis] = slice(i0, i1), src
        out[tuple(dst_idx)] += mat[tuple(src_idx)]
    return out


def _window_counts(n: int, f: int, s: int, lo: int, n_out: int) -> list[int]:
    """Number of in-range offsets of each output position (the effective window at the edges)."""
    return [sum(1 for p in range(f) if 0 <= s * i + p - lo < n) for i in range(n_out)]


def _conv_kernel(mat: torch.Tensor, batch_ndim: int, windows: Sequence[_Window], name: str,
                 diag: bool = False) -> torch.Tensor:
    """Filter sum of a (batch, *X, *X) covariance; divided by the filter size (done by the caller, fused with
    the weight variance) it is the covariance of a shared-weight convolution's outputs per unit weight variance
    (Novak et al. (2019), eq. 7; neural-tangents' ``_conv_kernel_full_spatial_shared``, which convolves each
    position pair with the diagonal filter diag(1/f))."""
    d = len(windows)
    for i, window in enumerate(windows):
        axes = (batch_ndim + i,) if diag else (batch_ndim + i, batch_ndim + d + i)
        lo, hi, n_out = window.resolve(mat.shape[axes[0]], name)
        if window.padding == "CIRCULAR":
            mat = _wrap(mat, axes, lo, hi)
            lo = 0
        mat = _window_sum(mat, axes, window.size, window.stride, lo, n_out)
    return mat


def _pool_kernel(mat: torch.Tensor, batch_ndim: int, windows: Sequence[_Window], normalize_edges: bool,
                 name: str) -> torch.Tensor:
    """Average pooling of a (batch, *X, *X) covariance: independent windows on the two positions, divided by
    the window size (or, with ``normalize_edges`` and "SAME", by the in-range part of the window)."""
    d = len(windows)
    for i, window in enumerate(windows):
        for axis in (batch_ndim + i, batch_ndim + d + i):
            n = mat.shape[axis]
            lo, hi, n_out = window.resolve(n, name)
            if window.padding == "CIRCULAR":
                mat = _wrap(mat, (axis,), lo, hi)
                n, lo = n + lo + hi, 0
            mat = _window_sum(mat, (axis,), window.size, window.stride, lo, n_out)
            if normalize_edges and window.padding == "SAME":
                counts = torch.tensor(_window_counts(n, window.size, window.stride, lo, n_out), dtype=mat.dtype,
                                      device=mat.device)
                view = [1] * mat.ndim
                view[axis] = n_out
                mat = mat / counts.reshape(view)
            else:
                mat = mat * (1.0 / window.size)
    return mat


# ----------------------------------------------------------------------------------------------------- layer
Build = Callable[[Any, torch.Generator, torch.dtype], tuple[nn.Module, Any]]


class Layer:
    """A network (or one layer of it): infinite-width ``kernel_fn`` and finite-width ``module``.

    Compose with :func:`serial` and :func:`parallel`. ``kernel_fn(x1, x2=None, dtype=np.float64)``:
    x1 ``(n1, D)``, ``(n1, C, L)`` or ``(n1, C, H, W)`` (numpy or torch; a torch tensor's device is used, CUDA
    included); x2 the same per-input shape with n2 rows, or None (= x1, and only half of the tiles are computed).
    Returns :class:`Kernel` with ``nngp`` and ``ntk`` as ``(n1, n2)`` numpy float64 (computed in ``dtype``:
    ``np.float64`` or ``np.float32``). The network must end without spatial dimensions (``Flatten``,
    ``GlobalAvgPool`` or an MLP), as the returned kernel is per output channel.
    ``module(in_shape, seed=0, dtype=torch.float64)``: the finite network for inputs of per-input shape
    ``in_shape`` (``(D,)``, ``(C, L)`` or ``(C, H, W)``, no batch axis), parameters drawn from ``seed``.
    """

    def __init__(self, name: str, kernel: Callable[[Any], Any], build: Build, branches: int = 1,
                 full: bool = False) -> None:
        self.name = name
        self._kernel = kernel
        self._build = build
        self._branches = branches
        # Some layer mixes positions (pooling, attention), so the full position-position covariance is needed;
        # otherwise (convolutions, dense layers, activations, LayerNorm, Flatten) only the same-position
        # entries K[s, s] ever reach the output: a shared-weight convolution's K_out[s, s] is the filter average
        # of K_in[s + p, s + p] (Novak et al. (2019), sec. 3.1; neural-tangents' ``diagonal_spatial``).
        self._full = full

    def __repr__(self) -> str:
        return self.name

    # -- finite network
    def module(self, in_shape: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
        """The finite-width network (parameters drawn from ``seed``; see the layer constructors for the
        parameterization). Input ``(N, *in_shape)``, output ``(N, *out_shape)``."""
        try:
            shape = tuple(int(v) for v in in_shape)
        except (TypeError, ValueError):
            raise ValueError(f"in_shape must be a sequence of positive ints, got {in_shape!r}") from None
        if not 1 <= len(shape) <= 3 or min(shape) < 1:
            raise ValueError(f"in_shape must be (D,), (C, L) or (C, H, W) with positive sizes, got {in_shape!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        seed = positive_int(seed, "seed", minimum=0)
        net, _ = self._build(shape, torch_generator(seed), dtype)
        return net

    # -- infinite network
    def kernel_fn(self, x1: Any, x2: Any = None, dtype: Any = np.float64) -> Kernel:
        """NNGP and NTK ``(n1, n2)`` between the inputs x1 and x2 (see the class docstring)."""
        if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be np.float64 or np.float32, got {dtype!r}")
        tdtype = torch.float64 if np.dtype(dtype) == np.dtype(np.float64) else torch.float32
        device = x1.device if isinstance(x1, torch.Tensor) else torch.device("cpu")
        a = _as_input(x1, "x1", tdtype, device)
        symmetric = x2 is None
        if not symmetric:
            b = _as_input(x2, "x2", tdtype, device)
            if b.shape[1:] != a.shape[1:]:
                raise ValueError(f"x2 must have the per-input shape of x1 {tuple(a.shape[1:])}, got {tuple(b.shape)}")
            symmetric = b.shape == a.shape and bool(torch.equal(a, b))
        else:
            b = a
        n1, n2 = a.shape[0], b.shape[0]
        size = math.prod(a.shape[2:]) if a.ndim > 2 else 1
        per_pair = (4 + 2 * self._branches) * size * (size if self._full else 1) * (8 if tdtype == torch.float64
                                                                                     else 4)
        # A GPU wants few large launches: 32x the CPU's budget (1 GiB per tile), tiles one after another.
        budget = _TILE_BYTES if device.type == "cpu" else 32 * _TILE_BYTES
        tile = int(max(1, min(_MAX_TILE if device.type == "cpu" else 4 * _MAX_TILE,
                              math.isqrt(max(1, budget // per_pair)))))
        nngp = np.empty((n1, n2), dtype=np.float64)
        ntk = np.empty((n1, n2), dtype=np.float64)

        def one_tile(r0: int, c0: int) -> None:
            r1, c1 = min(n1, r0 + tile), min(n2, c0 + tile)
            same = symmetric and r0 == c0
            state = _input_state(a[r0:r1], None if same else b[c0:c1], not self._full)
            out = self._kernel(state)
            k, t = _readout(out)
            nngp[r0:r1, c0:c1] = k
            ntk[r0:r1, c0:c1] = t
            if symmetric and c0 < r0:
                nngp[c0:c1, r0:r1] = k.T
                ntk[c0:c1, r0:r1] = t.T

        tiles = [(r0, c0) for r0 in range(0, n1, tile) for c0 in range(0, r0 + 1 if symmetric else n2, tile)]
        if device.type == "cpu":
            _run_tiles(one_tile, tiles)
        else:
            for r0, c0 in tiles:
                one_tile(r0, c0)
        if symmetric:  # exactly symmetric diagonal tiles: the lower triangle wins, as in kernels.mlp
            nngp = np.tril(nngp) + np.tril(nngp, -1).T
            ntk = np.tril(ntk) + np.tril(ntk, -1).T
        return Kernel(nngp=nngp, ntk=ntk)

    def __call__(self, x1: Any, x2: Any = None, dtype: Any = np.float64) -> Kernel:
        return self.kernel_fn(x1, x2, dtype)


def _as_input(x: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device=device, dtype=dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if not 2 <= t.ndim <= 4:
        raise ValueError(f"{name} must have shape (N, D), (N, C, L) or (N, C, H, W), got {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t.contiguous()


def _input_state(x1: torch.Tensor, x2: torch.Tensor | None, diag: bool = False) -> _State:
    """Input covariances sum_c x[c, s] x'[c, s'] / C (neural-tangents' ``_inputs_to_kernel``); ``diag``: s = s'
    only."""
    c = x1.shape[1]
    spatial = tuple(x1.shape[2:])
    f1 = x1.reshape(x1.shape[0], c, -1)
    if diag and spatial:
        cov1 = (f1 * f1).sum(1) / c
        if x2 is None:
            nngp, cov2 = torch.einsum("acs,bcs->abs", f1, f1) / c, None
        else:
            f2 = x2.reshape(x2.shape[0], c, -1)
            nngp, cov2 = torch.einsum("acs,bcs->abs", f1, f2) / c, (f2 * f2).sum(1) / c
        t1, t2 = nngp.shape[:2]
        return _State(nngp=nngp.reshape(t1, t2, *spatial), ntk=None, cov1=cov1.reshape(t1, *spatial),
                      cov2=None if cov2 is None else cov2.reshape(t2, *spatial), shape=tuple(x1.shape[1:]),
                      gaussian=False, diag=True).pin()
    cov1 = torch.einsum("acs,act->ast", f1, f1) / c
    if x2 is None:
        nngp, cov2 = torch.einsum("acs,bct->abst", f1, f1) / c, None
    else:
        f2 = x2.reshape(x2.shape[0], c, -1)
        nngp = torch.einsum("acs,bct->abst", f1, f2) / c
        cov2 = torch.einsum("acs,act->ast", f2, f2) / c
    t1, t2 = nngp.shape[:2]
    state = _State(nngp=nngp.reshape(t1, t2, *spatial, *spatial), ntk=None,
                   cov1=cov1.reshape(t1, *spatial, *spatial),
                   cov2=None if cov2 is None else cov2.reshape(t2, *spatial, *spatial),
                   shape=tuple(x1.shape[1:]), gaussian=False)
    return state.pin()


def _readout(state: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(state, list):
        raise ValueError(f"the network ends with {len(state)} branches; join them with FanInSum()")
    if state.spatial:
        raise ValueError(f"the network's output has spatial shape {state.spatial}; end it with Flatten() or "
                         "GlobalAvgPool() (and a Dense readout) to get (n1, n2) kernels")
    nngp = state.nngp.detach().to("cpu", torch.float64).numpy()
    ntk = np.zeros_like(nngp) if state.ntk is None else state.ntk.detach().to("cpu", torch.float64).numpy()
    return nngp, ntk


def _single(state: Any, name: str) -> _State:
    if isinstance(state, list):
        raise ValueError(f"{name} takes one input but got {len(state)} branches; join them with FanInSum()")
    return state


# ------------------------------------------------------------------------------------------------ combinators
class _Serial(nn.Sequential):
    pass


class _Parallel(nn.ModuleList):
    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m(x) for m, x in zip(self, xs, strict=True)]


class _FanOut(nn.Module):
    def __init__(self, num: int) -> None:
        super().__init__()
        self.num = num

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x] * self.num


class _FanInSum(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


def serial(*layers: Layer) -> Layer:
    """Layers applied one after the other (neural-tangents' ``stax.serial``)."""
    _check_layers(layers, "serial")

    def kernel(state: Any) -> Any:
        for layer in layers:
            state = layer._kernel(state)
        return state

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        modules = []
        for layer in layers:
            module, shape = layer._build(shape, gen, dtype)
            modules.append(module)
        return _Serial(*modules), shape

    branches = max([layer._branches for layer in layers], default=1)
    return Layer(f"serial({', '.join(map(repr, layers))})", kernel, build, branches,
                 any(layer._full for layer in layers))


def parallel(*layers: Layer) -> Layer:
    """Layer i applied to input i of a list of inputs (neural-tangents' ``stax.parallel``), e.g. after FanOut."""
    _check_layers(layers, "parallel")

    def kernel(states: Any) -> Any:
        if not isinstance(states, list) or len(states) != len(layers):
            got = len(states) if isinstance(states, list) else 1
            raise ValueError(f"parallel of {len(layers)} layers needs {len(layers)} inputs (use FanOut), got {got}")
        return [layer._kernel(s) for layer, s in zip(layers, states, strict=True)]

    def build(shapes: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        if not isinstance(shapes, list) or len(shapes) != len(layers):
            raise ValueError(f"parallel of {len(layers)} layers needs {len(layers)} inputs (use FanOut)")
        modules, outs = [], []
        for layer, shape in zip(layers, shapes, strict=True):
            module, out = layer._build(shape, gen, dtype)
            modules.append(module)
            outs.append(out)
        return _Parallel(modules), outs

    branches = sum(layer._branches for layer in layers)
    return Layer(f"parallel({', '.join(map(repr, layers))})", kernel, build, max(branches, 1),
                 any(layer._full for layer in layers))


def _check_layers(layers: Sequence[Any], name: str) -> None:
    if not layers:
        raise ValueError(f"{name} needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"{name}: argument {i} must be a stax Layer, got {type(layer).__name__}")


def FanOut(num: int) -> Layer:  # noqa: N802 - neural-tangents' name
    """``num`` copies of the input (branches share their input's kernel)."""
    num = positive_int(num, "num")

    def kernel(state: Any) -> list[_State]:
        return [replace(_single(state, "FanOut"), shared=True)] * num

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        return _FanOut(num), [shape] * num

    return Layer(f"FanOut({num})", kernel, build, num)


def FanInSum() -> Layer:  # noqa: N802
    """Sum of the branches. They must be independent centred Gaussians (each with its own Dense/Conv/attention
    after the FanOut), so their kernels add (neural-tangents' ``FanInSum``)."""

    def kernel(states: Any) -> _State:
        if not isinstance(states, list):
            return states
        shapes = {s.shape for s in states}
        if len(shapes) != 1:
            raise ValueError(f"FanInSum needs branches of equal shape, got {sorted(shapes)}")
        if len(states) > 1 and not all(s.gaussian for s in states):
            raise ValueError("FanInSum needs every branch to end with an affine layer (Dense, Conv, attention) "
                             "so that the branches are independent centred Gaussians")
        ntks = [s.ntk for s in states if s.ntk is not None]
        out = states[0]
        return replace(out, nngp=sum(s.nngp for s in states), ntk=sum(ntks) if ntks else None,
                       cov1=sum(s.cov1 for s in states),
                       cov2=None if out.cov2 is None else sum(s.cov2 for s in states),
                       gaussian=all(s.gaussian for s in states))

    def build(shapes: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        if not isinstance(shapes, list):
            return nn.Identity(), shapes
        if len(set(shapes)) != 1:
            raise ValueError(f"FanInSum needs branches of equal shape, got {shapes}")
        return _FanInSum(), shapes[0]

    return Layer("FanInSum()", kernel, build)


def Identity() -> Layer:  # noqa: N802
    """The identity (kernels unchanged; also usable as an activation: phi(x) = x keeps Gaussianity)."""
    return Layer("Identity()", lambda state: state, lambda shape, gen, dtype: (nn.Identity(), shape))


# ----------------------------------------------------------------------------------------------- affine layers
def _check_param(parameterization: Any) -> str:
    if not isinstance(parameterization, str):
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    return one_of(parameterization.lower(), "parameterization", PARAMETERIZATIONS)


def _affine_kernel(state: _State, linear: Callable[[torch.Tensor, int], torch.Tensor], norm: float, owned: bool,
                   fan_in: int, w_var: float, b_std: float | None, standard: bool, shape: Shape) -> _State:
    """Shared rule of Dense and Conv (neural-tangents' ``Dense.kernel_fn`` / ``_Conv.kernel_fn``):
    A = norm * linear (the filter average), K <- W A(K) + B, Theta as in the module docstring.
    ``owned``: ``linear`` returns fresh tensors, which are then updated in place (fewer passes over memory)."""
    lin = state.map(linear)
    scale = w_var * norm

    def affine(m: torch.Tensor) -> torch.Tensor:
        out = m.mul_(scale) if owned else m * scale
        return out.add_(b_std**2) if b_std is not None else out

    if standard:
        # Sohl-Dickstein et al. (2020): d f / d W contributes fan_in * A(K_old), the bias gradient 1 (computed
        # before the in-place affine map overwrites A(K_old)).
        ntk = lin.nngp * (float(fan_in) * norm)
        if lin.ntk is not None:
            ntk.add_(lin.ntk, alpha=scale)
        if b_std is not None:
            ntk.add_(1.0)
        nngp = affine(lin.nngp)
    else:
        nngp = affine(lin.nngp)
        ntk = nngp.clone() if lin.ntk is None else torch.add(nngp, lin.ntk, alpha=scale)
    cov1 = affine(lin.cov1)
    cov2 = None if lin.cov2 is None else affine(lin.cov2)
    return _State(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, shape=shape, gaussian=True, diag=state.diag)


class _NTKDense(nn.Module):
    """``y = W_std / sqrt(fan_in) W x + b_std b`` with ``W, b ~ N(0, 1)`` on the channel axis (at every position):
    Dense in the NTK parameterization (Jacot, Gabriel & Hongler (2018), eq. 1; neural-tangents'
    ``stax.Dense(parameterization="ntk")``).

    One bias-free ``nn.Linear`` on the augmented input ``[W_std/sqrt(fan_in) x, b_std]``: its weight is ``[W, b]``
    (column ``fan_in`` is the bias, present unless ``b_std is None``), drawn as one ``(out_dim, fan_in + 1)``
    standard normal matrix. The forward multipliers, hence the NTK, are exactly stax's, and the whole layer is an
    ``nn.Linear`` that ``empirical_ntk``'s structured rule handles, bias included.
    """

    def __init__(self, fan_in: int, out_dim: int, W_std: float, b_std: float | None,  # noqa: N803
                 gen: torch.Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.fan_in = fan_in
        self.input_scale = W_std / math.sqrt(fan_in)
        self.b_std = b_std
        columns = fan_in + (0 if b_std is None else 1)
        # Built in the default dtype and then cast, as `nn.Linear(...).to(dtype)`: torch's (overwritten) default
        # init then advances the global generator exactly as a plain torch layer of this shape does.
        self.linear = nn.Linear(columns, out_dim, bias=False).to(dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(out_dim, columns, generator=gen, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x if x.ndim == 2 else x.movedim(1, -1)) * self.input_scale
        if self.b_std is not None:
            z = torch.cat([z, torch.full((*z.shape[:-1], 1), self.b_std, dtype=z.dtype, device=z.device)], dim=-1)
        y = self.linear(z)
        return y if x.ndim == 2 else y.movedim(-1, 1)

    def weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stax parameters: ``W`` ``(out_dim, fan_in)`` and ``b`` ``(out_dim,)`` (None without bias)."""
        weight = self.linear.weight
        if self.b_std is None:
            return weight, None
        return weight[:, : self.fan_in], weight[:, self.fan_in]


class _StandardDense(nn.Module):
    """``y = W x + b`` with ``W ~ N(0, W_std^2 / fan_in)``, ``b ~ N(0, b_std^2)`` on the channel axis (at every
    position): Dense in the standard parameterization (Sohl-Dickstein, Novak, Schoenholz & Lee (2020)).

    The product is an ``nn.Linear`` (no bias) so that ``empirical_ntk``'s structured rule for linear layers
    applies to it; the bias is a separate parameter. W is drawn before b."""

    def __init__(self, fan_in: int, out_dim: int, W_std: float, b_std: float | None,  # noqa: N803
                 gen: torch.Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.linear = nn.Linear(fan_in, out_dim, bias=False, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(out_dim, fan_in, generator=gen, dtype=dtype)
                                     * (W_std / math.sqrt(fan_in)))
        self.bias = None if b_std is None else nn.Parameter(torch.randn(out_dim, generator=gen, dtype=dtype) * b_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x) if x.ndim == 2 else self.linear(x.movedim(1, -1)).movedim(-1, 1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, *([1] * (x.ndim - 2)))
        return y


def Dense(  # noqa: N802
    out_dim: int,
    W_std: float = 1.0,  # noqa: N803
    b_std: float | None = None,
    parameterization: str = "ntk",
) -> Layer:
    """Fully connected layer on the channel axis (axis 1; at every position for spatial inputs).

    ``parameterization="ntk"``: W, b ~ N(0, 1) and y = W_std / sqrt(fan_in) W x + b_std b (Jacot et al. 2018);
    ``"standard"``: W ~ N(0, W_std^2 / fan_in), b ~ N(0, b_std^2) and y = W x + b (Sohl-Dickstein et al. 2020),
    whose NTK depends on the widths (fan_in = the input's channel count). ``b_std=None``: no bias.
    """
    out_dim = positive_int(out_dim, "out_dim")
    w_std = positive_float(W_std, "W_std", allow_zero=True)
    b = None if b_std is None else positive_float(b_std, "b_std", allow_zero=True)
    param = _check_param(parameterization)
    standard = param == "standard"

    def kernel(state: Any) -> _State:
        state = _single(state, "Dense")
        fan_in = state.shape[0]
        return _affine_kernel(state, lambda m, nb: m, 1.0, False, fan_in, w_std**2, b, standard,
                              (out_dim, *state.spatial))

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        fan_in = shape[0]
        module = (_StandardDense if standard else _NTKDense)(fan_in, out_dim, w_std, b, gen, dtype)
        return module, (out_dim, *shape[1:])

    return Layer(f"Dense({out_dim}, W_std={w_std}, b_std={b}, parameterization={param!r})", kernel, build)


def _pad_input(x: torch.Tensor, windows: Sequence[_Window], name: str) -> tuple[torch.Tensor, list[int]]:
    """Pad a (N, C, *X) batch for a VALID conv/pool as the window spec says; returns it and the output sizes."""
    pads: list[int] = []
    outs = []
    circular = False
    for window, n in zip(windows, x.shape[2:], strict=True):
        lo, hi, n_out = window.resolve(n, name)
        outs.append(n_out)
        if window.padding == "CIRCULAR":
            circular = True
        # keep exactly what the windows read: the trailing pad may be more than needed for torch's floor
        used = (n_out - 1) * window.stride + window.size
        hi = used - n - lo
        pads = [lo, hi] + pads  # F.pad lists the last dimension first
    if circular:
        # numpy-style wrap padding (any amount), one dimension at a time
        d = len(windows)
        for i in range(d):
            lo, hi = pads[2 * (d - 1 - i)], pads[2 * (d - 1 - i) + 1]
            x = _wrap(x, (2 + i,), lo, max(hi, 0))
            if hi < 0:
                x = x.narrow(2 + i, 0, x.shape[2 + i] + hi)
        return x, outs
    return F.pad(x, pads), outs


class _ConvModule(nn.Module):
    """Explicit padding, then an ``nn.Conv1d``/``nn.Conv2d`` (VALID, no bias: ``empirical_ntk``'s structured rule
    applies to it) times ``scale``, plus ``b_scale`` b."""

    def __init__(self, in_chan: int, out_chan: int, windows: Sequence[_Window], scale: float, b_scale: float | None,
                 gen: torch.Generator, dtype: torch.dtype, w_init: float, b_init: float) -> None:
        super().__init__()
        filt = tuple(w.size for w in windows)
        conv = nn.Conv1d if len(windows) == 1 else nn.Conv2d
        self.conv = conv(in_chan, out_chan, filt, stride=tuple(w.stride for w in windows), bias=False, dtype=dtype)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(out_chan, in_chan, *filt, generator=gen, dtype=dtype) * w_init)
        self.bias = None if b_scale is None else nn.Parameter(torch.randn(out_chan, generator=gen, dtype=dtype)
                                                              * b_init)
        self.windows, self.scale, self.b_scale = list(windows), scale, b_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = _pad_input(x, self.windows, "Conv")
        y = self.conv(x) * self.scale
        if self.bias is not None:
            y = y + (self.b_scale * self.bias).reshape(1, -1, *([1] * len(self.windows)))
        return y


def _windows(filter_shape: Any, strides: Any, padding: Any, name: str) -> list[_Window]:
    try:
        filt = tuple(positive_int(v, f"{name} filter/window shape") for v in filter_shape)
    except TypeError:
        raise ValueError(f"{name}: the filter/window shape must be a tuple of 1 or 2 positive ints, "
                         f"got {filter_shape!r}") from None
    if len(filt) not in (1, 2):
        raise ValueError(f"{name}: 1-D or 2-D windows only, got shape {filter_shape!r}")
    if strides is None:
        stride = (1,) * len(filt)
    else:
        try:
            stride = tuple(positive_int(v, f"{name} strides") for v in strides)
        except TypeError:
            raise ValueError(f"{name}: strides must be a tuple of positive ints, got {strides!r}") from None
        if len(stride) != len(filt):
            raise ValueError(f"{name}: strides {strides!r} must have one entry per window dimension {filt}")
    if isinstance(padding, str):
        pad: str | int = one_of(padding.upper(), "padding", PADDINGS)
        pads = [pad] * len(filt)
    elif isinstance(padding, tuple) and padding and padding[0] == "explicit":  # from_torch: torch's zero padding
        pads = list(padding[1])
    else:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return [_Window(f, s, p) for f, s, p in zip(filt, stride, pads, strict=True)]


def _out_spatial(windows: Sequence[_Window], spatial: Shape, name: str, what: str) -> Shape:
    """Per-input output spatial shape of a windowed layer (``name``, e.g. "Conv"; ``what``: "filter" or "window")
    on inputs of per-input spatial shape ``spatial``, which needs one dimension per window dimension."""
    if len(spatial) != len(windows):
        raise ValueError(f"{name} with a {len(windows)}-D {what} needs inputs with {len(windows)} spatial "
                         f"dimension(s), got per-input spatial shape {spatial}")
    return tuple(w.resolve(n, name)[2] for w, n in zip(windows, spatial, strict=True))


def Conv(  # noqa: N802
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,  # noqa: N803
    b_std: float | None = None,
    parameterization: str = "ntk",
) -> Layer:
    """Convolution over the spatial axes of ``(N, C, L)`` (1-D filter) or ``(N, C, H, W)`` (2-D) inputs.

    padding: "VALID", "SAME" (zero padding, lo = total // 2 as ``jax.lax``) or "CIRCULAR" (periodic). Weights
    shared over positions; ``parameterization`` as :func:`Dense` with fan_in = C_in * prod(filter_shape).
    """
    out_chan = positive_int(out_chan, "out_chan")
    windows = _windows(filter_shape, strides, padding, "Conv")
    w_std = positive_float(W_std, "W_std", allow_zero=True)
    b = None if b_std is None else positive_float(b_std, "b_std", allow_zero=True)
    param = _check_param(parameterization)
    standard = param == "standard"
    filter_size = math.prod(w.size for w in windows)

    def out_spatial(spatial: Shape) -> Shape:
        return _out_spatial(windows, spatial, "Conv", "filter")

    def kernel(state: Any) -> _State:
        state = _single(state, "Conv")
        spatial = out_spatial(state.spatial)
        fan_in = state.shape[0] * filter_size
        return _affine_kernel(state, lambda m, nb: _conv_kernel(m, nb, windows, "Conv", state.diag),
                              1.0 / filter_size, True,
                              fan_in, w_std**2, b,
                              standard, (out_chan, *spatial))

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        spatial = out_spatial(tuple(shape[1:]))
        fan_in = shape[0] * filter_size
        if standard:
            module = _ConvModule(shape[0], out_chan, windows, 1.0, None if b is None else 1.0, gen, dtype,
                                 w_std / math.sqrt(fan_in), 0.0 if b is None else b)
        else:
            module = _ConvModule(shape[0], out_chan, windows, w_std / math.sqrt(fan_in), b, gen, dtype, 1.0, 1.0)
        return module, (out_chan, *spatial)

    desc = f"Conv({out_chan}, {tuple(w.size for w in windows)}, strides={tuple(w.stride for w in windows)}, " \
           f"padding={padding!r}, W_std={w_std}, b_std={b}, parameterization={param!r})"
    return Layer(desc, kernel, build)


# ----------------------------------------------------------------------------------------------------- pooling
class _AvgPoolModule(nn.Module):
    def __init__(self, windows: Sequence[_Window], normalize_edges: bool) -> None:
        super().__init__()
        self.windows, self.normalize_edges = list(windows), normalize_edges

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.avg_pool1d if len(self.windows) == 1 else F.avg_pool2d
        size = tuple(w.size for w in self.windows)
        stride = tuple(w.stride for w in self.windows)
        padded, _ = _pad_input(x, self.windows, "AvgPool")
        out = pool(padded, size, stride)
        if self.normalize_edges and any(w.padding == "SAME" for w in self.windows):
            ones, _ = _pad_input(torch.ones_like(x[:1, :1]), self.windows, "AvgPool")
            out = out / pool(ones, size, stride)
        return out


def AvgPool(  # noqa: N802
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    normalize_edges: bool = False,
) -> Layer:
    """Average pooling over windows of the spatial axes (stride 1 by default, as neural-tangents).

    "SAME" zero-pads and divides by the full window size unless ``normalize_edges`` (then by the in-range part);
    "CIRCULAR" pads periodically.
    """
    windows = _windows(window_shape, strides, padding, "AvgPool")
    normalize_edges = bool(normalize_edges)

    def out_spatial(spatial: Shape) -> Shape:
        return _out_spatial(windows, spatial, "AvgPool", "window")

    def kernel(state: Any) -> _State:
        state = _single(state, "AvgPool")
        spatial = out_spatial(state.spatial)
        out = state.map(lambda m, nb: _pool_kernel(m, nb, windows, normalize_edges, "AvgPool"))
        return replace(out, shape=(state.shape[0], *spatial))

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        return _AvgPoolModule(windows, normalize_edges), (shape[0], *out_spatial(tuple(shape[1:])))

    return Layer(f"AvgPool({tuple(w.size for w in windows)}, padding={padding!r})", kernel, build, full=True)


class _GlobalAvgPoolModule(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x


def GlobalAvgPool() -> Layer:  # noqa: N802
    """Mean over all spatial positions: ``(N, C, *X) -> (N, C)``."""

    def kernel(state: Any) -> _State:
        state = _single(state, "GlobalAvgPool")
        d = len(state.spatial)
        if d == 0:
            return state
        out = state.map(lambda m, nb: m.mean(dim=tuple(range(nb, nb + 2 * d))))
        return replace(out, shape=(state.shape[0],))

    return Layer("GlobalAvgPool()", kernel, lambda shape, gen, dtype: (_GlobalAvgPoolModule(), (shape[0],)),
                 full=True)


class _FlattenModule(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def Flatten() -> Layer:  # noqa: N802
    """All non-batch axes flattened into one feature axis: ``(N, C, *X) -> (N, C prod(X))``."""

    def kernel(state: Any) -> _State:
        state = _single(state, "Flatten")
        d = len(state.spatial)
        size = math.prod(state.spatial)

        def trace(m: torch.Tensor, nb: int) -> torch.Tensor:
            if d == 0:
                return m
            if state.diag:
                return m.reshape(*m.shape[:nb], size).mean(-1)
            return m.reshape(*m.shape[:nb], size, size).diagonal(dim1=-2, dim2=-1).mean(-1)

        out = state.map(trace)
        return replace(out, shape=(math.prod(state.shape),), gaussian=False)

    return Layer("Flatten()", kernel, lambda shape, gen, dtype: (_FlattenModule(), (math.prod(shape),)))


# -------------------------------------------------------------------------------------------------- LayerNorm
class _LayerNormModule(nn.Module):
    def __init__(self, axes: tuple[int, ...], eps: float, gain: int = 0, bias: bool = False,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.axes, self.eps = axes, eps
        # torch's elementwise affine (gain 1, bias 0 at init), per channel; only built by from_torch
        self.weight = nn.Parameter(torch.ones(gain, dtype=dtype)) if gain else None
        self.bias = nn.Parameter(torch.zeros(gain, dtype=dtype)) if gain and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=self.axes, keepdim=True)
        var = x.var(dim=self.axes, keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(self.eps + var)
        view = (1, -1, *([1] * (x.ndim - 2)))
        if self.weight is not None:
            y = y * self.weight.reshape(view)
        if self.bias is not None:
            y = y + self.bias.reshape(view)
        return y


def LayerNorm(axis: int | Sequence[int] = 1, eps: float = 1e-12) -> Layer:  # noqa: N802
    """Layer normalisation (x - mean) / sqrt(eps + var) over ``axis`` (channels-first axes of the batch: 1 is the
    channel axis and must be included; 2, 3 spatial). Needs a Gaussian input (right after Dense/Conv).

    Infinite width (neural-tangents' ``LayerNorm``): the mean vanishes and the variance concentrates, so
    K(x, x')[s, s'] and Theta are divided by sqrt((eps + v(x)[s]) (eps + v(x')[s'])), v the variance averaged
    over the normalised spatial axes.
    """
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    try:
        axes = tuple(sorted({int(a) for a in axes}))
    except (TypeError, ValueError):
        raise ValueError(f"axis must be an int or a tuple of ints, got {axis!r}") from None
    if 1 not in axes or min(axes) < 1 or max(axes) > 3:
        raise ValueError(f"axis must include the channel axis 1 and otherwise spatial axes 2, 3; got {axis!r}")
    eps = positive_float(eps, "eps", allow_zero=True)

    def kernel(state: Any) -> _State:
        state = _single(state, "LayerNorm")
        d = len(state.spatial)
        if max(axes) > 1 + d:
            raise ValueError(f"LayerNorm axis {axis!r} out of range for per-input shape {state.shape}")
        if not state.gaussian:
            raise ValueError("LayerNorm needs a Gaussian input: put it right after Dense/Conv/attention")
        spatial_axes = tuple(a - 1 for a in axes if a > 1)  # axes of the (t, *X) diagonal

        def norm(cov: torch.Tensor) -> torch.Tensor:
            v = _spatial_diag(cov + eps, d, state.diag)
            return v.mean(dim=spatial_axes, keepdim=True) if spatial_axes else v

        v1 = norm(state.cov1)
        v2 = v1 if state.cov2 is None else norm(state.cov2)
        if state.diag:
            denom12 = torch.sqrt(v1.unsqueeze(1) * v2.unsqueeze(0))
        else:
            denom12 = torch.sqrt(_q(v1, 0, True, d) * _q(v2, 1, False, d))

        def self_denom(v: torch.Tensor) -> torch.Tensor:
            if state.diag:
                return torch.sqrt(v * v)
            t, ones = v.shape[0], (1,) * d
            return torch.sqrt(v.reshape(t, *v.shape[1:], *ones) * v.reshape(t, *ones, *v.shape[1:]))

        return replace(state, nngp=state.nngp / denom12, ntk=None if state.ntk is None else state.ntk / denom12,
                       cov1=state.cov1 / self_denom(v1),
                       cov2=None if state.cov2 is None else state.cov2 / self_denom(v2)).pin()

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        if max(axes) > len(shape):
            raise ValueError(f"LayerNorm axis {axis!r} out of range for per-input shape {shape}")
        return _LayerNormModule(axes, eps), shape

    return Layer(f"LayerNorm(axis={axis!r}, eps={eps})", kernel, build)


def _affine_layernorm(eps: float, weight: bool, bias: bool) -> Layer:
    """torch's ``nn.LayerNorm(D, elementwise_affine=True)`` on ``(N, D)`` activations (gain 1, bias 0 at init).

    NNGP as :func:`LayerNorm`; the NTK gains the gradients of the per-channel gain gamma_c (d y_c / d gamma_c =
    normalised z_c, whose covariance is the normalised kernel K) and bias beta_c (1): Theta <- Theta + K + 1
    (the parameter-wise sum of the NTK, Jacot et al. (2018), eq. 2, for parameters acting on one channel each).
    """
    base = LayerNorm(1, eps)

    def kernel(state: Any) -> _State:
        out = base._kernel(state)
        extra = (out.nngp if weight else 0.0) + (1.0 if bias else 0.0)
        return replace(out, ntk=extra + (0.0 if out.ntk is None else out.ntk))

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        return _LayerNormModule((1,), eps, shape[0] if weight else 0, bias, dtype), shape

    return Layer(f"LayerNorm(eps={eps}, elementwise_affine=True)", kernel, build)


def _flat_only(layer: Layer, what: str) -> Layer:
    """``layer`` restricted to (N, D) activations (torch's Linear/LayerNorm act on the last axis, which is the
    channel axis only then)."""

    def kernel(state: Any) -> Any:
        if not isinstance(state, list) and state.spatial:
            raise ValueError(f"{what} acts on the last axis of a (N, C, ...) tensor, which is not its channel axis; "
                             f"from_torch describes it only on (N, D) activations, got per-input shape {state.shape}")
        return layer._kernel(state)

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        if isinstance(shape, tuple) and len(shape) != 1:
            raise ValueError(f"{what} is described only on (N, D) activations, got per-input shape {shape}")
        return layer._build(shape, gen, dtype)

    return Layer(layer.name, kernel, build, layer._branches, layer._full)


# ------------------------------------------------------------------------------------------------ activations
class _ActModule(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _activation(name: str, dual: DualMap, fn: Callable[[torch.Tensor], torch.Tensor], scale_in: float = 1.0,
                scale_out: float = 1.0, shift: float = 0.0) -> Layer:
    """phi(x) = scale_out * g(scale_in * x) + shift with g's dual map ``dual``: for u ~ N(0, q),
    E[phi phi] = scale_out^2 E[g g](scale_in^2 q, scale_in^2 c) + shift^2 (E[g] = 0 for the odd g used with a
    shift, erf) and E[phi' phi'] = scale_out^2 scale_in^2 E[g' g']."""
    a2, b2 = scale_out**2, scale_in**2
    tiny = math.sqrt(np.finfo(np.float64).tiny)

    def apply(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # Variances are clamped so that a zero input (b_std = 0) gives correlation 0, not NaN, as kernels.mlp.
        q1, q2 = q1.clamp(min=tiny), q2.clamp(min=tiny)
        if b2 != 1.0:
            c, q1, q2 = c * b2, q1 * b2, q2 * b2
        elif shared:
            c = c.clone()  # the numpy maps overwrite their first argument
        nngp, dot = dual(c, q1, q2)
        if a2 != 1.0 or shift != 0.0:
            nngp = a2 * nngp + shift**2
        if a2 * b2 != 1.0:
            dot = dot * (a2 * b2)
        return nngp, dot

    def kernel(state: Any) -> _State:
        state = _single(state, name)
        if not state.gaussian:
            raise ValueError(f"{name} needs a Gaussian input: put an affine layer (Dense, Conv, attention) before it")
        state = state.pin()
        d = len(state.spatial)
        q1 = _spatial_diag(state.cov1, d, state.diag)
        q2 = q1 if state.cov2 is None else _spatial_diag(state.cov2, d, state.diag)
        # One spatial axis per input (t1, t2, S, S): numpy broadcasts 4-D operands ~3x faster than 6-D (measured).
        t1, t2, size = state.nngp.shape[0], state.nngp.shape[1], math.prod(state.spatial)
        if state.diag:  # (t1, t2, 1, S): same position on both sides
            nngp, dot = apply(state.nngp.reshape(t1, t2, 1, size), q1.reshape(t1, 1, 1, size),
                              q2.reshape(1, t2, 1, size), state.shared)
        else:
            nngp, dot = apply(state.nngp.reshape(t1, t2, size, size), q1.reshape(t1, 1, size, 1),
                              q2.reshape(1, t2, 1, size), state.shared)
        nngp, dot = nngp.reshape(state.nngp.shape), dot.reshape(state.nngp.shape)
        ntk = None if state.ntk is None else dot.mul_(state.ntk)

        def self_cov(cov: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            if state.diag:
                return apply(cov, q, q, True)[0]
            t, ones = q.shape[0], (1,) * d
            return apply(cov, q.reshape(t, *q.shape[1:], *ones), q.reshape(t, *ones, *q.shape[1:]), True)[0]

        cov1 = self_cov(state.cov1, q1)
        cov2 = None if state.cov2 is None else self_cov(state.cov2, q2)
        return replace(state, nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, gaussian=False, shared=False).pin()

    return Layer(name, kernel, lambda shape, gen, dtype: (_ActModule(fn), shape))


def Relu(do_stabilize: bool = False) -> Layer:  # noqa: N802
    """ReLU (arc-cosine kernels, Cho & Saul 2009). ``do_stabilize`` is accepted for neural-tangents
    compatibility and has no effect (its rescaling of the covariance cancels exactly)."""
    return _activation("Relu()", DualMap("relu"), torch.relu)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:  # noqa: N802
    """phi(x) = a erf(b x) + c (Williams 1997), neural-tangents' ``Erf``."""
    a, b, c = float(a), float(b), float(c)
    if not all(math.isfinite(v) for v in (a, b, c)):
        raise ValueError(f"Erf: a, b, c must be finite, got {(a, b, c)}")
    return _activation(f"Erf(a={a}, b={b}, c={c})", DualMap("erf"), lambda x: a * torch.erf(b * x) + c,
                       scale_in=b, scale_out=a, shift=c)


def Gelu(approximate: bool = False) -> Layer:  # noqa: N802
    """Exact GELU x Phi(x) (Tsuchida et al. 2021). ``approximate=True`` (tanh form) is not supported."""
    if approximate:
        raise ValueError("approximate must be False: only the exact GELU x Phi(x) has a closed-form kernel here")
    return _activation("Gelu()", DualMap("gelu"), lambda x: F.gelu(x))


def Tanh() -> Layer:  # noqa: N802
    """tanh, by the graded Gauss-Legendre quadrature of ``kernels.mlp`` (~1e-10 relative at any variance).

    Cost: that quadrature takes ~0.3 ms per covariance entry on an idle core (more under load), fine for MLPs and
    small inputs but slow for the n^2 S^2 entries of a conv net with pooling; prefer Erf/Gelu/Relu there."""
    return _activation("Tanh()", DualMap("tanh"), torch.tanh)


def Elementwise(fn: Callable[[torch.Tensor], torch.Tensor]) -> Layer:  # noqa: N802
    """Any elementwise activation (torch function for ``module``; torch or numpy for ``kernel_fn``), its kernels
    by 2-D quadrature (neural-tangents' ``ElementwiseNumerical``, but accurate to ~1e-10 at any variance; cost as
    :func:`Tanh`)."""
    if not callable(fn):
        raise ValueError(f"fn must be an elementwise callable, got {fn!r}")
    return _activation(f"Elementwise({getattr(fn, '__name__', fn)!s})", DualMap(fn), fn)


def Activation(activation: str | Callable[[torch.Tensor], torch.Tensor]) -> Layer:  # noqa: N802
    """The activation layer named in the package's one vocabulary (``kernels.analytic.ACTIVATIONS``:
    ``"relu"``, ``"erf"``, ``"gelu"`` (exact), ``"tanh"``, ``"identity"``; case-insensitive), or
    :func:`Elementwise` of a callable. What ``kernels.mlp``, ``kernels.mlp_network`` and :func:`MLP` accept."""
    activation = check_activation(activation)
    if callable(activation):
        return Elementwise(activation)
    return {"relu": Relu, "erf": Erf, "gelu": Gelu, "tanh": Tanh, "identity": Identity}[activation]()


@dataclass(frozen=True)
class MLPSpec:
    """What :func:`MLP` was given (validated): the hyperparameters that functions drawing many such networks at
    once (``kernels.finite_width.last_layer_kernels``) read from the one description."""

    hidden_layers: int
    width: int
    activation: str | Callable[[torch.Tensor], torch.Tensor]
    W_std: float  # noqa: N815 - neural-tangents' name
    b_std: float
    out_dim: int
    parameterization: str


class _MLPLayer(Layer):
    """An MLP :class:`Layer` with its :class:`MLPSpec`. In the NTK parameterization its ``kernel_fn`` on
    ``(n, D)`` inputs is ``kernels.mlp``'s closed-form recursion (the same kernels as the layer-by-layer rules to
    ~1e-12 relative, 1.7-2x faster); inside ``serial`` it composes through the layer rules like any layer."""

    def __init__(self, layer: Layer, spec: MLPSpec) -> None:
        super().__init__(layer.name, layer._kernel, layer._build, layer._branches, layer._full)
        self.spec = spec
        self._closed_form = (mlp(spec.hidden_layers, spec.activation, spec.W_std, spec.b_std)
                             if spec.parameterization == "ntk" else None)

    def kernel_fn(self, x1: Any, x2: Any = None, dtype: Any = np.float64) -> Kernel:
        """NNGP and NTK ``(n1, n2)`` between the inputs x1 and x2 (see :class:`Layer`)."""
        if self._closed_form is None or getattr(x1, "ndim", None) != 2 \
                or np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            return super().kernel_fn(x1, x2, dtype)  # its checks name a bad argument
        kern = self._closed_form(x1, x2, dtype=dtype)
        return Kernel(nngp=np.asarray(kern.nngp, dtype=np.float64), ntk=np.asarray(kern.ntk, dtype=np.float64))


def MLP(  # noqa: N802
    hidden_layers: int,
    width: int,
    activation: str | Callable[[torch.Tensor], torch.Tensor] = "relu",
    W_std: float = 1.0,  # noqa: N803
    b_std: float = 0.0,
    out_dim: int = 1,
    parameterization: str = "ntk",
) -> Layer:
    """A fully connected network: ``hidden_layers`` x (``Dense(width)``, activation), then ``Dense(out_dim)``,
    every Dense with ``W_std``, ``b_std`` and ``parameterization`` (see :func:`Dense`). The package's one
    description of an MLP: ``MLP(...).module((in_dim,), seed)`` is the finite net (``kernels.mlp_network``
    returns exactly it) and ``MLP(...).kernel_fn(x)`` its infinite-width kernels (for NTK-parameterized
    ``(n, in_dim)`` inputs by ``kernels.mlp``'s closed forms).

    ``b_std=0``: the layers have no bias parameters (in the NTK parameterization the bias terms of the kernels
    vanish, so the kernels are those of ``b_std=0``; in the standard one the NTK has no bias gradient term).
    ``activation``: see :func:`Activation`. Input ``(N, in_dim)`` (or channels-first spatial inputs, the Dense
    layers acting per position), output ``(N, out_dim)``.
    """
    hidden_layers = positive_int(hidden_layers, "hidden_layers", minimum=0)
    width = positive_int(width, "width")
    out_dim = positive_int(out_dim, "out_dim")
    W_std = positive_float(W_std, "W_std", allow_zero=True)  # noqa: N806
    b_std = positive_float(b_std, "b_std", allow_zero=True)
    spec = MLPSpec(hidden_layers, width, check_activation(activation), W_std, b_std, out_dim,
                   _check_param(parameterization))
    act = Activation(spec.activation)
    bias = None if b_std == 0.0 else b_std
    layers: list[Layer] = []
    for _ in range(hidden_layers):
        layers += [Dense(width, W_std, bias, spec.parameterization), act]
    return _MLPLayer(serial(*layers, Dense(out_dim, W_std, bias, spec.parameterization)), spec)


# -------------------------------------------------------------------------------------------------- attention
ATTENTION_MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")


def _attention_fn(mechanism: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return {"SOFTMAX": lambda g: torch.softmax(g, dim=-1), "IDENTITY": lambda g: g, "ABS": torch.abs,
            "RELU": torch.relu}[mechanism]


class _AttentionModule(nn.Module):
    """neural-tangents' ``GlobalSelfAttention.apply_fn`` with ``linear_scaling=True`` (tied keys and queries,
    dot products scaled by 1 / (C_in n_chan_key)), channels-first."""

    def __init__(self, c_in: int, n_chan_out: int, n_chan_key: int, n_chan_val: int, n_heads: int, qk_std: float,
                 ov_std: float, b_std: float | None, mechanism: str, gen: torch.Generator, dtype: torch.dtype,
                 linear_scaling: bool = True) -> None:
        super().__init__()
        self.linear_scaling = linear_scaling
        self.key = nn.Parameter(torch.randn(n_heads, c_in, n_chan_key, generator=gen, dtype=dtype))
        self.value = nn.Parameter(torch.randn(n_heads, c_in, n_chan_val, generator=gen, dtype=dtype))
        self.out = nn.Parameter(torch.randn(n_chan_val * n_heads, n_chan_out, generator=gen, dtype=dtype))
        self.bias = None if b_std is None else nn.Parameter(torch.randn(n_chan_out, generator=gen, dtype=dtype))
        # neural-tangents draws the queries last (and only without linear scaling, where they are not tied)
        self.query = None if linear_scaling else nn.Parameter(torch.randn(n_heads, c_in, n_chan_key, generator=gen,
                                                                          dtype=dtype))
        self.c_in, self.n_key, self.n_val, self.n_heads = c_in, n_chan_key, n_chan_val, n_heads
        self.qk_std, self.ov_std, self.b_std, self.fn = qk_std, ov_std, b_std, _attention_fn(mechanism)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, spatial = x.shape[0], x.shape[2:]
        seq = x.reshape(n, self.c_in, -1).transpose(1, 2)  # (n, S, C)
        keys = torch.einsum("nsc,hck->hnsk", seq, self.key)
        values = torch.einsum("nsc,hcv->hnsv", seq, self.value)
        if self.query is None:  # tied keys and queries, 1 / n_chan_key
            g = torch.matmul(keys, keys.transpose(-1, -2)) * (self.qk_std / (self.c_in * self.n_key))
        else:  # independent queries, 1 / sqrt(n_chan_key)
            queries = torch.einsum("nsc,hck->hnsk", seq, self.query)
            g = torch.matmul(queries, keys.transpose(-1, -2)) * (self.qk_std / (self.c_in * math.sqrt(self.n_key)))
        heads = torch.matmul(self.fn(g), values)  # (h, n, S, v)
        heads = heads.permute(1, 2, 3, 0).reshape(n, seq.shape[1], -1)  # neural-tangents' (v, h) order
        out = torch.matmul(heads, self.out) * (self.ov_std / math.sqrt(self.n_val * self.n_heads * self.c_in))
        if self.bias is not None:
            out = out + self.b_std * self.bias
        return out.transpose(1, 2).reshape(n, -1, *spatial)


def _sqrt_scaling_identity(state: _State, std: float, b_var: float, shape: Shape) -> _State:
    """Attention with independent queries and keys, 1/sqrt(n_chan_key) scaling and no nonlinearity
    (neural-tangents' ``GlobalSelfAttention(linear_scaling=False, attention_mechanism="IDENTITY")``; Hron et al.
    (2020), sec. 3): with D(x, x') = sum_{s, s'} K(x, x')[s, s']^2 and std = QK_std OV_std,
    K <- std^2 D K + B and Theta <- std^2 (2 <K, Theta> K + D (Theta + 4 K)) + B, <.,.> summed over positions."""

    def total(a: torch.Tensor, b: torch.Tensor, nb: int) -> torch.Tensor:
        return (a * b).reshape(*a.shape[:nb], -1).sum(-1).reshape(*a.shape[:nb], *([1] * (a.ndim - nb)))

    nngp = state.nngp
    d12 = total(nngp, nngp, 2)
    new_nngp = std**2 * d12 * nngp + b_var
    if state.ntk is None:
        new_ntk = std**2 * (d12 * 4.0 * nngp) + b_var
    else:
        new_ntk = std**2 * (2.0 * total(nngp, state.ntk, 2) * nngp + d12 * (state.ntk + 4.0 * nngp)) + b_var

    def self_cov(cov: torch.Tensor) -> torch.Tensor:
        return std**2 * total(cov, cov, 1) * cov + b_var

    return _State(nngp=new_nngp, ntk=new_ntk, cov1=self_cov(state.cov1),
                  cov2=None if state.cov2 is None else self_cov(state.cov2), shape=shape, gaussian=True).pin()


def GlobalSelfAttention(  # noqa: N802
    n_chan_out: int,
    n_chan_key: int,
    n_chan_val: int,
    n_heads: int,
    linear_scaling: bool = True,
    W_key_std: float = 1.0,  # noqa: N803
    W_value_std: float = 1.0,  # noqa: N803
    W_query_std: float = 1.0,  # noqa: N803
    W_out_std: float = 1.0,  # noqa: N803
    b_std: float | None = None,
    attention_mechanism: str = "SOFTMAX",
    pos_emb_type: str = "NONE",
) -> Layer:
    """Global self-attention over all spatial positions (neural-tangents' ``GlobalSelfAttention``; Hron, Bahri,
    Sohl-Dickstein & Novak (2020), "Infinite attention: NNGP and NTK for deep attention networks", sec. 3).

    With ``linear_scaling=True`` (the default: keys and queries tied, logits scaled by 1 / n_chan_key, so they
    converge to QK_std * K(x, x)[s, s'] with QK_std = W_query_std W_key_std), at infinite width:
    G(x) = mechanism(QK_std cov(x)) (softmax over the second position), then with OV = (W_out_std W_value_std)^2
    K(x, x') <- OV G(x) K(x, x') G(x')^T + b_std^2 and Theta <- OV G Theta G'^T + b_std^2 + 2 (K_new - b_std^2)
    (the value and output weights' gradients), exactly as neural-tangents 0.6.5 computes it.
    ``linear_scaling=False`` (independent queries, 1 / sqrt(n_chan_key)) only with ``attention_mechanism=
    "IDENTITY"``, the one case with a closed form (see ``_sqrt_scaling_identity``); there the finite network
    approaches the kernel only as n_heads grows too (the logits stay random). Positional embeddings
    (``pos_emb_type`` other than "NONE") are not implemented.
    """
    sizes = [positive_int(v, n) for v, n in ((n_chan_out, "n_chan_out"), (n_chan_key, "n_chan_key"),
                                               (n_chan_val, "n_chan_val"), (n_heads, "n_heads"))]
    if not isinstance(attention_mechanism, str):
        raise ValueError(f"attention_mechanism must be one of {ATTENTION_MECHANISMS}, got {attention_mechanism!r}")
    mechanism = one_of(attention_mechanism.upper(), "attention_mechanism", ATTENTION_MECHANISMS)
    if not isinstance(linear_scaling, bool):
        raise ValueError(f"linear_scaling must be True or False, got {linear_scaling!r}")
    if not linear_scaling and mechanism != "IDENTITY":
        raise ValueError("linear_scaling=False has a closed-form kernel only for attention_mechanism='IDENTITY' "
                         f"(as in neural-tangents), got {mechanism!r}")
    if not isinstance(pos_emb_type, str) or pos_emb_type.upper() != "NONE":
        raise ValueError(f"pos_emb_type must be 'NONE' (positional embeddings are not implemented), "
                         f"got {pos_emb_type!r}")
    stds = [positive_float(v, n, allow_zero=True) for v, n in ((W_key_std, "W_key_std"), (W_value_std, "W_value_std"),
                                                               (W_query_std, "W_query_std"), (W_out_std, "W_out_std"))]
    qk_std, ov_std = stds[2] * stds[0], stds[3] * stds[1]
    b = None if b_std is None else positive_float(b_std, "b_std", allow_zero=True)
    b_var = 0.0 if b is None else b**2
    fn = _attention_fn(mechanism)

    def kernel(state: Any) -> _State:
        state = _single(state, "GlobalSelfAttention")
        d = len(state.spatial)
        if d == 0:
            raise ValueError("GlobalSelfAttention needs inputs with spatial positions, (N, C, L) or (N, C, H, W)")
        size = math.prod(state.spatial)
        if not linear_scaling:
            return _sqrt_scaling_identity(state, qk_std * ov_std, b_var, (sizes[0], *state.spatial))

        def weights(cov: torch.Tensor) -> torch.Tensor:
            return fn(qk_std * cov.reshape(cov.shape[0], size, size))

        g1 = weights(state.cov1)
        g2 = g1 if state.cov2 is None else weights(state.cov2)

        def weigh(mat: torch.Tensor, left: torch.Tensor, right: torch.Tensor, pair: bool) -> torch.Tensor:
            if pair:
                m = mat.reshape(*mat.shape[:2], size, size)
                out = torch.einsum("ast,abtu,bvu->absv", left, m, right)
            else:
                m = mat.reshape(mat.shape[0], size, size)
                out = torch.matmul(torch.matmul(left, m), left.transpose(1, 2))
            return out.reshape(mat.shape) * ov_std**2 + b_var

        nngp = weigh(state.nngp, g1, g2, True)
        if state.ntk is None:
            ntk = 2.0 * (nngp - b_var) + b_var
        else:
            ntk = weigh(state.ntk, g1, g2, True) + 2.0 * (nngp - b_var)
        cov1 = weigh(state.cov1, g1, g1, False)
        cov2 = None if state.cov2 is None else weigh(state.cov2, g2, g2, False)
        return _State(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, shape=(sizes[0], *state.spatial),
                      gaussian=True).pin()

    def build(shape: Any, gen: torch.Generator, dtype: torch.dtype) -> tuple[nn.Module, Any]:
        if len(shape) < 2:
            raise ValueError("GlobalSelfAttention needs inputs with spatial positions, (C, L) or (C, H, W)")
        module = _AttentionModule(shape[0], sizes[0], sizes[1], sizes[2], sizes[3], qk_std, ov_std, b, mechanism,
                                  gen, dtype, linear_scaling)
        return module, (sizes[0], *shape[1:])

    return Layer(f"GlobalSelfAttention({sizes[0]}, {sizes[1]}, {sizes[2]}, {sizes[3]}, "
                 f"attention_mechanism={mechanism!r})", kernel, build, full=True)
