"""abc-parametrizations of PyTorch models: SP, NTP, muP and mean-field (Yang & Hu 2021; Yang et al. 2022).

A parametrization says, for every weight ``W = multiplier * w`` of a layer, how the trainable ``w`` is
initialised (std), which constant ``multiplier`` sits in front of it, and how its learning rate scales with width.
Everything is stated *relative to a base width* (the ``mup`` package's convention, Yang et al. 2022, "Tensor
Programs V", appendix: "muP in the base-shape form"): with ``m = width / base_width`` every scheme coincides with
the standard parametrization (SP) at ``m = 1``, so a learning rate tuned at the base width is the one to transfer.

Two ways to say what "width" is:

* ``base_width=`` (proportional widths): every hidden dimension is ``m = width / base_width`` times its base value;
  the first ``nn.Linear`` (or every ``nn.Embedding``) is the input layer, the last ``nn.Linear`` the readout.
* ``base=`` (base shapes, as ``mup.set_base_shapes`` does): a second instance of the same architecture at the base
  width. A dimension of a parameter is *infinite* when its size differs between model and base, and its own
  ``m`` is the ratio of the two sizes. Each parameter is then classified by Yang et al. (2022, sec. 5 and
  Table 3): **input** weight (finite fan-in, infinite fan-out), **hidden** weight (both infinite), **output**
  weight (infinite fan-in, finite fan-out), **vector** (one infinite dimension: biases, norm gains) or **finite**
  (nothing scales: plain SP). Works for any model built from ``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d``,
  ``nn.Embedding``, ``nn.LayerNorm``/``nn.GroupNorm``/``nn.BatchNorm1d``/``nn.BatchNorm2d``,
  ``nn.MultiheadAttention`` and :class:`~learnmech.hyper.models.SelfAttention`; anything else is refused,
  naming the parameter. Fan-out/fan-in are a weight's output/input channel axes (axes 0/1 of a Linear or Conv
  weight; a Conv's kernel axes must not scale); an ``nn.Embedding`` row is looked up by a one-hot input, so its
  fan-in is 1 and its vocabulary must not scale.

Per-layer rules (``g`` = ``gain``; fan_in of the layer; ``m_in``/``m_out`` the fan-in/fan-out width multipliers,
both ``m`` with ``base_width=``; ``base_fan_in = fan_in / m_in``):

==========  ======  ========================  ===========  ==============  ==========
role        scheme  init std of ``w``          multiplier   SGD lr x        Adam lr x
==========  ======  ========================  ===========  ==============  ==========
input       sp/ntp  g / sqrt(fan_in)           1            1               1
input       mup/mf  g / sqrt(fan_in)           1            m_out           1
hidden      sp      g / sqrt(fan_in)           1            1               1
hidden      ntp     g / sqrt(base_fan_in)      m_in^-1/2    1               1
hidden      mup     g / sqrt(fan_in)           1            m_out / m_in    1/m_in
hidden      mf      g / sqrt(base_fan_in)      m_in^-1/2    m_out           m_in^-1/2
output      sp      g / sqrt(fan_in)           1            1               1
output      ntp     g / sqrt(base_fan_in)      m_in^-1/2    1               1
output      mup/mf  g / sqrt(base_fan_in)      1/m_in       m_in            1
finite      all     g / sqrt(fan_in)           1            1               1
vectors     mup/mf  (biases 0, norm gains 1)   1            m [1 finite]    1
vectors     sp/ntp  (biases 0, norm gains 1)   1            1               1
==========  ======  ========================  ===========  ==============  ==========

muP rows are Table 8 of Yang et al. (2022) divided by their base-width values (equivalently Table 3 after the
abc-symmetry ``A -> A theta, B -> B/theta, C -> C/theta^2`` for SGD, ``C/theta`` for Adam, Yang & Hu 2021 eq. 5).
A hidden weight whose fan-in and fan-out scale differently gets SGD lr ``fan_out/fan_in`` (relative:
``m_out/m_in``), the general form of Table 3's hidden-weight entry (it is the ``mup`` package's ``MuSGD``
rule); with proportional widths it is 1.
``mf`` is the mean-field bookkeeping of the same limit (Mei, Montanari & Nguyen 2018 for one hidden layer;
Bordelon & Pehlevan 2022 for deep nets): NTK-style ``1/sqrt(fan_in)`` multipliers, a ``1/width`` readout and a
learning rate ``~ width``; with SGD its dynamics equal muP's exactly. ``ntp`` is the NTK parametrization (Jacot
et al. 2018): same function at init as SP, but ``dW`` is ``1/m`` smaller in hidden and readout layers, so features
freeze as width grows.

Attention: under muP/mf the attention logits use ``1/d_head`` instead of ``1/sqrt(d_head)`` (Yang et al. 2022,
sec. 4), written ``sqrt(base_d_head) / d_head`` so it is SP's value at the base width. The package's
:class:`~learnmech.hyper.models.SelfAttention` takes the scale directly (its ``scale`` attribute).
``nn.MultiheadAttention`` hard-codes ``1/sqrt(d_head)`` inside, so the query projection (the first ``embed_dim``
rows of ``in_proj_weight`` and ``in_proj_bias``, or ``q_proj_weight``) carries the constant multiplier
``c = sqrt(base_d_head / d_head)``: the logits become ``c q.k / sqrt(d_head) = sqrt(base_d_head)/d_head (w_q x).k``,
the same function of the same trainable ``w_q`` (same init, same learning rate) as scaling the logits, so the
training dynamics are *exactly* those of the ``1/d_head`` rule, not an approximation of them.

Depth (option ``depth=(L, base_L)`` with ``branches=``): Depth-muP (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs
VI"; Bordelon, Noci, Li, Hanin & Pehlevan 2023) multiplies the output of every residual branch by ``a/sqrt(L)``;
relative to the base depth the multiplier is ``sqrt(base_L / L)`` (a forward hook on each named branch module).
With SGD the learning rates stay depth-independent; with Adam the block parameters' learning rate is
``eta/sqrt(L)`` (Tensor Programs VI, Depth-muP for Adam), i.e. ``x sqrt(base_L / L)`` here for every hidden weight
and every parameter inside a named branch. The depth option applies to any scheme (it is how the
``depth-mup`` claim composes it with muP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize as torch_parametrize

from .._aliases import renamed_attribute
from .._checks import one_of, positive_float, positive_int
from ..seeding import torch_generator
from .models import SelfAttention

SCHEMES = ("sp", "ntp", "mup", "mf")
OPTIMIZERS = ("sgd", "adam")
Role = Literal["input", "hidden", "output", "finite"]
Kind = Literal["input", "hidden", "output", "finite", "vector"]
_LINEAR_LIKE = (nn.Linear, nn.Embedding)
_SUPPORTED = (nn.Linear, nn.Embedding, nn.LayerNorm, SelfAttention)  # with base_width= (proportional widths)
_CONV = (nn.Conv1d, nn.Conv2d)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)
_BASE_SUPPORTED = (nn.Linear, nn.Embedding, nn.MultiheadAttention, SelfAttention) + _CONV + _NORMS  # with base=


class _Multiplier(nn.Module):
    """``W = multiplier * w``: registered as a torch parametrization, so any forward pass and any stock
    optimizer see the multiplied weight while the optimizer updates ``w`` (Yang & Hu 2021, the "a" exponent).

    ``query_rows``/``query_multiplier``: the first ``query_rows`` rows (an attention in-projection's query part)
    carry an extra constant factor, the ``nn.MultiheadAttention`` logit-scale compensation (module docstring).
    """

    def __init__(self, multiplier: float, query_rows: int = 0, query_multiplier: float = 1.0) -> None:
        super().__init__()
        self.multiplier = float(multiplier)
        self.query_rows = int(query_rows)
        self.query_multiplier = float(query_multiplier)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.query_rows == 0 or self.query_multiplier == 1.0:
            return weight * self.multiplier
        rows = self.query_rows
        return torch.cat([weight[:rows] * (self.multiplier * self.query_multiplier),
                          weight[rows:] * self.multiplier])


class _BranchMultiplier:
    """Forward hook scaling a residual branch's output by ``multiplier`` (Depth-muP); for modules returning a
    tuple (``nn.MultiheadAttention`` returns ``(output, weights)``) only the first element is scaled."""

    def __init__(self, multiplier: float) -> None:
        self.multiplier = float(multiplier)

    def __call__(self, _module: nn.Module, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] * self.multiplier, *output[1:])
        return output * self.multiplier


@dataclass
class ParamRule:
    """How one parameter tensor is parametrized.

    name: the module's name (``"0"``, ``"blocks.0.fc1"``); tensor: its attribute (``"weight"``, ``"bias"``,
    ``"in_proj_weight"``, ...); role: the layer's role (a bias or gain shares its layer's role); fan_in/fan_out:
    the layer's dimensions; std: the init std of the trainable tensor ``w`` itself, absolute (e.g.
    ``gain / sqrt(fan_in)``; 0 for biases and gains); multiplier: the constant in ``W = multiplier * w``;
    lr_multiplier: this parameter's learning-rate factor for each optimizer family, ``{"sgd": .., "adam": ..}``;
    param_name: the trainable tensor's name in ``model.named_parameters()``; kind: this tensor's own class
    (``"input"``, ``"hidden"``, ``"output"``, ``"vector"`` or ``"finite"``); fan_in_mult/fan_out_mult: the width
    multipliers of its fan-in/fan-out axes (1 = finite); query_multiplier: the extra factor on an attention
    in-projection's query rows (1 elsewhere). ``init_std`` and ``lr_mult`` are deprecated read-only aliases of
    ``std`` and ``lr_multiplier`` (they warn).
    """

    name: str
    tensor: str
    role: Role
    fan_in: int
    fan_out: int
    std: float
    multiplier: float
    lr_multiplier: dict[str, float]
    parameter: nn.Parameter = field(repr=False, compare=False)
    param_name: str = ""  # the name in model.named_parameters(), e.g. "4.parametrizations.weight.original"
    kind: Kind = "finite"
    fan_in_mult: float = 1.0
    fan_out_mult: float = 1.0
    query_multiplier: float = 1.0

    # The glossary keeps W_std for a scale factor, not an absolute std, hence std.
    init_std = renamed_attribute("std")
    lr_mult = renamed_attribute("lr_multiplier")


@dataclass
class Parametrization:
    """The result of :func:`parametrize`: the per-parameter rules and the optimizer plumbing.

    width_mult: ``m = width / base_width`` (with ``base=``: the readout's fan-in, else the first hidden weight's,
    relative to the base). ``rules`` covers every parameter of the model exactly once. attention_scale: the
    effective logit scale of each attention module; depth_multiplier: the residual-branch multiplier
    ``sqrt(base_L / L)`` (1 without the depth option) applied to the modules named in ``branches``.
    """

    scheme: str
    base_width: int
    width: int
    width_mult: float
    rules: list[ParamRule]
    attention_scale: dict[str, float] = field(default_factory=dict)
    depth_multiplier: float = 1.0
    branches: tuple[str, ...] = ()

    def param_groups(self, lr: float, optimizer: str = "sgd") -> list[dict[str, Any]]:
        """Param groups for a stock torch optimizer: one per parameter, ``lr = lr * lr_multiplier[optimizer]``.

        ``optimizer`` is ``"sgd"`` (also right for SGD with momentum) or ``"adam"`` (Adam, AdamW): muP's learning
        rate multipliers differ between them because Adam's update does not scale with the gradient.
        """
        lr = positive_float(lr, "lr")
        kind = one_of(optimizer, "optimizer", OPTIMIZERS)
        return [
            {"params": [rule.parameter], "lr": lr * rule.lr_multiplier[kind], "name": f"{rule.name}.{rule.tensor}"}
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
        return {rule.param_name: rule.lr_multiplier[kind] for rule in self.rules}

    def table(self) -> list[dict[str, Any]]:
        """The rules as plain rows (for printing or a DataFrame)."""
        return [
            {"name": r.name, "tensor": r.tensor, "role": r.role, "kind": r.kind, "fan_in": r.fan_in,
             "fan_out": r.fan_out, "fan_in_mult": r.fan_in_mult, "fan_out_mult": r.fan_out_mult,
             "std": r.std, "multiplier": r.multiplier, "query_multiplier": r.query_multiplier,
             "lr_sgd": r.lr_multiplier["sgd"], "lr_adam": r.lr_multiplier["adam"]}
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
    scheme: str,
    role: Role,
    fan_in: int,
    width_mult: float,
    gain: float = 1.0,
    *,
    fan_out_mult: float | None = None,
) -> tuple[float, float, dict[str, float]]:
    """``(std, multiplier, {"sgd": lr_multiplier, "adam": lr_multiplier})`` for a weight matrix (module doc's table).

    fan_in: the layer's input dimension (for ``nn.Embedding`` use 1: a one-hot input has unit norm);
    width_mult: the width multiplier of the infinite axis that sets the rule: the fan-out's for an input layer
    (``m_out``), the fan-in's for hidden and output layers (``m_in``); ignored for ``role="finite"``.
    fan_out_mult: a hidden layer's fan-out multiplier when it differs from its fan-in's (default: the same).
    """
    scheme = one_of(scheme, "scheme", SCHEMES)
    m = positive_float(width_mult, "width_mult")
    m_out = m if fan_out_mult is None else positive_float(fan_out_mult, "fan_out_mult")
    fan_in = positive_int(fan_in, "fan_in")
    sp_std = gain / math.sqrt(fan_in)  # Kaiming/LeCun: keeps pre-activations O(1) at init
    if role == "finite":  # nothing scales with width: every scheme is SP (they all equal SP at m = 1)
        return sp_std, 1.0, {"sgd": 1.0, "adam": 1.0}
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
        if scheme == "mup":  # Table 3 hidden: SGD LR fan_out/fan_in, Adam LR 1/fan_in
            return sp_std, 1.0, {"sgd": m_out / m, "adam": 1.0 / m}
        # mf = muP under the abc-symmetry with theta = m^-1/2: SGD lr C/theta^2, Adam lr C/theta.
        return base_std, m**-0.5, {"sgd": m_out, "adam": m**-0.5}
    if role == "output":
        if scheme == "sp":
            return sp_std, 1.0, {"sgd": 1.0, "adam": 1.0}
        if scheme == "ntp":
            return base_std, m**-0.5, {"sgd": 1.0, "adam": 1.0}
        # muP readout: effective W has std ~ 1/width (Table 3: init var 1/fan_in^2) via a 1/m multiplier.
        return base_std, 1.0 / m, {"sgd": m, "adam": 1.0}
    raise ValueError(f"role must be 'input', 'hidden', 'output' or 'finite', got {role!r}")


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
    (Yang et al. 2022, sec. 4 "attention logits scale 1/d"). width_mult: ``d_head / base_d_head``."""
    scheme = one_of(scheme, "scheme", SCHEMES)
    d_head, m = positive_int(d_head, "d_head"), positive_float(width_mult, "width_mult")
    if scheme in ("sp", "ntp"):
        return 1.0 / math.sqrt(d_head)
    return math.sqrt(d_head / m) / d_head


@dataclass
class _Spec:
    """One parameter to parametrize, before the scheme is applied (the classification step's output)."""

    name: str  # module name
    tensor: str  # attribute on the module
    module: nn.Module
    role: Role
    kind: Kind
    fan_in: int
    fan_out: int
    m_in: float = 1.0
    m_out: float = 1.0
    fill: float | None = None  # vectors: the constant they start at (None: a weight, drawn from N(0, std^2))
    query_rows: int = 0  # attention in-projections: rows that carry the query multiplier


# ----------------------------------------------------------------------------------------------------------------
# Classification with base_width= (proportional widths; the roles come from the layers' positions)
# ----------------------------------------------------------------------------------------------------------------

def _dims(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return 1, module.embedding_dim  # nn.Embedding: a one-hot row of norm 1 (see weight_rule)


def _refuse_unsupported(modules: dict[str, nn.Module]) -> None:
    for name, module in modules.items():
        if any(True for _ in module.parameters(recurse=False)) and not isinstance(module, _SUPPORTED):
            raise ValueError(
                f"cannot parametrize layer {name or '<root>'!r} of type {type(module).__name__} with base_width: "
                "supported layers are nn.Linear, nn.Embedding, nn.LayerNorm and learnmech.hyper.models."
                "SelfAttention (pass base= for convolutions, nn.MultiheadAttention and other norms)"
            )


def _io_layers(
    modules: dict[str, nn.Module], input_layers: Sequence[str] | None, output_layer: str | None
) -> tuple[list[str], list[str], str]:
    """The Linear/Embedding layers in order, the input layers and the readout (defaults in :func:`parametrize`)."""
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
    return linear_like, input_layers, output_layer


def _specs_from_base_width(
    model: nn.Module,
    base_width: int,
    width: int | None,
    input_layers: Sequence[str] | None,
    output_layer: str | None,
) -> tuple[list[_Spec], int, dict[str, float]]:
    """Specs, the width and each attention module's ``d_head`` multiplier when all widths are proportional."""
    modules = dict(model.named_modules())
    _refuse_unsupported(modules)
    linear_like, inputs, output = _io_layers(modules, input_layers, output_layer)
    width = _dims(modules[output])[0] if width is None else positive_int(width, "width")
    m = width / base_width
    specs: list[_Spec] = []
    for name in linear_like:
        module = modules[name]
        role: Role = "input" if name in inputs else "output" if name == output else "hidden"
        fan_in, fan_out = _dims(module)
        m_in = 1.0 if role == "input" else m
        m_out = 1.0 if role == "output" else m
        specs.append(_Spec(name, "weight", module, role, role, fan_in, fan_out, m_in, m_out))
        if getattr(module, "bias", None) is not None:
            kind: Kind = "finite" if role == "output" else "vector"
            specs.append(_Spec(name, "bias", module, role, kind, fan_in, fan_out, 1.0, m_out, fill=0.0))
    for name, module in modules.items():
        if isinstance(module, nn.LayerNorm):
            for tensor, fill in (("weight", 1.0), ("bias", 0.0)):
                value = getattr(module, tensor)
                if value is not None:
                    specs.append(_Spec(name, tensor, module, "hidden", "vector", value.numel(), value.numel(),
                                       1.0, m, fill=fill))
    heads = {name: m for name, module in modules.items() if isinstance(module, SelfAttention)}
    return specs, width, heads


# ----------------------------------------------------------------------------------------------------------------
# Classification with base= (base shapes; the roles come from which axes differ between model and base)
# ----------------------------------------------------------------------------------------------------------------

def _axis_mults(
    full: str, value: torch.Tensor, base_value: torch.Tensor, scaling_axes: Sequence[int]
) -> list[float]:
    """Per-axis ``size / base size``; ValueError naming the parameter when the ranks differ or an axis outside
    ``scaling_axes`` (a kernel, a vocabulary) differs."""
    if value.dim() != base_value.dim():
        raise ValueError(
            f"parameter {full!r} has shape {tuple(value.shape)} in model but {tuple(base_value.shape)} in base: "
            "model and base must be the same architecture"
        )
    mults = [size / base_size for size, base_size in zip(value.shape, base_value.shape, strict=True)]
    for axis, mult in enumerate(mults):
        if mult != 1.0 and axis not in scaling_axes:
            raise ValueError(
                f"parameter {full!r}: axis {axis} has size {value.shape[axis]} in model but "
                f"{base_value.shape[axis]} in base; only width axes {tuple(scaling_axes)} may differ "
                f"(shapes {tuple(value.shape)} vs {tuple(base_value.shape)})"
            )
    return mults


def _weight_spec(
    name: str, tensor: str, module: nn.Module, base_module: nn.Module, *, embedding: bool = False,
    query_rows: int = 0,
) -> _Spec:
    """A weight ``(fan_out, fan_in, *kernel)``; or, with ``embedding``, a lookup table ``(num, dim)``: one-hot
    inputs, so fan-in 1 and only ``dim`` (the fan-out) may scale."""
    full = f"{name}.{tensor}" if name else tensor
    value, base_value = getattr(module, tensor), getattr(base_module, tensor)
    mults = _axis_mults(full, value, base_value, (1,) if embedding else (0, 1))
    if embedding:
        fan_in, fan_out, m_in, m_out = 1, value.shape[1], 1.0, mults[1]
    else:
        fan_in, fan_out, m_in, m_out = math.prod(value.shape[1:]), value.shape[0], mults[1], mults[0]
    kind: Kind = ("hidden" if m_out != 1.0 else "output") if m_in != 1.0 else ("input" if m_out != 1.0 else "finite")
    return _Spec(name, tensor, module, kind, kind, fan_in, fan_out, m_in, m_out, query_rows=query_rows)


def _vector_spec(
    name: str, tensor: str, module: nn.Module, base_module: nn.Module, role: Role | None, fill: float,
    query_rows: int = 0, layer: _Spec | None = None,
) -> _Spec:
    """A vector-like tensor (bias, gain): at most one infinite axis. role None: from the vector itself;
    layer: the weight whose bias this is (its fan_in/fan_out are reported, as with base_width)."""
    full = f"{name}.{tensor}" if name else tensor
    value, base_value = getattr(module, tensor), getattr(base_module, tensor)
    mults = _axis_mults(full, value, base_value, range(value.dim()))
    infinite = [m for m in mults if m != 1.0]
    if len(infinite) > 1:
        raise ValueError(
            f"cannot classify parameter {full!r}: a bias/gain with {len(infinite)} axes that differ from base "
            f"(shapes {tuple(value.shape)} vs {tuple(base_value.shape)}); vectors may have one infinite axis"
        )
    m_v = infinite[0] if infinite else 1.0
    kind: Kind = "vector" if infinite else "finite"
    if role is None:
        role = "hidden" if infinite else "finite"
    fan_in, fan_out = (value.numel(), value.numel()) if layer is None else (layer.fan_in, layer.fan_out)
    return _Spec(name, tensor, module, role, kind, fan_in, fan_out, 1.0, m_v, fill=fill, query_rows=query_rows)


def _module_specs(name: str, module: nn.Module, base_module: nn.Module) -> list[_Spec]:
    """Specs for one module's own parameters (``recurse=False``) with ``base=``."""
    if isinstance(module, nn.MultiheadAttention):
        # Query rows (first embed_dim rows of the packed in-projection, or q_proj_weight) carry the logit-scale
        # compensation (module docstring); out_proj is a child nn.Linear, classified on its own.
        embed = module.embed_dim
        specs = []
        if module.in_proj_weight is not None:
            specs.append(_weight_spec(name, "in_proj_weight", module, base_module, query_rows=embed))
        else:
            specs.append(_weight_spec(name, "q_proj_weight", module, base_module, query_rows=embed))
            specs += [_weight_spec(name, t, module, base_module) for t in ("k_proj_weight", "v_proj_weight")]
        if module.in_proj_bias is not None:
            specs.append(_vector_spec(name, "in_proj_bias", module, base_module, None, 0.0, query_rows=embed))
        for tensor in ("bias_k", "bias_v"):  # the extra key/value rows: start at 0 like every bias
            if getattr(module, tensor) is not None:
                specs.append(_vector_spec(name, tensor, module, base_module, None, 0.0))
        return specs
    if isinstance(module, _NORMS):
        return [_vector_spec(name, tensor, module, base_module, None, fill)
                for tensor, fill in (("weight", 1.0), ("bias", 0.0)) if getattr(module, tensor) is not None]
    if isinstance(module, nn.Embedding):
        return [_weight_spec(name, "weight", module, base_module, embedding=True)]
    if isinstance(module, (nn.Linear, *_CONV)):
        weight = _weight_spec(name, "weight", module, base_module)
        specs = [weight]
        if module.bias is not None:
            specs.append(_vector_spec(name, "bias", module, base_module, weight.role, 0.0, layer=weight))
        return specs
    return []


def _check_same_architecture(model: nn.Module, base: nn.Module) -> None:
    """ValueError naming the first parameter that the two modules do not share."""
    if not isinstance(base, nn.Module):
        raise ValueError(f"base must be a torch.nn.Module (the model at base width), got {type(base).__name__}")
    if base is model:
        return
    for module_name, module in base.named_modules():
        if torch_parametrize.is_parametrized(module):
            raise ValueError(f"base layer {module_name!r} carries a torch parametrization; pass a fresh base model")
    names, base_names = [n for n, _ in model.named_parameters()], [n for n, _ in base.named_parameters()]
    for name in names:
        if name not in base_names:
            raise ValueError(f"parameter {name!r} of model has no counterpart in base: not the same architecture")
    for name in base_names:
        if name not in names:
            raise ValueError(f"parameter {name!r} of base has no counterpart in model: not the same architecture")


def _specs_from_base(model: nn.Module, base: nn.Module) -> tuple[list[_Spec], int, int, dict[str, float]]:
    """Specs, (width, base_width) and each attention module's ``d_head`` multiplier from base shapes."""
    _check_same_architecture(model, base)
    base_modules = dict(base.named_modules())
    specs: list[_Spec] = []
    heads: dict[str, float] = {}
    for name, module in model.named_modules():
        own = [tensor for tensor, _ in module.named_parameters(recurse=False)]
        base_module = base_modules.get(name)
        if (own or isinstance(module, SelfAttention)) and type(base_module) is not type(module):
            raise ValueError(
                f"layer {name or '<root>'!r} is {type(module).__name__} in model but "
                f"{type(base_module).__name__} in base: not the same architecture"
            )
        if isinstance(module, SelfAttention):
            heads[name] = module.d_head / base_module.d_head
        if isinstance(module, nn.MultiheadAttention):  # more heads at a fixed head_dim: the scale stays SP's
            heads[name] = module.head_dim / base_module.head_dim
        if not own:
            continue
        found = _module_specs(name, module, base_module) if isinstance(module, _BASE_SUPPORTED) else []
        covered = {spec.tensor for spec in found}
        for tensor in own:
            if tensor not in covered:
                full = f"{name}.{tensor}" if name else tensor
                raise ValueError(
                    f"cannot classify parameter {full!r} of {type(module).__name__}: supported layers are "
                    "nn.Linear, nn.Conv1d/2d, nn.Embedding, nn.LayerNorm/GroupNorm/BatchNorm1d/2d, "
                    "nn.MultiheadAttention and learnmech.hyper.models.SelfAttention"
                )
        specs += found
    width, base_width = _reference_width(specs)
    return specs, width, base_width, heads


def _reference_width(specs: list[_Spec]) -> tuple[int, int]:
    """(width, base_width) for reporting: the readout's fan-in, else the first hidden fan-in, else no scaling."""
    for kind in ("output", "hidden"):
        for spec in specs:
            if spec.kind == kind:
                channels = spec.module.weight.shape[1] if spec.tensor == "weight" else spec.fan_in
                return int(channels), max(1, round(channels / spec.m_in))
    for spec in specs:
        if spec.kind == "input":
            return int(spec.fan_out), max(1, round(spec.fan_out / spec.m_out))
    return 1, 1


# ----------------------------------------------------------------------------------------------------------------
# Applying a scheme to the classified parameters
# ----------------------------------------------------------------------------------------------------------------

def _rule(spec: _Spec, scheme: str, gain: float) -> tuple[float, float, dict[str, float]]:
    """``(std, multiplier, lr_multiplier)`` for a spec: the module docstring's table."""
    if spec.fill is not None:  # vectors: unit gain / zero bias, Table 3 "biases" learning rates
        return 0.0, 1.0, vector_rule(scheme, spec.kind == "vector", spec.m_out)
    if spec.kind == "hidden":
        return weight_rule(scheme, "hidden", spec.fan_in, spec.m_in, gain, fan_out_mult=spec.m_out)
    if spec.kind == "input":
        return weight_rule(scheme, "input", spec.fan_in, spec.m_out, gain)
    return weight_rule(scheme, spec.kind, spec.fan_in, spec.m_in, gain)


def _apply(
    specs: list[_Spec], scheme: str, gain: float, seed: int, query_mults: dict[str, float],
    depth_mult: float, branches: Sequence[str],
) -> list[ParamRule]:
    """Re-initialise every spec's tensor, register its multiplier and return its rule (in spec order)."""
    _refuse_shared(specs)
    gen = torch_generator(seed)
    rules = []
    with torch.no_grad():
        for spec in specs:
            std, multiplier, lr_multiplier = _rule(spec, scheme, gain)
            value = getattr(spec.module, spec.tensor)
            if spec.fill is None:
                # Drawn on the CPU generator, then copied: the same numbers on every device.
                value.copy_(torch.empty(value.shape, dtype=value.dtype).normal_(0.0, std, generator=gen))
                if isinstance(spec.module, nn.Embedding) and spec.module.padding_idx is not None:
                    value[spec.module.padding_idx].zero_()  # torch's contract: the padding row stays 0
            else:
                value.fill_(spec.fill)
            query = query_mults.get(spec.name, 1.0) if spec.query_rows else 1.0
            if multiplier != 1.0 or query != 1.0:
                torch_parametrize.register_parametrization(
                    spec.module, spec.tensor, _Multiplier(multiplier, spec.query_rows, query))
                value = getattr(spec.module.parametrizations, spec.tensor).original
            if depth_mult != 1.0 and (spec.kind == "hidden" or _inside(spec.name, branches)):
                lr_multiplier = {"sgd": lr_multiplier["sgd"], "adam": lr_multiplier["adam"] * depth_mult}
            rules.append(ParamRule(spec.name, spec.tensor, spec.role, spec.fan_in, spec.fan_out, std, multiplier,
                                   lr_multiplier, value, kind=spec.kind, fan_in_mult=spec.m_in,
                                   fan_out_mult=spec.m_out, query_multiplier=query))
    return rules


def _refuse_shared(specs: list[_Spec]) -> None:
    """Tied weights (one tensor owned by two layers, e.g. an embedding reused as the readout) would need two
    rules at once (input and output); ``mup`` has a dedicated readout for them, we refuse them by name."""
    owners: dict[int, str] = {}
    for spec in specs:
        full = f"{spec.name}.{spec.tensor}" if spec.name else spec.tensor
        key = id(getattr(spec.module, spec.tensor))
        if key in owners:
            raise ValueError(f"parameter {full!r} is the same tensor as {owners[key]!r} (tied weights): not supported")
        owners[key] = full


def _inside(name: str, branches: Sequence[str]) -> bool:
    return any(name == branch or name.startswith(branch + ".") for branch in branches)


def _attention(model: nn.Module, scheme: str, heads: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Set each SelfAttention's scale; return ``(effective logit scale, MultiheadAttention query multiplier)``
    per attention module (module docstring: ``c = scale * sqrt(d_head)`` compensates MHA's built-in scale)."""
    modules = dict(model.named_modules())
    scales, query = {}, {}
    for name, m_head in heads.items():
        module = modules[name]
        d_head = module.d_head if isinstance(module, SelfAttention) else module.head_dim
        scale = attention_scale(scheme, d_head, m_head)
        scales[name] = scale
        if isinstance(module, SelfAttention):
            module.scale = scale
        else:
            query[name] = scale * math.sqrt(d_head)
    return scales, query


def _depth(model: nn.Module, depth: Any, branches: Sequence[str] | None) -> tuple[float, tuple[str, ...]]:
    """Validate the depth option; return the branch multiplier ``sqrt(base_L / L)`` and the branch names."""
    if depth is None:
        if branches:
            raise ValueError("branches needs depth=(L, base_L): the multiplier is sqrt(base_L / L)")
        return 1.0, ()
    if not isinstance(depth, Sequence) or len(depth) != 2:
        raise ValueError(f"depth must be a pair (L, base_L) of positive integers, got {depth!r}")
    n_blocks, base_blocks = positive_int(depth[0], "depth[0] (L)"), positive_int(depth[1], "depth[1] (base_L)")
    if isinstance(branches, str) or not branches:
        raise ValueError(f"branches must name the residual-branch modules (a non-empty list), got {branches!r}")
    modules = dict(model.named_modules())
    for branch in branches:
        if branch not in modules or branch == "":
            raise ValueError(f"branches: {branch!r} is not a submodule of the model")
    return math.sqrt(base_blocks / n_blocks), tuple(branches)


def parametrize(
    model: nn.Module,
    scheme: str,
    base_width: int | None = None,
    *,
    base: nn.Module | None = None,
    width: int | None = None,
    input_layers: Sequence[str] | None = None,
    output_layer: str | None = None,
    gain: float = 1.0,
    seed: int = 0,
    depth: tuple[int, int] | None = None,
    branches: Sequence[str] | None = None,
) -> Parametrization:
    """Re-initialise ``model`` in place under ``scheme`` and return its per-parameter rules.

    model: a ``torch.nn.Module``. With ``base_width``: built from ``nn.Linear``, ``nn.Embedding``,
        ``nn.LayerNorm`` and :class:`~learnmech.hyper.models.SelfAttention` (any container around them), all
        hidden widths proportional. With ``base``: any model built from the layers the module docstring lists.
        A module owning a parameter that cannot be classified is refused, naming it, so nothing is silently
        left in SP.
    scheme: ``"sp"``, ``"ntp"``, ``"mup"`` or ``"mf"`` (module docstring has the table).
    base_width: the width at which every scheme equals SP (where you tuned your hyperparameters).
    base: instead of ``base_width``, the same architecture at the base width (not modified); the dimensions
        whose sizes differ are the infinite ones (``mup``'s base shapes). Pass exactly one of the two.
    width: the model's width (``base_width`` only); default: the readout's ``in_features``.
    input_layers: names of the input layers (``base_width`` only; default: every ``nn.Embedding``, else the first
        ``nn.Linear``). output_layer: name of the readout (``base_width`` only; default: the last ``nn.Linear``).
    gain: the init std factor ``g`` (e.g. ``sqrt(2)`` for deep ReLU nets). seed: seeds the re-initialisation.
    depth: ``(L, base_L)``, the number of residual blocks of the model and of the base depth, for Depth-muP
        branch multipliers ``sqrt(base_L / L)``; branches: the names of the modules whose outputs are the
        residual branches (e.g. ``["blocks.0.attn", "blocks.0.mlp", ...]``); required with ``depth``.

    Returns a :class:`Parametrization`; build the optimizer with ``p.optimizer(torch.optim.SGD, lr)`` or pass
    ``p.param_groups(lr, "adam")`` to any Adam-family optimizer.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    scheme = one_of(scheme, "scheme", SCHEMES)
    gain = positive_float(gain, "gain")
    if (base_width is None) == (base is None):
        raise ValueError("pass exactly one of base_width (proportional widths) or base (the model at base width)")
    if getattr(model, "_learnmech_parametrization", None) is not None:
        raise ValueError("model is already parametrized; build a fresh model to change scheme")
    for name, module in model.named_modules():
        if torch_parametrize.is_parametrized(module):
            raise ValueError(f"model layer {name!r} already carries a torch parametrization; cannot parametrize it")
    if base is None:
        base_width = positive_int(base_width, "base_width")
        specs, width, heads = _specs_from_base_width(model, base_width, width, input_layers, output_layer)
    else:
        for label, value in (("width", width), ("input_layers", input_layers), ("output_layer", output_layer)):
            if value is not None:
                raise ValueError(f"{label} applies with base_width only; with base the roles follow from shapes")
        specs, width, base_width, heads = _specs_from_base(model, base)
    depth_mult, branch_names = _depth(model, depth, branches)
    scales, query = _attention(model, scheme, heads)
    rules = _apply(specs, scheme, gain, seed, query, depth_mult, branch_names)
    _name_parameters(model, rules)
    modules = dict(model.named_modules())
    for branch in branch_names:
        modules[branch].register_forward_hook(_BranchMultiplier(depth_mult))
    result = Parametrization(scheme, base_width, width, width / base_width, rules, scales, depth_mult, branch_names)
    model._learnmech_parametrization = result  # marks the model so a second call is refused
    return result


def _name_parameters(model: nn.Module, rules: list[ParamRule]) -> None:
    """Fill each rule's ``param_name``; ValueError if a parameter of the model has no rule."""
    by_id = {id(rule.parameter): rule for rule in rules}
    missing = []
    for param_name, param in model.named_parameters():
        if id(param) in by_id:
            by_id[id(param)].param_name = param_name
        else:
            missing.append(param_name)
    if missing:  # e.g. a bare nn.Parameter on a supported module subclass: refuse rather than leave it in SP
        raise ValueError(f"cannot parametrize parameters {missing}: they belong to no recognised layer")


def parameter_rules(model: nn.Module) -> Parametrization:
    """The :class:`Parametrization` previously applied to ``model``; ValueError if it was never parametrized."""
    result = getattr(model, "_learnmech_parametrization", None)
    if result is None:
        raise ValueError("model was not parametrized; call learnmech.hyper.parametrize(model, scheme, base_width) "
                         "or parametrize(model, scheme, base=base_model)")
    return result
