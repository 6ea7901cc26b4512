"""The empirical (finite-width) neural tangent kernel of any ``torch.nn.Module``, its implicit (matrix-free)
products, Monte-Carlo estimates of the infinite-width kernels, and the finite-width networks whose kernels converge
to the analytic ones of :func:`learnmech.kernels.mlp`.

The NTK of a network ``f(x; theta)`` is ``Theta(x1, x2) = sum_p df(x1)/dtheta_p df(x2)/dtheta_p^T``
(Jacot, Gabriel & Hongler, 2018, eq. 4). Ways to compute it (Novak, Sohl-Dickstein & Schoenholz, 2022, "Fast finite
width neural tangent kernel"):

* **Jacobian contraction** (generic): per-sample Jacobians ``J`` of shape ``(n, k, P)`` via
  ``torch.func.vmap(jacrev)``, then ``J1 J2^T``. Works for every module, costs memory ``n k P``.
* **Structured derivatives** (sec. 4): for a layer that is linear in its parameters the parameter Jacobian is
  built from the layer's input and the output cotangent ``g = df/dy``, which come from one forward pass and ``k``
  vector-Jacobian products (w.r.t. zero perturbations added to each such layer's output):
  - dense ``y = x W^T + b`` on ``(batch, features)``: ``dF/dW = g (x) x``, so its NTK term is the elementwise
    product of two small Grams, ``(x1 . x2 + 1) * (g1 . g2)``; no ``P``-sized object is built;
  - convolution ``y[o, l] = sum_c W[o, c] P[c, l] + b[o]`` over input patches ``P`` (unfold):
    ``dF/dW = sum_l g[:, l] P[:, l]^T`` and ``dF/db = sum_l g[:, l]``; dense layers on ``(batch, ..., features)``
    the same with positions for patches; LayerNorm ``y = xhat * w + b``: ``dF/dw = sum g * xhat`` over the
    leading positions. These per-layer Jacobians are contracted like the generic ones but cost one batched
    einsum instead of ``n k`` backward passes.
* **NTK-vector products** (sec. 3.2): ``Theta v = J (J^T v)`` by one VJP and one JVP, never forming ``Theta``
  (:func:`ntk_vector_product`).

:func:`empirical_ntk` uses the structured rules for every ``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d``
(``groups=1``) and affine ``nn.LayerNorm`` it can see (called once per forward, parameters not shared) and the
Jacobian contraction for all other parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap
from torch.nn import functional as F  # noqa: N812 - the usual alias

from .._aliases import renamed
from .._checks import as_array, one_of, positive_int
from ..seeding import torch_generator
from .stax import MLP

if TYPE_CHECKING:
    from .analytic import Kernel

__all__ = ["empirical_ntk", "ntk_vector_product", "monte_carlo_kernel_fn", "sample_seeds", "mlp_network",
           "ensemble_outputs"]

# Features of all x2 chunks are kept (instead of recomputed for every x1 chunk) while they stay below this size.
_MAX_CACHED_FEATURE_BYTES = 512 * 2**20


# ----------------------------------------------------------------------------------------------------------------
# Finite-width networks matching the analytic kernels
# ----------------------------------------------------------------------------------------------------------------


@renamed(in_features="in_dim", out_features="out_dim")
def mlp_network(
    in_dim: int,
    hidden_layers: int,
    width: int,
    activation: str | Callable[[torch.Tensor], torch.Tensor] = "relu",
    W_std: float = 1.0,
    b_std: float = 0.0,
    out_dim: int = 1,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> nn.Module:
    """The finite-width MLP ``kernels.stax.MLP(hidden_layers, width, activation, W_std, b_std, out_dim)`` in the NTK
    parameterization, whose infinite-width kernels are exactly ``learnmech.kernels.mlp(hidden_layers, activation,
    W_std, b_std, parameterization="ntk")``: a thin use of that one description (``.module((in_dim,), seed)``).

    Layers: ``hidden_layers`` x (dense of ``width`` units, activation), then a dense readout of ``out_dim``.
    Every dense layer computes ``W_std/sqrt(fan_in) x W^T + b_std b`` with all parameters ``N(0, 1)`` (drawn from
    ``seed``), as neural-tangents' ``stax.Dense(parameterization="ntk")``. Input ``(n, in_dim)``, output
    ``(n, out_dim)``. With ``b_std == 0`` the layers have no bias parameters (their kernel terms vanish).
    ``activation``: a name of ``kernels.analytic.ACTIVATIONS`` (case-insensitive) or an elementwise callable.
    ``device``: where the network lives (default CPU); the parameters are the same for a seed on every device.

    ``in_features`` and ``out_features`` are deprecated keyword aliases of ``in_dim`` and ``out_dim``.
    """
    in_dim = positive_int(in_dim, "in_dim")
    net = MLP(hidden_layers, width, activation, W_std, b_std, out_dim).module((in_dim,), seed=seed, dtype=dtype)
    # Drawn on the CPU generator, then moved: a seed gives the same network on every device.
    return net if device is None else net.to(device)


def ensemble_outputs(
    model: nn.Module,
    x: Any,
    members: int,
    *,
    seed: int = 0,
    chunk: int = 256,
) -> np.ndarray:
    """Outputs of ``members`` independent re-draws of ``model``'s parameters, all ``N(0, 1)`` (the NTK
    parameterization of :func:`mlp_network`, where this *is* the initialisation), evaluated on ``x``.

    Vectorised with ``torch.func.functional_call`` + ``vmap`` over stacked parameters, ``chunk`` members at a
    time, on the model's device. ``x``: ``(n, ...)``; returns ``(members, n, k)`` float64 (``k`` = flattened
    output size per input).
    """
    members = positive_int(members, "members")
    chunk = positive_int(chunk, "chunk")
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    dtype = next(iter(params.values())).dtype if params else torch.get_default_dtype()
    device = _model_device(model)
    xt = _as_input(x, "x", dtype, device)
    gen = torch_generator(seed)

    def one_member(member_params: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, (member_params, buffers), (xt,)).reshape(xt.shape[0], -1)

    outputs = []
    for start in range(0, members, chunk):
        size = min(chunk, members - start)
        # Drawn on the CPU generator and moved, so a seed gives the same members on every device.
        stacked = {name: torch.randn((size, *p.shape), generator=gen, dtype=p.dtype).to(device)
                   for name, p in params.items()}
        with torch.no_grad():
            outputs.append(vmap(one_member)(stacked))
    return torch.cat(outputs).cpu().double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Empirical NTK
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Features:
    """What one chunk of ``n`` inputs contributes to the NTK.

    taps: per dense layer handled by the Gram rule, its input ``x`` ``(n, in)`` (None when the weight is frozen),
        output cotangents ``g`` ``(k, n, out)`` and whether its bias is trained;
    jacobians: per-sample Jacobians ``(n, k, P_i)`` of the other parameters: one block per convolution /
        LayerNorm / sequence-dense layer, built from its inputs and cotangents, plus one block (vmap-jacrev) for
        all parameters no rule covers;
    positional: per convolution / sequence-dense layer whose kernel term is cheaper as position-pair Grams (trace
        mode only, see ``_use_position_grams``): its patches ``P`` ``(n, L, D)``, cotangents ``G`` ``(n, L, k O)``
        and whether its bias is trained.
    """

    taps: list[tuple[torch.Tensor | None, torch.Tensor, bool]]
    jacobians: list[torch.Tensor]
    outputs: int
    n: int
    positional: list[tuple[torch.Tensor, torch.Tensor, bool]] = field(default_factory=list)

    def nbytes(self) -> int:
        tensors = [t for x, g, _ in self.taps for t in (x, g) if t is not None] + self.jacobians
        tensors += [t for p, g, _ in self.positional for t in (p, g)]
        return sum(t.numel() * t.element_size() for t in tensors)


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _as_input(x: Any, name: str, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``x`` as a tensor with a leading batch axis on ``device``; floating inputs cast to ``dtype``, checked
    finite."""
    if x is None:
        raise ValueError(f"{name} must be an array of inputs with a leading batch axis, got None")
    try:
        tensor = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if tensor.ndim < 1 or tensor.shape[0] < 1:
        raise ValueError(f"{name} must have a leading batch axis with at least one input, got shape "
                         f"{tuple(tensor.shape)}")
    if device is not None:
        tensor = tensor.to(device)
    if tensor.is_floating_point():
        tensor = tensor.to(dtype)
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or inf")
    return tensor


