"""The exact Bayesian posterior of a *finite*-width MLP, to compare with the NNGP posterior it tends to.

Given its hidden layers, the readout of an MLP in the NTK parameterization, ``f = W_std/sqrt(n) phi W + b_std b``
with ``W, b ~ N(0, 1)``, is exactly Gaussian with covariance ``K_hat = W_std^2 phi phi^T / n + b_std^2`` (the
last-layer kernel of that draw, ``phi`` the last hidden layer's activations). So the prior over functions of a
width-``n`` network is a *mixture* of Gaussian processes over the random ``K_hat`` (Aitchison 2020, Sec. 2;
Zavatone-Veth & Pehlevan 2021, eq. 3), which becomes the single NNGP ``K`` only as ``n -> inf`` (Neal 1996;
Lee et al. 2018). Bayes' rule on a mixture reweights each component by its marginal likelihood
``N(Y; 0, K_hat + noise I)`` (Rasmussen & Williams 2006, eq. 2.30) and conditions it as a GP (eqs. 2.23-2.24):

    p(f_* | Y) = sum_m w_m N(f_*; mu_m, S_m),   w_m ~ N(Y; 0, K_hat_m + noise I)

:func:`last_layer_kernels` draws the ``K_hat_m`` of ``members`` independent networks and
:func:`mixture_posterior` returns the mixture's mean and covariance: a Rao-Blackwellised importance sampler of the
finite-width posterior (the readout is integrated exactly, only the hidden layers are sampled), far less noisy
than weighting raw network outputs by their likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_array, positive_float, positive_int
from ..seeding import torch_generator
from .stax import Activation

__all__ = ["last_layer_kernels", "mixture_posterior", "MixturePosterior"]


def last_layer_kernels(
    x: Any,
    hidden_layers: int,
    width: int,
    members: int,
    *,
    activation: str = "relu",
    W_std: float = 1.0,
    b_std: float = 0.0,
    seed: int = 0,
    chunk: int = 1024,
) -> np.ndarray:
    """Readout-layer kernels ``K_hat = W_std^2 phi phi^T / width + b_std^2`` of ``members`` random MLPs.

    The networks are those of :func:`learnmech.kernels.empirical.mlp_network` (NTK parameterization, every
    parameter ``N(0, 1)``; the ``hidden_layers`` hidden layers are drawn, the readout is integrated out), so that
    ``K_hat -> learnmech.kernels.mlp(hidden_layers, activation, W_std, b_std)(x).nngp`` as ``width -> inf``
    (exactly in expectation for ``hidden_layers == 1``). Conditional on ``K_hat`` the network's outputs on ``x``
    are exactly ``N(0, K_hat)``.

    x: ``(n, d)`` inputs (numpy or torch; computed in float64 on the device of a torch input). Returns
    ``(members, n, n)`` float64 numpy array (output units^2). ``chunk`` members are drawn at a time (memory
    ``chunk * width^2`` floats); the draws are fixed by ``seed`` and ``chunk``.
    """
    hidden_layers = positive_int(hidden_layers, "hidden_layers")
    width = positive_int(width, "width")
    members = positive_int(members, "members")
    chunk = positive_int(chunk, "chunk")
    W_std = positive_float(W_std, "W_std")
    b_std = positive_float(b_std, "b_std", allow_zero=True)
    # The one activation vocabulary; its finite module is the elementwise function, whatever the shape.
    act = Activation(activation).module((1,))
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    inputs = torch.as_tensor(as_array(x, "x", ndim=2), dtype=torch.float64, device=device)
    gen = torch_generator(seed)
    out = []
    for start in range(0, members, chunk):
        size = min(chunk, members - start)
        h = inputs.expand(size, *inputs.shape)
        fan_in = inputs.shape[1]
        for _ in range(hidden_layers):
            # Drawn on the CPU generator, then moved: a seed gives the same networks on every device.
            weight = torch.randn((size, fan_in, width), generator=gen, dtype=torch.float64).to(device)
            bias = torch.randn((size, 1, width), generator=gen, dtype=torch.float64).to(device)
            h = act(W_std / math.sqrt(fan_in) * h @ weight + b_std * bias)
            fan_in = width
        out.append((W_std**2 / width * h @ h.transpose(1, 2) + b_std**2).cpu())
    return torch.cat(out).numpy()


@dataclass
class MixturePosterior:
    """Posterior of a Gaussian-mixture prior on the test inputs: ``mean`` ``(n_test,)``, ``covariance``
    ``(n_test, n_test)`` (output units, units^2), the normalised component ``weights`` ``(members,)`` and their
    effective sample size ``1 / sum w^2`` (Kong 1992), the number of equally weighted draws it is worth."""

    mean: np.ndarray
    covariance: np.ndarray
    weights: np.ndarray
    effective_sample_size: float


def mixture_posterior(kernels: Any, n_train: int, y_train: Any, noise: float) -> MixturePosterior:
    """Bayesian posterior on the test inputs when the prior is an equal-weight mixture of GPs ``N(0, K_m)``.

    kernels: ``(members, n, n)`` joint kernels of the training inputs (first ``n_train`` rows) and test inputs
    (the rest); y_train: ``(n_train,)``; noise: observation noise variance > 0 (kernel units). Each component is
    reweighted by its marginal likelihood ``N(Y; 0, K_m + noise I)`` (Rasmussen & Williams 2006, eq. 2.30) and
    conditioned as a GP (eqs. 2.23-2.24); the mixture's covariance is ``sum w (S_m + mu_m mu_m^T) - mu mu^T``.
    With all ``K_m`` equal it is :func:`learnmech.kernels.nngp_posterior`.
    """
    ks = as_array(kernels, "kernels", ndim=3)
    members, n, n2 = ks.shape
    if n != n2:
        raise ValueError(f"kernels must be (members, n, n), got {ks.shape}")
    n_train = positive_int(n_train, "n_train")
    if n_train >= n:
        raise ValueError(f"n_train must be < n = {n} (the remaining rows are the test inputs), got {n_train}")
    y = as_array(y_train, "y_train", ndim=1)
    if y.size != n_train:
        raise ValueError(f"y_train must have n_train = {n_train} entries, got {y.size}")
    noise = positive_float(noise, "noise")
    train = ks[:, :n_train, :n_train] + noise * np.eye(n_train)
    cross = ks[:, n_train:, :n_train]
    chol = np.linalg.cholesky(train)
    alpha = np.linalg.solve(train, np.broadcast_to(y[:, None], (members, n_train, 1)))[..., 0]
    # log N(Y; 0, A) up to the constant shared by all members.
    log_like = -0.5 * np.einsum("mi,i->m", alpha, y) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    weights = np.exp(log_like - log_like.max())
    weights /= weights.sum()
    means = np.einsum("mij,mj->mi", cross, alpha)
    covs = ks[:, n_train:, n_train:] - cross @ np.linalg.solve(train, cross.transpose(0, 2, 1))
    mean = weights @ means
    second = np.einsum("m,mij->ij", weights, covs + means[:, :, None] * means[:, None, :])
    covariance = second - np.outer(mean, mean)
    return MixturePosterior(mean=mean, covariance=0.5 * (covariance + covariance.T), weights=weights,
                            effective_sample_size=float(1.0 / np.sum(weights**2)))
