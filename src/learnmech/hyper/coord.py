"""The coordinate check (Yang et al. 2022, "Tensor Programs V", sec. 7 and fig. 5): train the same model at
several widths for a few steps and watch the typical size of each layer's output coordinates.

Under muP every layer's coordinates *and their change from init* stay O(1) as width grows (slope ~ 0 on a
log-log plot against width); under SP with a fixed learning rate the readout's change grows ~ width (the logits
blow up), under NTP the hidden features' change vanishes ~ width^-1/2 (the lazy/kernel regime). The slope of
log(size) against log(width) per layer is the number to read.

Any model that :func:`~learnmech.hyper.parametrize` accepts with ``base=`` works (convolutions,
``nn.MultiheadAttention``, ...): the base shapes are the factory's model at the base width. The base-width form
leaves SP-like terms of relative size ``~ sqrt(base_width / width)``, so measure at widths well above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def _record(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each named module's output on ``x`` (the first element for modules returning a tuple, e.g.
    ``nn.MultiheadAttention``); modules the forward pass never calls are absent."""
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def keep(name: str, out: torch.Tensor | tuple) -> None:
        outputs[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()

    hooks = [modules[name].register_forward_hook(lambda _m, _i, out, name=name: keep(name, out)) for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


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
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    options: Mapping[str, Any] | None = None,
) -> CoordCheck:
    """Coordinate check of ``model_factory(width)`` parametrized with ``scheme`` at each width.

    model_factory: width -> a fresh, un-parametrized module (e.g. ``lambda n: hyper.models.mlp(8, n)``); any model
    :func:`~learnmech.hyper.parametrize` accepts with ``base=`` (convolutions, ``nn.MultiheadAttention``, ...):
    the base shapes are ``model_factory(base_width)``, so the factory's width must be what scales.
    widths: at least two widths; base_width: default ``min(widths)``; lr: base learning rate (the optimizer's
    global lr, times each layer's multiplier); optimizer: ``"sgd"`` or ``"adam"`` (torch's SGD / Adam);
    steps: full-batch steps on ``loss_fn``; data: ``(x, y)``, default a 64-example synthetic regression task with
    the first layer's input dimension (required unless the first layer is an ``nn.Linear``); seeds:
    initialisations to average over; loss_fn: ``loss_fn(model(x), y)`` -> scalar, default half-MSE; options:
    extra keyword arguments for :func:`~learnmech.hyper.parametrize` (``gain``, ``depth``, ``branches``).

    The layers recorded are the modules owning a weight (their output, or an attention module's output).
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
    loss_fn = half_mse if loss_fn is None else loss_fn
    options = dict(options or {})
    for reserved in ("base", "base_width", "seed", "scheme"):
        if reserved in options:
            raise ValueError(f"options must not set {reserved!r}: coord_check sets it")
    opt_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    size = change = None
    layers: list[str] = []
    for wi, width in enumerate(widths_arr):
        for seed in seeds:
            torch.manual_seed(int(seed))
            model = model_factory(int(width))
            params = parametrize(model, scheme, base=model_factory(base), seed=int(seed), **options)
            if data is None:
                data = _default_data(model)
            x, y = data
            owners = list(dict.fromkeys(rule.name for rule in params.rules if rule.tensor.endswith("weight")))
            opt = params.optimizer(opt_class, lr)
            initial = _record(model, owners, x)
            if size is None:
                layers = [name for name in owners if name in initial]
                size = np.zeros((len(widths_arr), len(layers), steps + 1))
                change = np.zeros_like(size)
            for t in range(steps + 1):
                current = initial if t == 0 else _record(model, layers, x)
                for li, layer in enumerate(layers):
                    h, h0 = current[layer], initial[layer]
                    size[wi, li, t] += float(h.abs().mean()) / len(seeds)
                    change[wi, li, t] += float((h - h0).abs().mean()) / len(seeds)
                if t < steps:
                    opt.zero_grad(set_to_none=True)
                    loss_fn(model(x), y).backward()
                    opt.step()
    size_slope = {layer: log_slope(widths_arr, size[:, i, -1]) for i, layer in enumerate(layers)}
    change_slope = {layer: log_slope(widths_arr, change[:, i, -1]) for i, layer in enumerate(layers)}
    return CoordCheck(scheme, widths_arr.astype(float), layers, size, change, size_slope, change_slope)


def _default_data(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The default task: 64 synthetic regression examples for a model whose first layer is an ``nn.Linear``."""
    first = next((m for m in model.modules() if any(True for _ in m.parameters(recurse=False))), None)
    if not isinstance(first, nn.Linear):
        kind = type(first).__name__ if first is not None else "no layer"
        raise ValueError(f"data is required: the default task needs an nn.Linear first layer, got {kind}")
    return synthetic_regression(64, first.in_features, seed=12345)