def _resolve_dtype(dtype: Any, params: dict[str, torch.Tensor]) -> torch.dtype:
    if dtype is None:
        floating = [p.dtype for p in params.values() if p.is_floating_point()]
        return floating[0] if floating else torch.get_default_dtype()
    aliases = {"float64": torch.float64, "float32": torch.float32, "double": torch.float64, "float": torch.float32}
    if isinstance(dtype, str):
        return aliases[one_of(dtype, "dtype", aliases)]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, type) and dtype in (np.float64, np.float32):
        return torch.float64 if dtype is np.float64 else torch.float32
    raise ValueError(f"dtype must be None, a floating torch.dtype or one of {sorted(aliases)}, got {dtype!r}")


# Module types with a structured rule. Exact types only: a subclass may override forward.
_CONV_TYPES: dict[type, int] = {nn.Conv1d: 1, nn.Conv2d: 2}


def _tap_kind(module: nn.Module, in_shape: tuple[int, ...], batch: int) -> str | None:
    """Which structured rule is exact for ``module`` called once on an input of shape ``in_shape`` whose
    leading axis is the batch (None: no rule, the Jacobian contraction handles its parameters)."""
    if len(in_shape) < 2 or in_shape[0] != batch:
        return None
    kind = type(module)
    if kind is nn.Linear:
        return "dense" if len(in_shape) == 2 else "dense_nd"
    if kind in _CONV_TYPES:
        # groups > 1 would need block-diagonal patches: left to the generic path.
        return "conv" if len(in_shape) == 2 + _CONV_TYPES[kind] and module.groups == 1 else None
    if kind is nn.LayerNorm:
        return "layernorm" if module.elementwise_affine else None
    return None


