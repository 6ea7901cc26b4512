"""Gradient statistics: the gradient noise scale that sets the critical batch size.

McCandlish, Kaplan, Amodei et al. (2018, "An empirical model of large-batch training", eq. 2.8 and app. A.1):
the simple noise scale B_simple = tr(Sigma) / |G|^2, with G the true gradient and Sigma the per-example gradient
covariance, predicts the batch size beyond which larger batches stop paying off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._checks import positive_int
from ._torch import LossFn, batch_loss, check_batch, params_to_flat, trainable_parameters

__all__ = ["NoiseScale", "gradient_noise_scale"]


@dataclass
class NoiseScale:
    """b_simple: tr(Sigma) / |G|^2 in examples (NaN if the |G|^2 estimate is not positive); trace_covariance:
    tr(Sigma) per example, in squared gradient units; gradient_norm_sq: the unbiased estimate of |G|^2;
    small_batch, big_batch: the two batch sizes the estimate used."""

    b_simple: float
    trace_covariance: float
    gradient_norm_sq: float
    small_batch: int
    big_batch: int


def gradient_noise_scale(model: torch.nn.Module, loss_fn: LossFn, batch: Any, *, n_groups: int = 16) -> NoiseScale:
    """The simple noise scale from one batch split into ``n_groups`` equal groups (the remainder is dropped).

    With b = group size and B = n_groups * b, E|G_b|^2 = |G|^2 + tr(Sigma)/b and E|G_B|^2 = |G|^2 + tr(Sigma)/B,
    so the two-batch-size estimators of McCandlish et al. (2018, eqs. A.2-A.3) are unbiased for |G|^2 and
    tr(Sigma); here |G_b|^2 is averaged over the groups and G_B is the gradient of the whole (used) batch.
    ``loss_fn`` must average over examples (reduction="mean"). Near a minimum the |G|^2 estimate can come out
    negative (the noise swamps the mean gradient): b_simple is then NaN rather than a meaningless number.
    """
    n_groups = positive_int(n_groups, "n_groups", minimum=2)
    params = trainable_parameters(model)
    inputs, targets = check_batch(batch)
    group = inputs.shape[0] // n_groups
    if group < 1:
        raise ValueError(f"batch must hold at least n_groups={n_groups} examples, got {inputs.shape[0]}")
    small_sq = 0.0
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=params[0].device)
    for g in range(n_groups):
        part = (inputs[g * group : (g + 1) * group], targets[g * group : (g + 1) * group])
        grads = torch.autograd.grad(batch_loss(model, loss_fn, part), params, allow_unused=True)
        flat = params_to_flat(grads, params)
        small_sq += float(flat @ flat) / n_groups
        total += flat / n_groups
    big_sq = float(total @ total)
    small, big = group, group * n_groups
    gradient_norm_sq = (big * big_sq - small * small_sq) / (big - small)
    trace_covariance = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    b_simple = trace_covariance / gradient_norm_sq if gradient_norm_sq > 0 else float("nan")
    return NoiseScale(
        b_simple=float(b_simple),
        trace_covariance=float(trace_covariance),
        gradient_norm_sq=float(gradient_norm_sq),
        small_batch=small,
        big_batch=big,
    )
