"""The coordinate check (Yang et al. 2022, "Tensor Programs V", sec. 7 and fig. 5): train the same model at
several widths for a few steps and watch the typical size of each layer's output coordinates.

Under muP every layer's coordinates *and their change from init* stay O(1) as width grows (slope ~ 0 on a
log-log plot against width); under SP with a fixed learning rate the readout's change grows ~ width (the logits
blow up), under NTP the hidden features' change vanishes ~ width^-1/2 (the lazy/kernel regime). The slope of
log(size) against log(width) per layer is the number to read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import one_of, positive_float, positive_int
from ..panels import Panel, Series
from .parametrize import OPTIMIZERS, SCHEMES, parametrize
from .training import half_mse, synthetic_regression


@dataclass
class CoordCheck:
    """Result of :func:`coord_check`.

    widths: ``(W,)``; layers: the L layer names; size: ``(W, L, steps+1)`` mean ``|h|`` of each layer's output
    coordinates at each step (averaged over seeds); change: ``(W, L, steps+1)`` mean ``|h_t - h_0|``;
    size_slope / change_slope: per layer, least-squares slope of ``log2`` of the last step's size / change
    against ``log2(width)`` (0 = width-independent, 0.5 = grows like sqrt(width), -0.5 = vanishes like it).
    """

    scheme: str
    widths: np.ndarray
    layers: list[str]
    size: np.ndarray
    change: np.ndarray
    size_slope: dict[str, float]
    change_slope: dict[str, float]

    def figure(self) -> list[Panel]:
        """Two log-log panels (size and change at the last step vs width), one series per layer."""
        panels = []
        for title, values, slopes in (("activation size", self.size, self.size_slope),
                                      ("change from init", self.change, self.change_slope)):
            series = [
                Series(f"{layer} (slope {slopes[layer]:+.2f})", self.widths, values[:, i, -1])
                for i, layer in enumerate(self.layers)
            ]
            panels.append(Panel(f"{self.scheme}: {title} after {self.size.shape[2] - 1} steps", "width (units)",
                                "mean |coordinate| (output units)", series, xscale="log", yscale="log"))
        return panels


def log_slope(widths: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``log2(values)`` against ``log2(widths)`` (NaN unless all values are > 0)."""
    widths, values = np.asarray(widths, dtype=float), np.asarray(values, dtype=float)
    if len(widths) < 2 or not np.all(values > 0) or not np.all(np.isfinite(values)):
        return float("nan")
    return float(np.polyfit(np.log2(widths), np.log2(values), 1)[0])


def _record(model: nn.Module, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
             for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [outputs[name].detach().clone() for name in names]


def coord_check(
    model_factory: Callable[[int], nn.Module],
    widths: Sequence[int],
    *,
    scheme: str = "mup",
    base_width: int | None = None,
    lr: float = 0.1,
    optimizer: str = "sgd",
    steps: int = 4,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    seeds: Sequence[int] = (0, 1),
) -> CoordCheck:
    """Coordinate check of ``model_factory(width)`` parametrized with ``scheme`` at each width.

    model_factory: width -> a fresh, un-parametrized module (e.g. ``lambda n: hyper.models.mlp(8, n)``).
    widths: at least two widths; base_width: default ``min(widths)``; lr: base learning rate (the optimizer's
    global lr, times each layer's multiplier); optimizer: ``"sgd"`` or ``"adam"`` (torch's SGD / Adam);
    steps: full-batch steps on half-MSE; data: ``(x, y)``, default a 64-example synthetic regression task with
    the first layer's input dimension; seeds: initialisations to average over.
    """
    widths_arr = np.array([positive_int(w, "widths") for w in widths])
    if len(widths_arr) < 2:
        raise ValueError(f"widths must hold at least two widths, got {list(widths)}")
    scheme = one_of(scheme, "scheme", SCHEMES)
    optimizer = one_of(optimizer, "optimizer", OPTIMIZERS)
    lr = positive_float(lr, "lr")
    steps = positive_int(steps, "steps")
    base = int(widths_arr.min()) if base_width is None else positive_int(base_width, "base_width")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    opt_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    size = change = None
    layers: list[str] = []
    for wi, width in enumerate(widths_arr):
        for seed in seeds:
            torch.manual_seed(int(seed))
            model = model_factory(int(width))
            params = parametrize(model, scheme, base, seed=int(seed))
            if data is None:
                first = next(m for m in model.modules() if isinstance(m, nn.Linear))
                data = synthetic_regression(64, first.in_features, seed=12345)
            x, y = data
            layers = list(dict.fromkeys(rule.name for rule in params.rules if rule.tensor == "weight"))
            if size is None:
                size = np.zeros((len(widths_arr), len(layers), steps + 1))
                change = np.zeros_like(size)
            opt = params.optimizer(opt_class, lr)
            initial = _record(model, layers, x)
            for t in range(steps + 1):
                current = initial if t == 0 else _record(model, layers, x)
                for li, (h, h0) in enumerate(zip(current, initial, strict=True)):
                    size[wi, li, t] += float(h.abs().mean()) / len(seeds)
                    change[wi, li, t] += float((h - h0).abs().mean()) / len(seeds)
                if t < steps:
                    opt.zero_grad(set_to_none=True)
                    half_mse(model(x), y).backward()
                    opt.step()
    size_slope = {layer: log_slope(widths_arr, size[:, i, -1]) for i, layer in enumerate(layers)}
    change_slope = {layer: log_slope(widths_arr, change[:, i, -1]) for i, layer in enumerate(layers)}
    return CoordCheck(scheme, widths_arr.astype(float), layers, size, change, size_slope, change_slope)
