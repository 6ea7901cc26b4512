"""``from_torch``: the ``kernels.stax`` description of a plain ``nn.Sequential``."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import one_of
from . import stax
from .stax import Layer

__all__ = ["from_torch"]


def _flatten_sequential(module: nn.Module) -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if type(child) is nn.Sequential:
            out.extend((f"{name}.{sub}", m) for sub, m in _flatten_sequential(child))
        else:
            out.append((name, child))
    return out


def _stds(layer: nn.Linear | nn.Conv1d | nn.Conv2d, fan_in: int, init: str) -> tuple[float, float | None]:
    """(W_std, b_std) of the standard parameterization Var[W] = W_std^2 / fan_in, Var[b] = b_std^2."""
    has_bias = layer.bias is not None
    if init == "default":
        # torch's reset_parameters: kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance
        # 1 / (3 fan_in); the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too.
        return 1.0 / math.sqrt(3.0), (1.0 / math.sqrt(3.0 * fan_in)) if has_bias else None
    with torch.no_grad():
        w_std = math.sqrt(fan_in * float(layer.weight.double().pow(2).mean()))
        b_std = math.sqrt(float(layer.bias.double().pow(2).mean())) if has_bias else None
    return w_std, b_std


def _conv_padding(layer: nn.Conv1d | nn.Conv2d, where: str) -> object:
    kernel = tuple(layer.kernel_size)
    pad = layer.padding
    if isinstance(pad, str):
        if pad == "valid":
            return "VALID"
        if layer.padding_mode == "zeros":
            return "SAME"  # torch's "same" (stride 1): total k - 1, left = total // 2, as jax's SAME
        pads = tuple((k - 1) // 2 for k in kernel) if all(k % 2 for k in kernel) else None
    else:
        pads = tuple(pad)
    if layer.padding_mode == "zeros":
        return ("explicit", list(pads))
    if layer.padding_mode == "circular" and pads is not None and all(s == 1 for s in layer.stride) \
            and all(2 * p == k - 1 for p, k in zip(pads, kernel, strict=True)):
        return "CIRCULAR"
    raise ValueError(f"from_torch cannot describe {where}: padding_mode={layer.padding_mode!r} with padding "
                     f"{layer.padding} (supported: zeros, or circular with stride 1 and padding (k - 1) / 2)")


def from_torch(module: nn.Module, init: str = "default") -> Layer:
    """The ``kernels.stax`` network of a plain ``nn.Sequential``, so that ``from_torch(model).kernel_fn(x)`` is
    the infinite-width NNGP/NTK of ``model``'s architecture and parameterization.

    Supported children (nested ``nn.Sequential`` are flattened): ``nn.Linear`` and ``nn.LayerNorm(D)`` on
    ``(N, D)`` activations, ``nn.Conv1d``/``nn.Conv2d`` (groups = 1, dilation 1; zero padding of any amount, torch's
    "same"/"valid", or circular padding (k - 1) / 2 at stride 1), ``nn.ReLU``, ``nn.GELU`` (exact),
    ``nn.Tanh``, ``nn.Identity``, ``nn.AvgPool1d``/``nn.AvgPool2d`` (count_include_pad, no ceil_mode),
    ``nn.AdaptiveAvgPool1d/2d(1)`` followed by ``nn.Flatten`` (= ``GlobalAvgPool``) and ``nn.Flatten()``. Anything
    else raises ValueError naming the child.

    Parameterization: torch's layers compute ``y = W x + b`` with the variances of the weights themselves, i.e.
    neural-tangents' ``parameterization="standard"`` (Sohl-Dickstein et al. 2020; the NTK then depends on the
    widths, read from the modules) with Var[W] = W_std^2 / fan_in and Var[b] = b_std^2, fan_in = in_features or
    in_channels * prod(kernel_size). ``init="default"``: torch's default initialisation (``reset_parameters``:
    weight and bias uniform on +-1/sqrt(fan_in)), so W_std = 1/sqrt(3) and b_std = 1/sqrt(3 fan_in) exactly.
    ``init="weights"``: W_std^2 = fan_in * mean(W^2) and b_std^2 = mean(b^2) measured from the module's current
    parameters (for a model re-initialised with another scheme). ``nn.LayerNorm`` with ``elementwise_affine``
    (gain 1 and bias 0 at init) adds the NTK of its gain and bias: Theta += K + 1 after it.

    The kernels are those of the network with Gaussian weights of these variances (as ``layer.module`` builds).
    torch's uniform init has the same limit in every layer whose fan-in grows with width; at the first layer
    the pre-activations are a sum of D uniform terms, Gaussian only as D grows, so the empirical NTK of a
    default-initialised torch model converges to this kernel up to that O(1/D) non-Gaussianity of layer 1.

    Example::

        model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))
        kern = from_torch(model).kernel_fn(x)      # x (n, 3, H, W): kern.nngp, kern.ntk (n, n)
    """
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"module must be an nn.Sequential, got {type(module).__name__}")
    if not isinstance(init, str):
        raise ValueError(f"init must be 'default' or 'weights', got {init!r}")
    init = one_of(init, "init", ("default", "weights"))
    children = _flatten_sequential(module)
    if not children:
        raise ValueError("module must not be an empty nn.Sequential")
    layers: list[Layer] = []
    for i, (name, child) in enumerate(children):
        where = f"layer {name} ({child})"
        nxt = children[i + 1][1] if i + 1 < len(children) else None
        if isinstance(child, nn.Linear):
            w_std, b_std = _stds(child, child.in_features, init)
            layers.append(stax._flat_only(stax.Dense(child.out_features, w_std, b_std, "standard"), where))
        elif isinstance(child, (nn.Conv1d, nn.Conv2d)):
            if child.groups != 1 or any(d != 1 for d in child.dilation) or isinstance(child, nn.ConvTranspose1d):
                raise ValueError(f"from_torch cannot describe {where}: only groups=1 and dilation=1")
            kernel = tuple(child.kernel_size)
            w_std, b_std = _stds(child, child.in_channels * math.prod(kernel), init)
            layers.append(stax.Conv(child.out_channels, kernel, tuple(child.stride), _conv_padding(child, where),
                                    w_std, b_std, "standard"))
        elif isinstance(child, nn.ReLU):
            layers.append(stax.Relu())
        elif isinstance(child, nn.GELU):
            if child.approximate != "none":
                raise ValueError(f"from_torch cannot describe {where}: only the exact GELU (approximate='none')")
            layers.append(stax.Gelu())
        elif isinstance(child, nn.Tanh):
            layers.append(stax.Tanh())
        elif isinstance(child, nn.Identity):
            layers.append(stax.Identity())
        elif isinstance(child, (nn.AvgPool1d, nn.AvgPool2d)):
            dims = 1 if isinstance(child, nn.AvgPool1d) else 2

            def as_tuple(v: object, dims: int = dims) -> tuple[int, ...]:
                return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * dims

            size = as_tuple(child.kernel_size)
            stride = as_tuple(child.stride if child.stride is not None else child.kernel_size)
            pads = as_tuple(child.padding)
            if child.ceil_mode or getattr(child, "divisor_override", None) is not None or \
                    (not child.count_include_pad and any(pads)):
                raise ValueError(f"from_torch cannot describe {where}: only ceil_mode=False, no divisor_override "
                                 "and count_include_pad=True (or no padding)")
            layers.append(stax.AvgPool(size, stride, ("explicit", list(pads))))
        elif isinstance(child, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
            out = child.output_size
            sizes = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if any(s != 1 for s in sizes) or not isinstance(nxt, nn.Flatten):
                raise ValueError(f"from_torch cannot describe {where}: only output size 1 followed by nn.Flatten "
                                 "(global average pooling)")
            layers.append(stax.GlobalAvgPool())
        elif isinstance(child, nn.Flatten):
            if child.start_dim != 1 or child.end_dim != -1:
                raise ValueError(f"from_torch cannot describe {where}: only Flatten(start_dim=1, end_dim=-1)")
            layers.append(stax.Flatten())
        elif isinstance(child, nn.LayerNorm):
            if len(child.normalized_shape) != 1:
                raise ValueError(f"from_torch cannot describe {where}: only LayerNorm(D) on (N, D) activations")
            if child.elementwise_affine:
                layer = stax._affine_layernorm(child.eps, True, child.bias is not None)
            else:
                layer = stax.LayerNorm(1, child.eps)
            layers.append(stax._flat_only(layer, where))
        else:
            raise ValueError(f"from_torch cannot describe {where}: supported are Linear, Conv1d/2d, ReLU, GELU, "
                             "Tanh, Identity, AvgPool1d/2d, AdaptiveAvgPool1d/2d(1) + Flatten, Flatten, LayerNorm")
    return stax.serial(*layers)
