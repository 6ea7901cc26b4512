"""abc-parametrizations of PyTorch models: SP, NTP, muP and mean-field (Yang & Hu 2021; Yang et al. 2022).

A parametrization says, for every weight ``W = multiplier * w`` of a layer, how the trainable ``w`` is
initialised (std), which constant ``multiplier`` sits in front of it, and how its learning rate scales with width.
Everything is stated *relative to a base width* (the ``mup`` package's convention, Yang et al. 2022, "Tensor
Programs V", appendix: "muP in the base-shape form"): with ``m = width / base_width`` every scheme coincides with
the standard parametrization (SP) at ``m = 1``, so a learning rate tuned at the base width is the one to transfer.

Per-layer rules (``g`` = ``gain``; fan_in of the layer; ``base_fan_in = fan_in / m`` for hidden/output layers):

==========  ======  ========================  ===========  =========  ==========
role        scheme  init std of ``w``          multiplier   SGD lr x   Adam lr x
==========  ======  ========================  ===========  =========  ==========
input       sp/ntp  g / sqrt(fan_in)           1            1          1
input       mup/mf  g / sqrt(fan_in)           1            m          1
hidden      sp      g / sqrt(fan_in)           1            1          1
hidden      ntp     g / sqrt(base_fan_in)      m^-1/2       1          1
hidden      mup     g / sqrt(fan_in)           1            1          1/m
hidden      mf      g / sqrt(base_fan_in)      m^-1/2       m          m^-1/2
output      sp      g / sqrt(fan_in)           1            1          1
output      ntp     g / sqrt(base_fan_in)      m^-1/2       1          1
output      mup/mf  g / sqrt(base_fan_in)      1/m          m          1
vectors     mup/mf  (biases 0, LayerNorm 1)    1            m [1 out]  1
vectors     sp/ntp  (biases 0, LayerNorm 1)    1            1          1
==========  ======  ========================  ===========  =========  ==========

muP rows are Table 8 of Yang et al. (2022) divided by their base-width values (equivalently Table 3 after the
abc-symmetry ``A -> A theta, B -> B/theta, C -> C/theta^2`` for SGD, ``C/theta`` for Adam, Yang & Hu 2021 eq. 5).
``mf`` is the mean-field bookkeeping of the same limit (Mei, Montanari & Nguyen 2018 for one hidden layer;
Bordelon & Pehlevan 2022 for deep nets): NTK-style ``1/sqrt(fan_in)`` multipliers, a ``1/width`` readout and a
learning rate ``~ width``; with SGD its dynamics equal muP's exactly. ``ntp`` is the NTK parametrization (Jacot
et al. 2018): same function at init as SP, but ``dW`` is ``1/m`` smaller in hidden and readout layers, so features
freeze as width grows. Under muP/mf the attention logits use ``1/d_head`` instead of ``1/sqrt(d_head)``
(Yang et al. 2022, sec. 4), written ``sqrt(base_d_head) / d_head`` so it is SP's value at the base width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize as torch_parametrize

from .._checks import one_of, positive_float, positive_int
from ..seeding import torch_generator
from .models import SelfAttention

SCHEMES = ("sp", "ntp", "mup", "mf")
OPTIMIZERS = ("sgd", "adam")
Role = Literal["input", "hidden", "output"]
_LINEAR_LIKE = (nn.Linear, nn.Embedding)
_SUPPORTED = (nn.Linear, nn.Embedding, nn.LayerNorm, SelfAttention)


class _Multiplier(nn.Module):
    """``W = multiplier * w``: registered as a torch parametrization, so any forward pass and any stock
    optimizer see the multiplied weight while the optimizer updates ``w`` (Yang & Hu 2021, the "a" exponent)."""

    def __init__(self, multiplier: float) -> None:
        super().__init__()
        self.multiplier = float(multiplier)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.multiplier


@dataclass
class ParamRule:
    """How one parameter tensor is parametrized.

    name: the module's name (``"0"``, ``"blocks.0.fc1"``); tensor: ``"weight"`` or ``"bias"``; role: the layer's
    role; fan_in/fan_out: the layer's dimensions; init_std: std of the trainable tensor ``w`` (0 for biases);
    multiplier: the constant in ``W = multiplier * w``; lr_mult: learning-rate factor per optimizer family;
    param_name: the trainable tensor's name in ``model.named_parameters()``.
    """

    name: str
    tensor: str
    role: Role
    fan_in: int
    fan_out: int
    init_std: float
    multiplier: float
    lr_mult: dict[str, float]
    parameter: nn.Parameter = field(repr=False, compare=False)
    param_name: str = ""  # the name in model.named_parameters(), e.g. "4.parametrizations.weight.original"


@dataclass
class Parametrization:
    """The result of :func:`parametrize`: the per-parameter rules and the optimizer plumbing.

    width_mult: ``m = width / base_width``. ``rules`` covers every parameter of the model exactly once.
    """

    scheme: str
    base_width: int
    width: int
    width_mult: float
    rules: list[ParamRule]
    attention_scale: dict[str, float] = field(default_factory=dict)

    def param_groups(self, lr: float, optimizer: str = "sgd") -> list[dict[str, Any]]:
        """Param groups for a stock torch optimizer: one per parameter, ``lr = lr * lr_mult[optimizer]``.

        ``optimizer`` is ``"sgd"`` (also right for SGD with momentum) or ``"adam"`` (Adam, AdamW): muP's learning
        rate multipliers differ between them because Adam's update does not scale with the gradient.
        """
        lr = positive_float(lr, "lr")
        kind = one_of(optimizer, "optimizer", OPTIMIZERS)
        return [
            {"params": [rule.parameter], "lr": lr * rule.lr_mult[kind], "name": f"{rule.name}.{rule.tensor}"}
            for rule in self.rules
        ]

    def optimizer(
        self, optimizer_class: type[torch.optim.Optimizer], lr: float, **kwargs: Any
    ) -> torch.optim.Optimizer:
        """An instance of ``optimizer_class`` (``torch.optim.SGD``, ``Adam`` or ``AdamW``) with per-layer lrs."""
        kind = _optimizer_kind(optimizer_class)
        return optimizer_class(self.param_groups(lr, kind), lr=lr, **kwargs)

    def lr_multipliers(self, optimizer: str = "sgd") -> dict[str, float]:
        """``{parameter name in model.named_parameters(): lr multiplier}`` for a hand-written update rule."""
        kind = one_of(optimizer, "optimizer", OPTIMIZERS)
        return {rule.param_name: rule.lr_mult[kind] for rule in self.rules}

    def table(self) -> list[dict[str, Any]]:
        """The rules as plain rows (for printing or a DataFrame)."""
        return [
            {"name": r.name, "tensor": r.tensor, "role": r.role, "fan_in": r.fan_in, "fan_out": r.fan_out,
             "init_std": r.init_std, "multiplier": r.multiplier, "lr_sgd": r.lr_mult["sgd"],
             "lr_adam": r.lr_mult["adam"]}
            for r in self.rules
        ]


def _optimizer_kind(optimizer_class: Any) -> str:
    if isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer_class, type) and issubclass(optimizer_class, (torch.optim.Adam, torch.optim.AdamW)):
        return "adam"
    raise ValueError(
        f"optimizer_class must be torch.optim.SGD, Adam or AdamW (subclasses allowed), got {optimizer_class!r}"
    )


def weight_rule(
    scheme: str, role: Role, fan_in: int, width_mult: float, gain: float = 1.0
) -> tuple[float, float, dict[str, float]]:
    """``(init_std, multiplier, {"sgd": lr_mult, "adam": lr_mult})`` for a weight matrix (table in the module doc).

    fan_in: the layer's input dimension (for ``nn.Embedding`` use 1: a one-hot input has unit norm);
    width_mult: ``m = width / base_width``.
    """
    scheme = one_of(scheme, "scheme", SCHEMES)
    m = positive_float(width_mult, "width_mult")
    fan_in = positive_int(fan_in, "fan_in")
    sp_std = gain / math.sqrt(fan_in)  # Kaiming/LeCun: keeps pre-activations O(1) at init
    if role == "input":
        # The input dimension does not grow with width, so the input layer's init is width-independent in every
        # scheme; muP/mf give it an SGD lr ~ fan_out so that its O(1/n)-per-coordinate gradients move features
        # by O(1) (Yang et al. 2022, Table 3 "input weights": SGD LR fan_out).
        lr = m if scheme in ("mup", "mf") else 1.0
        return sp_std, 1.0, {"sgd": lr, "adam": 1.0}
    base_std = gain / math.sqrt(fan_in / m)  # the SP std at the base width
    if role == "hidden":
        if scheme == "sp":
            return sp_std, 1.0, {"sgd": 1.0, "adam": 1.0}
        if scheme == "ntp":
            return base_std, m**-0.5, {"sgd": 1.0, "adam": 1.0}
        if scheme == "mup":
            return sp_std, 1.0, {"sgd": 1.0, "adam": 1.0 / m}
        return base_std, m**-0.5, {"sgd": m, "adam": m**-0.5}
    if role == "output":
        if scheme == "sp":
            return sp_std, 1.0, {"sgd": 1.0, "adam": 1.0}
        if scheme == "ntp":
            return base_std, m**-0.5, {"sgd": 1.0, "adam": 1.0}
        # muP readout: effective W has std ~ 1/width (Table 3: init var 1/fan_in^2) via a 1/m multiplier.
        return base_std, 1.0 / m, {"sgd": m, "adam": 1.0}
    raise ValueError(f"role must be 'input', 'hidden' or 'output', got {role!r}")


def vector_rule(scheme: str, width_sized: bool, width_mult: float) -> dict[str, float]:
    """Learning-rate multipliers for a bias or LayerNorm vector (Yang et al. 2022, Table 3 "all biases":
    SGD LR ``fan_out``, i.e. ``m`` for a width-sized vector and 1 for the readout's bias; Adam LR 1)."""
    scheme = one_of(scheme, "scheme", SCHEMES)
    m = positive_float(width_mult, "width_mult")
    sgd = m if (scheme in ("mup", "mf") and width_sized) else 1.0
    return {"sgd": sgd, "adam": 1.0}


def attention_scale(scheme: str, d_head: int, width_mult: float) -> float:
    """Attention logit scale: ``1/sqrt(d_head)`` (SP/NTP); ``sqrt(base_d_head)/d_head`` (muP/mf), since under
    muP queries and keys become correlated during training and their dot product grows ~ d_head, not sqrt(d_head)
    (Yang et al. 2022, sec. 4 "attention logits scale 1/d")."""
    scheme = one_of(scheme, "scheme", SCHEMES)
    d_head, m = positive_int(d_head, "d_head"), positive_float(width_mult, "width_mult")
    if scheme in ("sp", "ntp"):
        return 1.0 / math.sqrt(d_head)
    return math.sqrt(d_head / m) / d_head


def _dims(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return 1, module.embedding_dim  # nn.Embedding: a one-hot row of norm 1 (see weight_rule)


def parametrize(
    model: nn.Module,
    scheme: str,
    base_width: int,
    *,
    width: int | None = None,
    input_layers: Sequence[str] | None = None,
    output_layer: str | None = None,
    gain: float = 1.0,
    seed: int = 0,
) -> Parametrization:
    """Re-initialise ``model`` in place under ``scheme`` and return its per-parameter rules.

    model: a ``torch.nn.Module`` built from ``nn.Linear``, ``nn.Embedding``, ``nn.LayerNorm`` and
        :class:`~learnmech.hyper.models.SelfAttention` (any container around them); any other module that owns
        parameters is refused, so nothing is silently left in SP.
    scheme: ``"sp"``, ``"ntp"``, ``"mup"`` or ``"mf"`` (module docstring has the table).
    base_width: the width at which every scheme equals SP (where you tuned your hyperparameters).
    width: the model's width; default: the readout's ``in_features``. All hidden dimensions must be proportional.
    input_layers: names of the input layers (default: every ``nn.Embedding``, else the first ``nn.Linear``).
    output_layer: name of the readout (default: the last ``nn.Linear``).
    gain: the init std factor ``g`` (e.g. ``sqrt(2)`` for deep ReLU nets). seed: seeds the re-initialisation.

    Returns a :class:`Parametrization`; build the optimizer with ``p.optimizer(torch.optim.SGD, lr)`` or pass
    ``p.param_groups(lr, "adam")`` to any Adam-family optimizer.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    scheme = one_of(scheme, "scheme", SCHEMES)
    base_width = positive_int(base_width, "base_width")
    gain = positive_float(gain, "gain")
    if getattr(model, "_learnmech_parametrization", None) is not None:
        raise ValueError("model is already parametrized; build a fresh model to change scheme")
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if torch_parametrize.is_parametrized(module):
            raise ValueError(f"model layer {name!r} already carries a torch parametrization; cannot parametrize it")
        if any(True for _ in module.parameters(recurse=False)) and not isinstance(module, _SUPPORTED):
            raise ValueError(
                f"cannot parametrize layer {name or '<root>'!r} of type {type(module).__name__}: supported layers "
                "are nn.Linear, nn.Embedding, nn.LayerNorm and learnmech.hyper.models.SelfAttention"
            )
    linear_like = [name for name, mod in modules.items() if isinstance(mod, _LINEAR_LIKE)]
    linears = [name for name in linear_like if isinstance(modules[name], nn.Linear)]
    if output_layer is None:
        if not linears:
            raise ValueError("model has no identifiable output layer (no nn.Linear found)")
        output_layer = linears[-1]
    if input_layers is None:
        embeddings = [name for name in linear_like if isinstance(modules[name], nn.Embedding)]
        input_layers = embeddings or linears[:1]
    input_layers = list(input_layers)
    for label, names in (("output_layer", [output_layer]), ("input_layers", input_layers)):
        for name in names:
            if name not in linear_like:
                raise ValueError(f"{label}: {name!r} is not an nn.Linear/nn.Embedding layer of the model")
    if output_layer in input_layers or len(linear_like) < 2:
        raise ValueError(
            f"model has no identifiable input and output layers: need distinct ones, found {len(linear_like)} "
            f"Linear/Embedding layer(s) (input={input_layers}, output={output_layer!r})"
        )
    readout_fan_in = _dims(modules[output_layer])[0]
    width = readout_fan_in if width is None else positive_int(width, "width")
    m = width / base_width
    gen = torch_generator(seed)
    rules: list[ParamRule] = []
    with torch.no_grad():
        for name in linear_like:
            module = modules[name]
            role: Role = "input" if name in input_layers else "output" if name == output_layer else "hidden"
            fan_in, fan_out = _dims(module)
            std, multiplier, lr_mult = weight_rule(scheme, role, fan_in, m, gain)
            module.weight.normal_(0.0, std, generator=gen)
            if multiplier != 1.0:
                torch_parametrize.register_parametrization(module, "weight", _Multiplier(multiplier))
                trainable = module.parametrizations.weight.original
            else:
                trainable = module.weight
            rules.append(ParamRule(name, "weight", role, fan_in, fan_out, std, multiplier, lr_mult, trainable))
            bias = getattr(module, "bias", None)
            if bias is not None:
                bias.zero_()
                rules.append(ParamRule(name, "bias", role, fan_in, fan_out, 0.0, 1.0,
                                       vector_rule(scheme, role != "output", m), bias))
        for name, module in modules.items():
            if isinstance(module, nn.LayerNorm):
                for tensor in ("weight", "bias"):
                    value = getattr(module, tensor)
                    if value is None:
                        continue
                    value.fill_(1.0 if tensor == "weight" else 0.0)
                    size = value.numel()
                    rules.append(ParamRule(name, tensor, "hidden", size, size, 0.0, 1.0,
                                           vector_rule(scheme, True, m), value))
    scales = {}
    for name, module in modules.items():
        if isinstance(module, SelfAttention):
            module.scale = attention_scale(scheme, module.d_head, m)
            scales[name] = module.scale
    by_id = {id(rule.parameter): rule for rule in rules}
    missing = []
    for param_name, param in model.named_parameters():
        if id(param) in by_id:
            by_id[id(param)].param_name = param_name
        else:
            missing.append(param_name)
    if missing:  # e.g. a bare nn.Parameter on a supported module subclass: refuse rather than leave it in SP
        raise ValueError(f"cannot parametrize parameters {missing}: they belong to no recognised layer")
    result = Parametrization(scheme, base_width, width, m, rules, scales)
    model._learnmech_parametrization = result  # marks the model so a second call is refused
    return result


def parameter_rules(model: nn.Module) -> Parametrization:
    """The :class:`Parametrization` previously applied to ``model``; ValueError if it was never parametrized."""
    result = getattr(model, "_learnmech_parametrization", None)
    if result is None:
        raise ValueError("model was not parametrized; call learnmech.hyper.parametrize(model, scheme, base_width)")
    return result

