"""Dual activations for ``kernels.stax`` on any device.

On the CPU the kernels reuse the numpy layer maps of ``kernels.mlp`` (``_analytic_closed`` for ReLU, erf, GELU
and identity; the graded quadrature of ``_analytic_quadrature`` for tanh and any callable), on zero-copy numpy
views of the torch tensors: numpy's SIMD transcendentals are ~15x faster than torch's on this CPU (measured, see
``_analytic_closed``). On other devices (CUDA) the closed forms below are the same formulas written with torch
ops, so the tensors never leave the device; quadrature activations are evaluated on the CPU and copied back.

Every ``pair(c, q1, q2)`` returns (E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for centred Gaussians (u, v) with
variances q1, q2 and covariance c, elementwise after broadcasting (c may be overwritten).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .analytic import _layer_maps

_TWO_PI = 2.0 * math.pi
_CHUNK = 1 << 15  # entries per chunk of the numpy maps: a few 256 KiB buffers, within L2
TorchPair = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _relu_torch(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cho & Saul (2009), sec. 2: arc-cosine kernels J_1 (value) and J_0 (derivative)."""
    scale = torch.sqrt(q1 * q2)
    rho = (c / scale).clamp(-1.0, 1.0)
    sin_t = torch.sqrt(1.0 - rho * rho)
    pi_minus_t = math.pi - torch.arccos(rho)
    return scale * (sin_t + pi_minus_t * rho) / _TWO_PI, pi_minus_t / _TWO_PI


def _erf_torch(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Williams (1997): 2/pi arcsin(2c / sqrt((1 + 2 q1)(1 + 2 q2))) and its c-derivative (Price's theorem)."""
    denom = torch.sqrt((1.0 + 2.0 * q1) * (1.0 + 2.0 * q2))
    ratio = (2.0 * c / denom).clamp(-1.0, 1.0)
    return (2.0 / math.pi) * torch.arcsin(ratio), (4.0 / math.pi) / (torch.sqrt(1.0 - ratio * ratio) * denom)


def _gelu_torch(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tsuchida et al. (2021) in neural-tangents' form (see ``_analytic_closed.gelu_pair``)."""
    prod = q1 * q2
    s = torch.sqrt(prod)
    inv1, inv2 = 1.0 / (1.0 + q1), 1.0 / (1.0 + q2)
    delta_sq = (s - c).clamp(min=0.0) * (s + c) + (1.0 + q1 + q2)
    delta = torch.sqrt(delta_sq)
    angle = torch.arctan2(c, delta)
    nngp = 0.25 * c + (c * angle + (prod * delta_sq + c * c) / delta * inv1 * inv2) / _TWO_PI
    dot = 0.25 + (angle + c / delta * (1.0 / delta_sq + inv1 + inv2)) / _TWO_PI
    return nngp, dot


def _identity_torch(c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return c, torch.ones_like(c)


_TORCH_PAIRS: dict[str, TorchPair] = {"relu": _relu_torch, "erf": _erf_torch, "gelu": _gelu_torch,
                                      "identity": _identity_torch}


class DualMap:
    """(E[phi phi], E[phi' phi']) of one activation, on the device of its arguments."""

    def __init__(self, activation: str | Callable) -> None:
        self.numpy_pair, _ = _layer_maps(activation)
        self.torch_pair = _TORCH_PAIRS.get(activation) if isinstance(activation, str) else None

    def __call__(self, c: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if c.device.type != "cpu" and self.torch_pair is not None:
            return self.torch_pair(c, q1, q2)
        device = c.device
        c_np = c.detach().cpu().contiguous().numpy()
        q1_np, q2_np = q1.detach().cpu().numpy(), q2.detach().cpu().numpy()
        if c_np.ndim != 4 or c_np.size <= _CHUNK:
            nngp, dot = self.numpy_pair(c_np, q1_np, q2_np)
            return _as_tensor(nngp, c_np.shape, device), _as_tensor(dot, c_np.shape, device)
        # (t1, t2, S, S) blocks with q1 (t1, 1, S, 1) and q2 (1, t2, 1, S): run the map on cache-sized chunks
        # (about _CHUNK entries), whose dozen elementwise passes then stay in L2 instead of streaming the whole
        # block from memory a dozen times (measured ~3x faster). The result overwrites c, as the maps may.
        t1, t2, s1, s2 = c_np.shape
        rows = max(1, _CHUNK // (t2 * s1 * s2))  # whole rows per chunk when they are short (MLPs, diagonal mode)
        step = t2 if rows > 1 else max(1, _CHUNK // (s1 * s2))
        dot_np = np.empty_like(c_np)
        for i0 in range(0, t1, rows):
            i1 = min(t1, i0 + rows)
            for j0 in range(0, t2, step):
                j1 = min(t2, j0 + step)
                chunk = c_np[i0:i1, j0:j1]
                nngp, dot = self.numpy_pair(chunk, q1_np[i0:i1], q2_np[:, j0:j1])
                if nngp is not chunk:  # the closed forms return their scratch argument; others a new array
                    chunk[...] = nngp
                dot_np[i0:i1, j0:j1] = dot
        return torch.from_numpy(c_np).to(device), torch.from_numpy(dot_np).to(device)


def _as_tensor(value: np.ndarray, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A writable tensor of ``shape`` (the numpy maps may return a broadcastable or read-only array)."""
    value = np.asarray(value)
    if value.shape != shape or not value.flags.writeable or not value.flags.c_contiguous:
        value = np.array(np.broadcast_to(value, shape))
    return torch.from_numpy(value).to(device)