def _tappable_layers(model: nn.Module, trainable: dict[str, torch.Tensor], probe: Callable[[], Any]) -> dict:
    """The submodules a structured rule is exact for: called exactly once per forward on an input whose leading
    axis is the batch (see :func:`_tap_kind`), with parameters that no other module shares. ``probe`` runs one
    forward on a batch of ``>= 2`` inputs when available; returns
    ``{module_name: (module, [its trainable names], kind, per-sample output shape)}``."""
    owners: dict[int, list[str]] = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for p_name, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append(f"{mod_name}.{p_name}" if mod_name else p_name)
    calls: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {}
    candidates = {name: m for name, m in model.named_modules()
                  if type(m) in (nn.Linear, nn.LayerNorm, *_CONV_TYPES)}

    def recorder(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            in_shape = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
            out_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            calls.setdefault(name, []).append((in_shape, out_shape))
        return hook

    handles = [m.register_forward_hook(recorder(name)) for name, m in candidates.items()]
    try:
        batch = probe()
    finally:
        for handle in handles:
            handle.remove()
    tapped = {}
    for name, module in candidates.items():
        shapes = calls.get(name, [])
        if len(shapes) != 1:
            continue
        in_shape, out_shape = shapes[0]
        kind = _tap_kind(module, in_shape, batch)
        if kind is None or not out_shape or out_shape[0] != batch:
            continue
        own = {id(p) for p in module.parameters(recurse=False)}
        if any(len(owners[pid]) != 1 for pid in own):
            continue  # a parameter shared with another module: its gradient has more than this path
        names = [n for n, p in trainable.items() if id(p) in own or n in (f"{name}.weight", f"{name}.bias")]
        if names:
            tapped[name] = (module, names, kind, out_shape[1:])
    return tapped


def _conv_patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input patches of a groups=1 ``nn.Conv1d``/``nn.Conv2d`` for input ``x`` ``(n, C, *spatial)``:
    ``(n, C * prod(kernel_size), L)`` with ``L`` the number of output positions, ordered like the flattened
    output, so that ``conv(x)[:, o, l] = sum_c W.reshape(O, -1)[o, c] * patches[:, c, l] + b[o]``."""
    dims = _CONV_TYPES[type(module)]
    kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    if isinstance(module.padding, str):
        # "valid": none; "same": total dilation*(k-1) per axis, the extra one on the right (as torch's Conv).
        totals = [0 if module.padding == "valid" else d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        pads = [(total // 2, total - total // 2) for total in totals]
    else:
        pads = [(p, p) for p in module.padding]
    flat_pads = [side for pair in reversed(pads) for side in pair]  # F.pad wants the last axis first
    if any(flat_pads):
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, flat_pads, mode=mode)
    if dims == 1:  # unfold is 2-D only: a 1-D conv is a 2-D conv over a height-1 image
        x, kernel, dilation, stride = x[:, :, None, :], (1, *kernel), (1, *dilation), (1, *stride)
    return F.unfold(x, kernel, dilation=dilation, padding=0, stride=stride)


class _NTKComputer:
    """Holds the model, its parameters cast to one dtype, and the split into structured/generic parameters."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, implementation: str, probe_x: torch.Tensor,
                 full: bool = False) -> None:
        self.model = model
        self.dtype = dtype
        self.full = full  # "full" mode: per-logit-pair blocks, which the position Grams do not provide
        named = dict(model.named_parameters())
        self.params = {n: (p.detach().to(dtype) if p.is_floating_point() else p.detach()) for n, p in named.items()}
        self.buffers = {n: (b.detach().to(dtype) if b.is_floating_point() else b.detach())
                        for n, b in model.named_buffers()}
        trainable = {n: p for n, p in named.items() if p.requires_grad}
        if not trainable:
            raise ValueError("model has no trainable parameters (requires_grad=True); its NTK is undefined")
        self.taps: dict[str, tuple[nn.Module, list[str], str, tuple[int, ...]]] = {}
        if implementation == "structured":
            self.taps = _tappable_layers(model, trainable, lambda: self._probe(probe_x))
        tapped = {n for _, names, _, _ in self.taps.values() for n in names}
        self.rest = [n for n in trainable if n not in tapped]

    def _probe(self, x: torch.Tensor) -> int:
        with torch.no_grad():
            functional_call(self.model, (self.params, self.buffers), (x,))
        return x.shape[0]

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (params, self.buffers), (x,)).reshape(x.shape[0], -1)

    def features(self, x: torch.Tensor) -> _Features:
        n = x.shape[0]
        taps: list[tuple[torch.Tensor | None, torch.Tensor, bool]] = []
        jacobians: list[torch.Tensor] = []
        positional: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
        outputs = None
        if self.taps:
            # Zero perturbations added to each tapped layer's output: the VJP w.r.t. them is the output
            # cotangent g = df/dy of that layer (Novak et al. 2022, sec. 4, "structured derivatives").
            # The probe recorded each tapped layer's per-sample output shape.
            eps = {name: torch.zeros((n, *shape), dtype=self.dtype, device=x.device, requires_grad=True)
                   for name, (_, _, _, shape) in self.taps.items()}
            # Plain autograd (not torch.func.vjp, whose first call imports torch._dynamo: seconds per process).
            with torch.enable_grad():
                out, inputs = self._tapped_forward(eps, x)
                outputs = out.shape[1]
                if outputs == 1:
                    grads = torch.autograd.grad(out, list(eps.values()), torch.ones_like(out))
                    cotangents = {name: g[None] for name, g in zip(eps, grads, strict=True)}
                else:
                    basis = torch.eye(outputs, dtype=self.dtype, device=x.device)[:, None, :]
                    grads = torch.autograd.grad(out, list(eps.values()), basis.expand(outputs, n, outputs),
                                                is_grads_batched=True)
                    cotangents = dict(zip(eps, grads, strict=True))
            inputs = {name: value.detach() for name, value in inputs.items()}
            for name, (module, names, kind, _) in self.taps.items():
                weight_trained = any(nm.endswith("weight") for nm in names)
                bias_trained = any(nm.endswith("bias") for nm in names)
                g = cotangents[name]  # (k, n, *per-sample output shape)
                if kind == "dense":
                    taps.append((inputs[name] if weight_trained else None, g, bias_trained))
                elif kind in ("conv", "dense_nd") and weight_trained and not self.full:
                    patches, g_pos = self._positional(module, kind, inputs[name], g)
                    if _use_position_grams(*patches.shape[1:], g_pos.shape[-1]):
                        positional.append((patches, g_pos, bias_trained))
                        continue
                    jacobians.extend(self._layer_jacobians(module, kind, inputs[name], g, weight_trained,
                                                           bias_trained, patches))
                else:
                    jacobians.extend(self._layer_jacobians(module, kind, inputs[name], g, weight_trained,
                                                           bias_trained))
        if self.rest:
            jacobians.append(self._jacobian(x))
            outputs = jacobians[-1].shape[1]
        assert outputs is not None
        return _Features(taps, jacobians, outputs, n, positional)

    @staticmethod
    def _positional(module: nn.Module, kind: str, x: torch.Tensor,
                    g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A conv / sequence-dense layer as ``y[l] = W P[l] + b`` at ``L`` positions: its patches ``P``
        ``(n, L, D)`` and cotangents ``(n, L, k O)`` (logit-major in the last axis)."""
        k, n = g.shape[:2]
        if kind == "conv":
            patches = _conv_patches(module, x).transpose(1, 2)  # (n, L, C K)
            g = g.reshape(k, n, g.shape[2], -1).permute(1, 3, 0, 2)  # (n, L, k, O)
        else:
            patches = x.reshape(n, -1, x.shape[-1])  # (n, S, in)
            g = g.reshape(k, n, -1, g.shape[-1]).permute(1, 2, 0, 3)  # (n, S, k, O)
        if patches.shape[1] != g.shape[1]:
            raise RuntimeError(f"layer patches have {patches.shape[1]} positions, outputs {g.shape[1]}")
        return patches, g.reshape(n, g.shape[1], -1)

    @staticmethod
    def _layer_jacobians(module: nn.Module, kind: str, x: torch.Tensor, g: torch.Tensor, weight: bool,
                         bias: bool, patches: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-sample Jacobians ``(n, k, P_layer)`` of one layer's weight and bias from its input ``x`` and
        output cotangents ``g`` ``(k, n, ...)`` (Novak et al. 2022, sec. 4: the parameter Jacobian of a layer
        that is linear in its parameters is its input structure contracted with the output cotangent)."""
        k, n = g.shape[:2]
        blocks = []
        if kind == "conv":
            # y[o, l] = sum_c W[o, c] P[c, l] + b[o] over patches P (unfold), so
            # dF/dW[o, c] = sum_l g[o, l] P[c, l] and dF/db[o] = sum_l g[o, l].
            g = g.reshape(k, n, g.shape[2], -1)  # (k, n, O, L)
            if weight:
                # patches (n, L, C*K), from _positional when it already built them
                patches = _conv_patches(module, x).transpose(1, 2) if patches is None else patches
                if patches.shape[1] != g.shape[-1]:
                    raise RuntimeError(f"conv patches have {patches.shape[1]} positions, outputs {g.shape[-1]}")
                # one batched GEMM per sample: (k O, L) @ (L, C K) -> (k O, C K)
                per_sample = torch.bmm(g.permute(1, 0, 2, 3).reshape(n, -1, g.shape[-1]), patches)
                blocks.append(per_sample.reshape(n, k, -1))
            if bias:
                blocks.append(g.sum(-1).transpose(0, 1))
        elif kind == "layernorm":
            # y = xhat * w + b elementwise over normalized_shape (Ba, Kiros & Hinton 2016, eq. 4 with gain/bias):
            # dF/dw = sum over the leading positions of g * xhat, dF/db the same sum of g.
            size = math.prod(module.normalized_shape)
            g = g.reshape(k, n, -1, size)
            if weight:
                xhat = F.layer_norm(x, module.normalized_shape, None, None, module.eps).reshape(1, n, -1, size)
                blocks.append((g * xhat).sum(2).transpose(0, 1))
            if bias:
                blocks.append(g.sum(2).transpose(0, 1))
        elif kind == "dense_nd":
            # y[..., o] = sum_i W[o, i] x[..., i] + b[o] at every leading position: sum the outer products.
            g = g.reshape(k, n, -1, g.shape[-1])  # (k, n, S, O)
            if weight:
                blocks.append(torch.einsum("kaso,asi->akoi", g, x.reshape(n, -1, x.shape[-1])).reshape(n, k, -1))
            if bias:
                blocks.append(g.sum(2).transpose(0, 1))
        return blocks

    def _tapped_forward(self, eps: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        captured: dict[str, torch.Tensor] = {}

        def make_hook(name: str) -> Callable:
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
                captured[name] = inputs[0]
                return output + eps[name]
            return hook

        handles = [m.register_forward_hook(make_hook(name)) for name, (m, _, _, _) in self.taps.items()]
        try:
            out = self._forward(self.params, x)
        finally:
            for handle in handles:
                handle.remove()
        return out, captured

    def _jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample Jacobian of the outputs w.r.t. the non-tapped parameters, ``(n, k, P_rest)``."""
        n = x.shape[0]
        rest = {name: self.params[name] for name in self.rest}

        def single(rest_params: dict[str, torch.Tensor], x_i: torch.Tensor) -> torch.Tensor:
            return self._forward({**self.params, **rest_params}, x_i[None])[0]

        try:
            jac = vmap(jacrev(single), in_dims=(None, 0))(rest, x)
        except RuntimeError:
            # Modules that cannot be vmapped per sample: the batched Jacobian (n*k VJPs), slower but general.
            jac = jacrev(lambda r: self._forward({**self.params, **r}, x))(rest)
        return torch.cat([jac[name].reshape(n, jac[name].shape[1], -1) for name in self.rest], dim=-1)


def _use_position_grams(positions: int, patch_size: int, cotangent_size: int) -> bool:
    """Whether a layer ``y[l] = W P[l] + b`` (``L`` positions, patches of size ``D``, ``k O`` cotangents) costs
    less per input pair as position-pair Grams, ``L^2 (k O + D)`` multiply-adds, than as the contraction of its
    per-sample Jacobians, ``k O D`` (Novak et al. 2022, sec. 4 and table 1: structured derivatives win for large
    weights at few positions, e.g. wide late convolutions on small feature maps; the Jacobian form for early
    layers with many positions)."""
    return positions**2 * (cotangent_size + patch_size) < cotangent_size * patch_size


# Position-pair Gram blocks are built in row slices of at most this many bytes.
_MAX_POSITION_GRAM_BYTES = 64 * 2**20


def _block(f1: _Features, f2: _Features, full: bool) -> torch.Tensor:
    """NTK block between two chunks: ``(n1, n2)`` (mean over logits) or ``(n1, n2, k, k)`` when ``full``."""
    k, n1, n2 = f1.outputs, f1.n, f2.n
    like = f1.taps[0][1] if f1.taps else f1.jacobians[0]
    total = torch.zeros((n1, n2, k, k) if full else (n1, n2), dtype=like.dtype, device=like.device)
    for (x1, g1, bias), (x2, g2, _) in zip(f1.taps, f2.taps, strict=True):
        # Dense layer: dF/dW = g (x) x, dF/db = g, so Theta_layer = (x1.x2 + [bias]) * (g1.g2)
        # (Novak et al. 2022, eq. for fully-connected layers in sec. 4).
        scale = x1 @ x2.T if x1 is not None else torch.zeros((n1, n2), dtype=total.dtype, device=total.device)
        if bias:
            scale = scale + 1.0
        if full:
            total += scale[:, :, None, None] * torch.einsum("aio,bjo->ijab", g1, g2)
        else:
            total += scale * (g1.permute(1, 0, 2).reshape(n1, -1) @ g2.permute(1, 0, 2).reshape(n2, -1).T / k)
    for j1, j2 in zip(f1.jacobians, f2.jacobians, strict=True):
        if full:
            total += torch.einsum("iap,jbp->ijab", j1, j2)
        else:
            total += j1.reshape(n1, -1) @ j2.reshape(n2, -1).T / k
    for (p1, g1, bias), (p2, g2, _) in zip(f1.positional, f2.positional, strict=True):
        # Theta_layer = sum_{l,m} (P1[l].P2[m] + [bias]) (g1[l].g2[m]) with the cotangent dot summed over the
        # logits too (trace mode): the conv analogue of the dense rule (Novak et al. 2022, sec. 4).
        positions = p1.shape[1]
        rows = max(1, _MAX_POSITION_GRAM_BYTES // (2 * n2 * positions**2 * p1.element_size()))
        p2_flat, g2_flat = p2.reshape(n2 * positions, -1), g2.reshape(n2 * positions, -1)
        for start in range(0, n1, rows):
            stop = min(n1, start + rows)
            gram_x = (p1[start:stop].reshape(-1, p1.shape[-1]) @ p2_flat.T).reshape(stop - start, positions, n2,
                                                                                    positions)
            gram_g = (g1[start:stop].reshape(-1, g1.shape[-1]) @ g2_flat.T).reshape(stop - start, positions, n2,
                                                                                    positions)
            if bias:
                gram_x = gram_x + 1.0
            total[start:stop] += (gram_x * gram_g).sum(dim=(1, 3)) / k
    return total


def _ntk_computer(model: nn.Module, a: torch.Tensor, b: torch.Tensor | None, torch_dtype: torch.dtype,
                  implementation: str, *, full: bool) -> _NTKComputer:
    """The kernel's feature computer, probed on two inputs (of ``a``, or one of ``a`` and one of ``b``); a model
    that cannot be applied to inputs of this shape is a ValueError naming ``x1``."""
    probe = a[:2] if a.shape[0] >= 2 or b is None else torch.cat([a[:1], b[:1]])
    try:
        return _NTKComputer(model, torch_dtype, implementation, probe, full=full)
    except RuntimeError as exc:  # e.g. a feature count the model's first layer does not accept
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"x1: the model cannot be applied to inputs of per-input shape {tuple(a.shape[1:])} "
                         f"({first_line})") from None


def _chunks(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``x`` cut along its first axis into consecutive chunks of at most ``batch_size`` inputs."""
    return [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)]


class _ColumnFeatures:
    """Features of the column chunks, computed on demand and kept while all of them together fit in
    :data:`_MAX_CACHED_FEATURE_BYTES` (else recomputed for every row of blocks)."""

    def __init__(self, computer: _NTKComputer, chunks: list[torch.Tensor]) -> None:
        self.computer, self.chunks = computer, chunks
        self.cache: dict[int, _Features] = {}
        self.keep = True

    def __call__(self, j: int) -> _Features:
        if j in self.cache:
            return self.cache[j]
        feats = self.computer.features(self.chunks[j])
        if self.keep and feats.nbytes() * len(self.chunks) <= _MAX_CACHED_FEATURE_BYTES:
            self.cache[j] = feats
        else:
            self.keep = False
        return feats


def _kernel_blocks(computer: _NTKComputer, chunks1: list[torch.Tensor], chunks2: list[torch.Tensor],
                   symmetric: bool, *, full: bool) -> list[list[torch.Tensor | None]]:
    """The kernel's blocks, row chunk by column chunk; when ``symmetric`` (``chunks2`` is ``chunks1``) only the
    blocks on and above the diagonal (the others are None, see :func:`_mirror_lower_blocks`)."""
    features2 = _ColumnFeatures(computer, chunks2)
    rows = []
    with torch.enable_grad():
        for i, chunk1 in enumerate(chunks1):
            f1 = features2(i) if symmetric else computer.features(chunk1)
            row: list[torch.Tensor | None] = []
            for j in range(len(chunks2)):
                if symmetric and j < i:
                    row.append(None)  # filled from the transposed block by _mirror_lower_blocks
                    continue
                row.append(_block(f1, f1 if (symmetric and j == i) else features2(j), full))
            rows.append(row)
    return rows


def _mirror_lower_blocks(rows: list[list[torch.Tensor | None]], *, full: bool) -> None:
    """Fill the blocks below the diagonal of a symmetric kernel from the transposed blocks above it, in place
    (``Theta(x2, x1)_{ab} = Theta(x1, x2)_{ba}``)."""
    for i in range(len(rows)):
        for j in range(i):
            upper = rows[j][i]
            assert upper is not None
            rows[i][j] = upper.permute(1, 0, 3, 2) if full else upper.transpose(0, 1)


def empirical_ntk(
    model: nn.Module,
    x1: Any,
    x2: Any = None,
    *,
    mode: str = "trace",
    batch_size: int = 256,
    dtype: Any = None,
    implementation: str = "structured",
) -> np.ndarray:
    """Empirical NTK ``Theta(x1, x2) = J(x1) J(x2)^T`` of ``model`` over its trainable parameters
    (Jacot et al. 2018, eq. 4).

    model: any ``nn.Module`` mapping a batch ``(n, ...)`` to outputs ``(n, ...)``, processing samples independently
        (no batch statistics); its outputs are flattened to ``k`` logits per input. The computation runs on the
        model's device (that of its first parameter); inputs are moved there.
    x1: ``(n1, ...)`` inputs; x2: ``(n2, ...)`` or None (then ``x2 = x1`` and only half of the blocks are computed).
    mode: ``"trace"`` -> ``(n1, n2)``, the mean over logits of the per-logit kernel
        ``(1/k) sum_a J_a(x1) J_a(x2)^T`` (neural-tangents' ``trace_axes=(-1,)`` convention; for a scalar output
        simply the NTK); ``"full"`` -> ``(n1, n2, k, k)`` for ``k > 1`` (``(n1, n2)`` when ``k == 1``).
    batch_size: inputs per chunk; memory is bounded by a few chunks' features.
    dtype: ``None`` (the parameters' dtype), ``torch.float32``/``torch.float64`` or ``"float32"``/``"float64"``:
        the precision of the whole computation (parameters and inputs are cast to it).
    implementation: ``"structured"`` (Novak et al. 2022, sec. 4: ``nn.Linear`` on ``(batch, features)`` inputs
        via input/cotangent Grams; ``nn.Linear`` on ``(batch, ..., features)``, ``nn.Conv1d``/``nn.Conv2d``
        with ``groups=1`` (any stride, padding, padding mode, dilation) and affine ``nn.LayerNorm`` via per-layer
        Jacobians contracted from their inputs/patches and output cotangents, or, in trace mode for wide layers
        on few positions, via position-pair Grams of patches and cotangents (whichever needs fewer flops); each
        layer must be called once per forward and own its parameters; everything else by Jacobian contraction)
        or ``"jacobian"`` (Jacobian contraction, ``vmap(jacrev)``, for all parameters). Both agree to rounding
        (tests: 1e-10 relative in float64).
    Returns numpy float64.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mode = one_of(mode, "mode", ("trace", "full"))
    implementation = one_of(implementation, "implementation", ("structured", "jacobian"))
    batch_size = positive_int(batch_size, "batch_size")
    torch_dtype = _resolve_dtype(dtype, dict(model.named_parameters()))
    device = _model_device(model)
    a = _as_input(x1, "x1", torch_dtype, device)
    b = None if x2 is None else _as_input(x2, "x2", torch_dtype, device)
    if b is not None and tuple(b.shape[1:]) != tuple(a.shape[1:]):
        raise ValueError(f"x2 must have the same per-input shape as x1 {tuple(a.shape[1:])}, "
                         f"got {tuple(b.shape[1:])}")
    computer = _ntk_computer(model, a, b, torch_dtype, implementation, full=mode == "full")
    chunks1 = _chunks(a, batch_size)
    symmetric = b is None
    chunks2 = chunks1 if symmetric else _chunks(b, batch_size)
    rows = _kernel_blocks(computer, chunks1, chunks2, symmetric, full=mode == "full")
    if symmetric:
        _mirror_lower_blocks(rows, full=mode == "full")
    kernel = torch.cat([torch.cat(row, dim=1) for row in rows], dim=0)  # type: ignore[arg-type]
    if mode == "full" and kernel.shape[-1] == 1:
        kernel = kernel[..., 0, 0]
    return kernel.detach().cpu().double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Implicit NTK: kernel-vector products without the kernel
# ----------------------------------------------------------------------------------------------------------------


def _batched(fn: Callable[[Any], Any], batch: Any) -> Any:
    """``vmap(fn)(batch)`` over the leading axis; a Python loop for modules without vmap support."""
    try:
        return vmap(fn)(batch)
    except RuntimeError:
        if isinstance(batch, dict):
            size = next(iter(batch.values())).shape[0]
            results = [fn({name: value[i] for name, value in batch.items()}) for i in range(size)]
        else:
            results = [fn(item) for item in batch]
        if isinstance(results[0], dict):
            return {name: torch.stack([r[name] for r in results]) for name in results[0]}
        return torch.stack(results)


def ntk_vector_product(
    model: nn.Module,
    x1: Any,
    v: Any,
    x2: Any = None,
    *,
    mode: str = "full",
    batch_size: int = 256,
    dtype: Any = None,
) -> np.ndarray | torch.Tensor:
    """``Theta(x1, x2) v`` without forming ``Theta``: one vector-Jacobian product ``g = J(x2)^T v`` (a gradient,
    size ``P``) followed by one Jacobian-vector product ``J(x1) g`` (Novak et al. 2022, sec. 3.2, "NTK-vector
    products"; Jacot et al. 2018, eq. 4 for ``Theta = J J^T``), both by ``torch.func``. Memory ``O(P + chunk)``
    instead of ``O(n1 n2)``, so ``n`` can go beyond what the kernel matrix would fit (e.g. for CG or Lanczos).

    model: an ``nn.Module`` as for :func:`empirical_ntk` (``k`` logits per input, trainable parameters only);
        the computation runs on its device. x1: ``(n1, ...)`` inputs; x2: ``(n2, ...)`` or None (``= x1``).
    v: mode ``"full"``: ``(n2, k)`` (or ``(n2,)`` when ``k == 1``), a vector over the outputs on ``x2``;
        returns ``sum_j Theta(x1_i, x2_j) v_j`` of shape ``(n1, k)`` (``(n1,)`` for 1-D ``v``), the product
        with the full ``(n1 k, n2 k)`` kernel. Mode ``"trace"``: ``(n2,)`` or ``(n2, m)`` (``m`` vectors at
        once); returns ``(n1,)`` or ``(n1, m)``: the product with :func:`empirical_ntk`'s ``mode="trace"`` kernel
        ``(1/k) sum_a J_a J_a^T`` (``k`` VJP/JVP pairs per vector).
    batch_size: inputs per chunk of ``x1`` and ``x2``; the VJPs of the ``x2`` chunks are summed.
    dtype: as for :func:`empirical_ntk`.
    Returns a ``torch.Tensor`` on the model's device (in ``dtype``) when ``v`` is a tensor, else numpy float64.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mode = one_of(mode, "mode", ("trace", "full"))
    batch_size = positive_int(batch_size, "batch_size")
    named = dict(model.named_parameters())
    torch_dtype = _resolve_dtype(dtype, named)
    device = _model_device(model)
    a = _as_input(x1, "x1", torch_dtype, device)
    b = a if x2 is None else _as_input(x2, "x2", torch_dtype, device)
    if tuple(b.shape[1:]) != tuple(a.shape[1:]):
        raise ValueError(f"x2 must have the same per-input shape as x1 {tuple(a.shape[1:])}, "
                         f"got {tuple(b.shape[1:])}")
    params = {n: (p.detach().to(torch_dtype) if p.is_floating_point() else p.detach()) for n, p in named.items()}
    buffers = {n: (t.detach().to(torch_dtype) if t.is_floating_point() else t.detach())
               for n, t in model.named_buffers()}
    trainable = {n: params[n] for n, p in named.items() if p.requires_grad}
    if not trainable:
        raise ValueError("model has no trainable parameters (requires_grad=True); its NTK is undefined")

    def forward(x: torch.Tensor) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        return lambda tp: functional_call(model, ({**params, **tp}, buffers), (x,)).reshape(x.shape[0], -1)

    try:
        with torch.no_grad():
            k = forward(b[:1])(trainable).shape[1]
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"x1: the model cannot be applied to inputs of per-input shape {tuple(a.shape[1:])} "
                         f"({first_line})") from None
    returns_tensor = isinstance(v, torch.Tensor)
    vec = (v.detach() if returns_tensor else torch.as_tensor(as_array(v, "v"))).to(device=device, dtype=torch_dtype)
    n2 = b.shape[0]
    if not torch.isfinite(vec).all():
        raise ValueError("v contains NaN or inf")
    if mode == "full":
        if vec.shape not in ((n2, k), (n2,) if k == 1 else (n2, k)):
            want = f"({n2}, {k})" + (f" or ({n2},)" if k == 1 else "")
            raise ValueError(f"v must have shape {want} (n2 inputs x k={k} outputs) for mode='full', "
                             f"got {tuple(vec.shape)}")
        # one cotangent (n2, k)
        cotangents = vec.reshape(1, n2, k)
    else:
        if vec.ndim not in (1, 2) or vec.shape[0] != n2:
            raise ValueError(f"v must have shape ({n2},) or ({n2}, m) for mode='trace', got {tuple(vec.shape)}")
        columns = vec.reshape(n2, -1)  # (n2, m)
        # cotangent (column c, logit a) = columns[:, c] e_a^T: the k per-logit kernels, each applied to c.
        eye = torch.eye(k, dtype=torch_dtype, device=device)
        cotangents = torch.einsum("jc,ab->cajb", columns, eye).reshape(-1, n2, k)  # (m k, n2, k)

    # g = J(x2)^T c for every cotangent c, summed over the chunks of x2 (a VJP is linear in the inputs' terms).
    with torch.enable_grad():
        grads: dict[str, torch.Tensor] | None = None
        for start in range(0, n2, batch_size):
            _, vjp_fn = vjp(forward(b[start:start + batch_size]), trainable)
            part = _batched(lambda c, vjp_fn=vjp_fn: vjp_fn(c)[0], cotangents[:, start:start + batch_size])
            grads = part if grads is None else {n: grads[n] + part[n] for n in grads}
    assert grads is not None
    # J(x1) g per chunk of x1, one JVP per cotangent (forward mode: no graph kept).
    outs = []
    for start in range(0, a.shape[0], batch_size):
        f = forward(a[start:start + batch_size])
        outs.append(_batched(lambda tangent, f=f: jvp(f, (trainable,), (tangent,))[1], grads))
    product = torch.cat(outs, dim=1)  # (B, n1, k)
    n1 = a.shape[0]
    if mode == "full":
        result = product[0] if vec.ndim == 2 else product[0, :, 0]
    else:
        m = product.shape[0] // k
        per_logit = product.reshape(m, k, n1, k)
        result = torch.diagonal(per_logit, dim1=1, dim2=3).mean(-1).T  # (n1, m): mean over logits a of J_a J_a^T
        result = result if vec.ndim == 2 else result[:, 0]
    result = result.detach()
    return result if returns_tensor else result.cpu().double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Monte-Carlo estimate of the infinite-width kernels from finite networks
# ----------------------------------------------------------------------------------------------------------------


def sample_seeds(seed: int, n_samples: int) -> list[int]:
    """The seeds :func:`monte_carlo_kernel_fn` passes to ``module_fn``: ``n_samples`` 32-bit words of
    ``numpy.random.SeedSequence(seed)`` (a prefix of those for a larger ``n_samples``, so estimates extend)."""
    seed = positive_int(seed, "seed", minimum=0)
    n_samples = positive_int(n_samples, "n_samples")
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_samples, dtype=np.uint32)]


