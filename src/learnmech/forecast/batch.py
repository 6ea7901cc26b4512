"""Batch-size forecast: the gradient noise scale and the critical batch size (McCandlish et al. 2018).

McCandlish, Kaplan, Amodei et al. (2018, "An empirical model of large-batch training"): with the optimal lr per
batch size B, steps and examples to a given loss trade off as (S/S_min - 1)(E/E_min - 1) = 1 (eq. 2.11), and the
critical batch size B_crit = E_min / S_min, the knee of that curve, is predicted by the gradient noise scale
B_noise = tr(H Sigma) / (G^T H G) (eq. 2.8), which under the assumption H ~ identity becomes the simple noise scale
B_simple = tr(Sigma) / |G|^2 (eq. 2.9). Below B_crit doubling the batch almost halves the steps (perfect scaling);
above it, it mostly wastes examples.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import positive_float, positive_int
from ..observe import gradient_noise_scale
from ..observe._torch import LossFn, batch_loss, check_batch

__all__ = ["BatchSizeForecast", "batch_size"]


@dataclass
class BatchSizeForecast:
    """b_simple: tr(Sigma)/|G|^2 in examples (the mean over the ``estimates``); b_crit: the forecast critical batch
    size (= b_simple, McCandlish et al. 2018, sec. 2.2 and fig. 4: B_crit ~ B_simple within a small factor);
    estimates: (n_batches,) B_simple from each batch; spread: their relative standard deviation."""

    b_simple: float
    b_crit: float
    estimates: np.ndarray
    spread: float
    pilot_steps: int = 0

    def steps_factor(self, batch: int) -> float:
        """S(B)/S_min = 1 + B_crit/B: how many more steps than the large-batch minimum batch size B needs (eq. 2.11)."""
        return 1.0 + self.b_crit / positive_int(batch, "batch")

    def examples_factor(self, batch: int) -> float:
        """E(B)/E_min = 1 + B/B_crit: how many more examples than the small-batch minimum batch size B needs."""
        return 1.0 + positive_int(batch, "batch") / self.b_crit


def batch_size(
    model: torch.nn.Module, loss_fn: LossFn, batch: Any, *, n_batches: int = 4, n_groups: int = 16, seed: int = 0,
    pilot_steps: int = 0, lr: float | None = None,
) -> BatchSizeForecast:
    """Forecast the critical batch size from ``n_batches`` disjoint random slices of ``batch = (inputs, targets)``
    (e.g. the training set), each split into ``n_groups`` groups for McCandlish et al.'s two-batch-size estimator
    (:func:`learnmech.observe.gradient_noise_scale`). ``loss_fn`` must average over examples. ValueError if
    ``batch`` holds fewer than ``n_batches * n_groups * 2`` examples or every estimate failed (|G|^2 <= 0 at a
    minimum).

    pilot_steps: first take that many full-batch gradient-descent steps at ``lr`` on a *copy* of the model (the
    model itself is untouched). At init, B_simple can be dominated by a direction the first step removes (for a
    squared loss on one-hot targets, the mean output: on the digits CNN B_simple was 4.6 at init and ~300 from
    step 10 on), so the forecast for the run is taken after a short pilot; 0 forecasts at init.
    """
    n_batches = positive_int(n_batches, "n_batches")
    pilot_steps = positive_int(pilot_steps, "pilot_steps", minimum=0)
    if pilot_steps:
        if lr is None:
            raise ValueError("lr is required with pilot_steps > 0 (the pilot's gradient-descent step size)")
        lr = positive_float(lr, "lr")
        model = copy.deepcopy(model)
        pilot = torch.optim.SGD(model.parameters(), lr=lr)
        initial = None
        for step in range(pilot_steps + 1):
            pilot.zero_grad(set_to_none=True)
            loss = batch_loss(model, loss_fn, batch)
            initial = float(loss.detach()) if initial is None else initial
            # a pilot whose loss blew up says nothing about the run's gradient noise: refuse rather than report it
            if not torch.isfinite(loss) or float(loss.detach()) > initial:
                raise ValueError(f"the {pilot_steps}-step pilot at lr={lr:g} did not descend (loss "
                                 f"{float(loss.detach()):.3g} at step {step} vs {initial:.3g}): no noise scale")
            if step < pilot_steps:
                loss.backward()
                pilot.step()
    n_groups = positive_int(n_groups, "n_groups", minimum=2)
    inputs, targets = check_batch(batch)
    n = inputs.shape[0]
    size = n // n_batches
    if size < 2 * n_groups:
        raise ValueError(f"batch must hold at least {2 * n_groups * n_batches} examples for n_batches={n_batches} "
                         f"and n_groups={n_groups}, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).to(inputs.device)
    estimates = []
    for i in range(n_batches):
        idx = order[i * size : (i + 1) * size]
        estimates.append(gradient_noise_scale(model, loss_fn, (inputs[idx], targets[idx]), n_groups=n_groups).b_simple)
    values = np.asarray(estimates, dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0:
        raise ValueError("batch gave no positive noise-scale estimate (|G|^2 <= 0: the model is at a minimum)")
    mean = float(finite.mean())
    spread = float(finite.std(ddof=1) / mean) if finite.size > 1 else float("nan")
    return BatchSizeForecast(b_simple=mean, b_crit=mean, estimates=values, spread=spread, pilot_steps=pilot_steps)
