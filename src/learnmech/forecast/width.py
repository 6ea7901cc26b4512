"""Width transfer: muP's forecast that the learning rate tuned on a narrow proxy is the one to use at any width.

Under the maximal update parametrization (Yang et al. 2022, "Tensor Programs V") every layer's coordinates and
their updates stay O(1) as width grows, so the optimal base learning rate is width-independent; what changes with
width are the per-layer multipliers of init, output and learning rate that :func:`learnmech.hyper.parametrize`
computes (relative to the proxy's "base" width). The forecast is scored by the coordinate check (Yang et al. 2022,
sec. 7): under muP the change of each layer's output coordinates after a few steps has log-log slope ~0 in width.

The check is run in muP's domain, by rules fixed in :data:`CHECK_FACTORS`, :data:`CHECK_SEEDS`,
:data:`CHECK_EXAMPLES` and :func:`coordinate_check` (the same rules for every user model):

- base = the proxy width (``widths[0]``): the parametrization whose learning rates the forecast hands out.
- measured widths = base x (8, 16, 32). muP's prediction is a statement about width -> infinity; in the base-shape
  form every scheme *is* SP at the base width and the SP-like terms it leaves fade only as ``sqrt(base/width)``
  (e.g. the readout's output at init, ``W_out h ~ (base/width)^1/2``, which also sits in the residual that drives
  every update). Starting 8x above the base keeps them below 35% (the rule ``hyper``'s CNN/transformer coordinate
  tests fixed before measuring). Yang et al. (2022) and the ``mup`` package's coord checks likewise use widths far
  above the base shapes.
- three initialisations (seeds ``seed .. seed + 2``), averaged: a width-n net's coordinate statistics fluctuate
  by ``O(n^-1/2)`` between inits (35% at 8 channels), which one seed turns into slope noise of the tolerance's size.
- learning rate (SGD): ``min(lr, 1 / lambda_base)``, with ``lambda_base`` the top Hessian eigenvalue of the
  base-width model at init on the check's data. For ``lr lambda <= 1`` every mode of the quadratic model decays
  monotonically (per-step factor ``1 - lr lambda`` in [0, 1)); between that and the ceiling 2/lambda the top mode
  flips sign every step and a few steps' change depends non-monotonically on lr*lambda, which amplifies
  finite-width differences of lambda. Adam runs at the user's lr (no such rule).
- the user's own widths and lr (base = proxy = smallest width) are measured too and reported as a boundary, not
  scored.

Choices fixed after a first look: a first look measured at the user's widths (8, 16, 32) with the base at the
smallest of them, one seed, at the user's lr (0.14, 0.93x the stability ceiling): on the digits CNN the muP change
slopes were -0.50, -0.49, -0.72 (and -0.78, -0.55, -0.55 over widths 8-64), so the card said "disagrees". Diagnosis,
all on that CNN: (1) with the base at the smallest width the init-output term above dominates: subtracting the
output at init (f-f0) brought the slopes over widths 8-64 from (-0.25, -0.26, -0.16) to (0.04, 0.01, 0.03) at lr
0.02; (2) single-seed slopes over widths 8-32 ranged from -0.07 to -0.41 between seed triples (the ``mup`` package's
own MuReadout/MuSGD gave the same spread), i.e. the measurement had no resolution at the tolerance; (3) at lr 0.14
even widths 64-256 gave readout slopes from -0.10 to -0.47 between seed triples, while at lr 0.07 and 0.02 every
layer stayed within 0.2 of 0. Why: the top eigenvalue of the lr-preconditioned Hessian (``P^1/2 H P^1/2``, ``P`` the
per-parameter SGD lr multipliers) of the muP nets at init (seed 0, 64 examples) is 22.1, 21.5, 17.6 at widths 8, 16,
32 and 14.5, 16.0, 15.0 at 64, 128, 256 (the same on 256 and 1200 examples): lr 0.14 puts lr*lambda at 3.1 on the
proxy (past GD's ceiling 2: ``parametrize`` re-initialises with ``N(0, 1/fan_in)``, which is sharper than torch's
default init the run itself uses, lambda 13.3 at width 16) and at 2.0-2.2 on widths 64-256, so those checks measured
the edge-of-stability growth of the top mode, not muP's scaling. The learning-rate multipliers equal ``mup`` 1.0.0's
MuSGD/MuAdam on this CNN (flatten readout, fan-in counting the kernel), so the parametrization was not at fault; the
measurement was. These rules were adopted after that failing run (so each states its a-priori reason above); the
widths rule is the one ``hyper``'s tests had fixed before. With them the digits CNN's muP slopes lie within 0.21 of
0 on seeds 0-9 and SP's exceed 8; the boundary (the user's widths 8-32 at lr 0.14) keeps showing slopes of -0.2 to
-0.9, at such widths, with the proxy as the base, muP's width-independence has not set in yet.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._checks import one_of, positive_float, positive_int

__all__ = ["WidthTransfer", "width_transfer", "parametrize_like", "coordinate_check", "CHECK_FACTORS",
           "CHECK_SEEDS", "CHECK_EXAMPLES"]

CHECK_FACTORS = (8, 16, 32)  # measured widths / base width (module docstring)
CHECK_SEEDS = 3  # initialisations averaged per width
CHECK_EXAMPLES = 64  # examples the coordinates are measured (and trained) on


def parametrize_like(model: nn.Module, scheme: str, base_model: nn.Module, base_width: int, seed: int = 0) -> Any:
    """``hyper.parametrize`` with ``base=base_model`` where this learnmech has it (muP for any model built from
    Linear/Conv/Embedding/LayerNorm/attention), else with ``base_width`` (proportional MLP/transformer widths)."""
    from ..hyper import parametrize

    if "base" in inspect.signature(parametrize).parameters:
        return parametrize(model, scheme, base=base_model, seed=seed)
    return parametrize(model, scheme, base_width, seed=seed)


@dataclass
class WidthTransfer:
    """Result of :func:`width_transfer`.

    base_width / width: proxy and target widths; lr: the lr tuned on the proxy (also the target's base lr under
    muP); optimizer: "sgd" | "adam"; lr_per_parameter: {parameter name: lr to use at the target width};
    table: the target's per-parameter rules (init std, multiplier, lr multipliers); sp_lr: what standard
    parametrization would reuse (the same lr for every parameter, no multipliers).
    """

    base_width: int
    width: int
    lr: float
    optimizer: str
    lr_per_parameter: dict[str, float]
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sp_lr(self) -> float:
        return self.lr


def width_transfer(
    model_at: Callable[[int], nn.Module],
    base_width: int,
    width: int,
    lr: float,
    *,
    optimizer: str = "sgd",
    seed: int = 0,
) -> WidthTransfer:
    """The muP-transferred per-parameter learning rates at ``width`` for an lr tuned at ``base_width``.

    model_at: width -> a fresh model (the same architecture at any width); base_width, width: the proxy's and the
    target's widths; lr: the proxy's tuned lr; optimizer: "sgd" (also SGD+momentum) or "adam".
    ValueError naming the argument if the model cannot be parametrized (hyper.parametrize's message).
    """
    if not callable(model_at):
        raise ValueError(f"model_at must be callable width -> torch.nn.Module, got {type(model_at).__name__}")
    base_width = positive_int(base_width, "base_width")
    width = positive_int(width, "width")
    lr = positive_float(lr, "lr")
    optimizer = one_of(optimizer, "optimizer", ("sgd", "adam"))
    torch.manual_seed(seed)
    target, base = model_at(width), model_at(base_width)
    params = parametrize_like(target, "mup", base, base_width, seed=seed)
    return WidthTransfer(base_width=base_width, width=width, lr=lr, optimizer=optimizer,
                         lr_per_parameter={k: lr * v for k, v in params.lr_multipliers(optimizer).items()},
                         table=params.table())


def coordinate_check(
    model_at: Callable[[int], nn.Module], widths: Sequence[int], data: tuple[torch.Tensor, torch.Tensor], *,
    loss_fn: Any = None, scheme: str = "mup", lr: float = 0.05, optimizer: str = "sgd", steps: int = 4,
    seed: int = 0,
) -> Any:
    """``hyper.coord_check`` of the user's architecture on the user's data, in muP's domain (module docstring).

    model_at: width -> a fresh model; widths: the user's widths, proxy (= base) first; data: ``(x, y)``, of which
    the first :data:`CHECK_EXAMPLES` examples are used; loss_fn: ``(outputs, targets) -> scalar`` (default
    half-MSE); scheme, optimizer, steps: as in ``hyper.coord_check``; lr: the user's learning rate; seed: the
    first of :data:`CHECK_SEEDS` initialisations.

    Returns the ``hyper.CoordCheck`` at widths ``base * CHECK_FACTORS`` with extra attributes ``base_width``,
    ``lr`` (the lr it ran at), ``user_lr``, ``lambda_base`` (NaN for Adam), ``seeds`` and ``boundary`` (the
    same check at the user's widths and lr, ``base = widths[0]``: the pre-asymptotic regime, reported only).
    """
    from ..hyper import coord_check, parametrize
    from ..hyper.training import half_mse
    from .stability import stability

    widths = [positive_int(w, "widths") for w in widths]
    if len(widths) < 2:
        raise ValueError(f"widths must hold at least two widths (proxy first), got {widths}")
    lr = positive_float(lr, "lr")
    optimizer = one_of(optimizer, "optimizer", ("sgd", "adam"))
    x, y = data[0][:CHECK_EXAMPLES], data[1][:CHECK_EXAMPLES]
    base = widths[0]
    kwargs: dict[str, Any] = {}
    if loss_fn is not None and "loss_fn" in inspect.signature(coord_check).parameters:
        kwargs["loss_fn"] = loss_fn
    lambda_base, lr_check = float("nan"), lr
    if optimizer == "sgd":
        # At the base width every scheme is SP with unit multipliers, so the Hessian in the trainable tensors is
        # the one plain GD sees; 1/lambda is the monotone-decay limit of the quadratic model (module docstring).
        torch.manual_seed(seed)
        probe = model_at(base)
        parametrize(probe, scheme, base=model_at(base), seed=seed)
        loss = kwargs.get("loss_fn", half_mse)
        lambda_base = float(stability(probe, loss, (x, y), optimizer="gd").sharpness)
        if math.isfinite(lambda_base) and lambda_base > 0:
            lr_check = min(lr, 1.0 / lambda_base)
    seeds = tuple(range(seed, seed + CHECK_SEEDS))
    check = coord_check(model_at, [base * f for f in CHECK_FACTORS], scheme=scheme, base_width=base, lr=lr_check,
                        optimizer=optimizer, steps=steps, data=(x, y), seeds=seeds, **kwargs)
    boundary = coord_check(model_at, widths, scheme=scheme, base_width=base, lr=lr, optimizer=optimizer,
                           steps=steps, data=(x, y), seeds=(seed,), **kwargs)
    check.base_width, check.lr, check.user_lr, check.lambda_base = base, lr_check, lr, lambda_base
    check.seeds, check.boundary = seeds, boundary
    return check