def monte_carlo_kernel_fn(
    module_fn: Callable[[int], nn.Module],
    x1: Any,
    x2: Any = None,
    n_samples: int = 16,
    seed: int = 0,
    *,
    batch_size: int = 256,
    dtype: Any = None,
    implementation: str = "structured",
) -> Kernel:
    """Monte-Carlo estimate of a network's NNGP and NTK from ``n_samples`` finite networks at initialisation
    (neural-tangents' ``monte_carlo_kernel_fn`` with ``trace_axes=(-1,)``; Novak et al. 2019, sec. 2.3 and
    app. "Monte Carlo estimates"):

        nngp = mean_s (1/k) f_s(x1) f_s(x2)^T,      ntk = mean_s Theta_s(x1, x2)  (empirical_ntk, mode="trace")

    Both converge to the infinite-width kernels as width and ``n_samples`` grow: the NTK of each network
    fluctuates ``O(width^-1/2)`` around its limit (Jacot et al. 2018, thm. 1), the NNGP estimate is an average of
    outer products whose spread ``O(n_samples^-1/2)`` does not shrink with width (Lee et al. 2018, sec. 2.3).

    module_fn: ``seed -> nn.Module`` mapping ``(n, ...)`` inputs to ``(n, k)`` outputs, e.g.
        ``lambda s: mlp_network(d, 2, 512, seed=s)`` or a stax ``Layer.module`` bound to an input shape; called with
        the seeds :func:`sample_seeds` draws from ``seed``. Each network's device is used for its computations.
    x1: ``(n1, ...)`` inputs; x2: ``(n2, ...)`` or None (``= x1``). n_samples: number of networks (>= 1).
    batch_size, dtype, implementation: as for :func:`empirical_ntk`.
    Returns ``Kernel(nngp, ntk)``, each ``(n1, n2)`` numpy float64.
    """
    # Imported here: analytic (or the stax layers it may build on) can import this module.
    from .analytic import Kernel

    if not callable(module_fn):
        raise ValueError(f"module_fn must be a callable seed -> torch.nn.Module, got {type(module_fn).__name__}")
    seeds = sample_seeds(seed, n_samples)
    nngp_sum: np.ndarray | None = None
    ntk_sum: np.ndarray | None = None
    for s in seeds:
        model = module_fn(s)
        if not isinstance(model, nn.Module):
            raise ValueError(f"module_fn must return a torch.nn.Module, got {type(model).__name__} for seed {s}")
        ntk = empirical_ntk(model, x1, x2, mode="trace", batch_size=batch_size, dtype=dtype,
                            implementation=implementation)
        torch_dtype = _resolve_dtype(dtype, dict(model.named_parameters()))
        device = _model_device(model)
        params = {n: (p.detach().to(torch_dtype) if p.is_floating_point() else p.detach())
                  for n, p in model.named_parameters()}
        buffers = {n: (t.detach().to(torch_dtype) if t.is_floating_point() else t.detach())
                   for n, t in model.named_buffers()}

        def outputs(x: Any, name: str, model: nn.Module = model, params: dict = params, buffers: dict = buffers,
                    torch_dtype: torch.dtype = torch_dtype, device: torch.device = device) -> torch.Tensor:
            xt = _as_input(x, name, torch_dtype, device)
            with torch.no_grad():
                return torch.cat([functional_call(model, (params, buffers), (xt[i:i + batch_size],))
                                  .reshape(min(batch_size, xt.shape[0] - i), -1)
                                  for i in range(0, xt.shape[0], batch_size)])

        f1 = outputs(x1, "x1")
        f2 = f1 if x2 is None else outputs(x2, "x2")
        # (1/k) f1 f2^T: the output covariance per logit, neural-tangents' trace_axes=(-1,) convention.
        nngp = (f1 @ f2.T / f1.shape[1]).cpu().double().numpy()
        nngp_sum = nngp if nngp_sum is None else nngp_sum + nngp
        ntk_sum = ntk if ntk_sum is None else ntk_sum + ntk
    assert nngp_sum is not None and ntk_sum is not None
    return Kernel(nngp=nngp_sum / len(seeds), ntk=ntk_sum / len(seeds))
