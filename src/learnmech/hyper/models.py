"""Small PyTorch models whose width is the only knob, for parametrization experiments.

All are plain ``torch.nn.Module``\\ s built from stock layers, so :func:`learnmech.hyper.parametrize` can classify
every layer: :func:`mlp` and :class:`TinyTransformer` (``nn.Linear``/``nn.Embedding``/``nn.LayerNorm`` and the
package's attention, which exposes its logit scale ``scale`` because muP changes it from ``1/sqrt(d_head)`` to
``1/d_head``, Yang et al. 2022, section 4) work with ``base_width=``; :func:`cnn` (``nn.Conv2d``) and
:class:`MHATransformer` (``nn.MultiheadAttention``) need ``base=`` (the same builder at the base width).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import one_of, positive_int
from ..observe import tasks


def _activation_name(activation: str, choices: object = tasks.ACTIVATIONS, stacklevel: int = 3) -> str:
    """``activation`` checked against ``choices`` (default: the one activation table,
    :data:`learnmech.observe.tasks.ACTIVATIONS`); ``"linear"``, this strand's old word for ``"identity"``, is a
    deprecated alias (DeprecationWarning) mapped to ``"identity"``."""
    if activation == "linear":
        warnings.warn('activation "linear" is deprecated, use "identity" (the same nn.Identity)', DeprecationWarning,
                      stacklevel=stacklevel)
        activation = "identity"
    return one_of(activation, "activation", choices)


def _activation(activation: str) -> Callable[[], nn.Module]:
    """The module class for ``activation`` from :data:`learnmech.observe.tasks.ACTIVATIONS` (``"linear"``: see
    :func:`_activation_name`)."""
    return tasks.ACTIVATIONS[_activation_name(activation, stacklevel=4)]


def mlp(in_dim: int, width: int, out_dim: int = 1, hidden_layers: int = 2, activation: str = "relu") -> nn.Sequential:
    """An MLP ``in_dim -> width -> ... -> width -> out_dim`` with ``hidden_layers`` activations.

    ``hidden_layers=1`` is the two-layer net (input + readout); each extra hidden layer adds a ``width x width``
    "hidden" matrix, the layer type whose learning rate muP and SP treat differently. activation: a name in
    :data:`learnmech.observe.tasks.ACTIVATIONS`; ``"identity"`` gives a deep linear net (the uv-model of
    Lewkowycz et al. 2020 for ``hidden_layers=1``; ``"linear"`` is a deprecated alias of ``"identity"``).
    Input ``(batch, in_dim)`` -> output ``(batch, out_dim)``.
    """
    in_dim = positive_int(in_dim, "in_dim")
    width = positive_int(width, "width")
    out_dim = positive_int(out_dim, "out_dim")
    hidden_layers = positive_int(hidden_layers, "hidden_layers")
    activation = _activation_name(activation)
    # One builder for the torch MLPs: observe.tasks.mlp, drawing from torch's global generator (seed=None) as
    # this function always has.
    return tasks.mlp(in_dim, [width] * hidden_layers, out_dim, activation, seed=None)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with an explicit logit ``scale`` (default ``1/sqrt(d_head)``).

    Input/output ``(batch, seq, d_model)``; ``n_heads`` stays fixed as width grows, so ``d_head`` grows with it.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, n_heads={n_heads}")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.scale = 1.0 / math.sqrt(self.d_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, seq, d_model))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))`` with a 4x MLP."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.fc1, self.fc2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class _Decoder(nn.Module):
    """The body both transformers share: token + position embeddings, ``n_layers`` blocks of ``block(d_model,
    n_heads)``, final LayerNorm, readout (modules registered in that order, so a seed gives the same net)."""

    def __init__(self, vocab: int, d_model: int, n_heads: int, n_layers: int, max_len: int,
                 block: Callable[[int, int], nn.Module], heads_divide_width: bool = False) -> None:
        super().__init__()
        vocab, d_model = positive_int(vocab, "vocab"), positive_int(d_model, "d_model")
        n_heads, n_layers = positive_int(n_heads, "n_heads"), positive_int(n_layers, "n_layers")
        if heads_divide_width and d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, n_heads={n_heads}")
        self.max_len = positive_int(max_len, "max_len")
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(self.max_len, d_model)
        self.blocks = nn.ModuleList(block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.readout = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq = tokens.shape[1]
        if seq > self.max_len:
            raise ValueError(f"tokens has sequence length {seq} > max_len={self.max_len}")
        x = self.tok(tokens) + self.pos(torch.arange(seq, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.readout(self.ln_f(x))


class TinyTransformer(_Decoder):
    """A decoder-only transformer: token + position embeddings, ``n_layers`` blocks, final LayerNorm, readout.

    Input: integer tokens ``(batch, seq)`` with ``seq <= max_len``; output: logits ``(batch, seq, vocab)``.
    Width is ``d_model``; all hidden dimensions (``d_head``, the 4x MLP) are proportional to it.
    """

    def __init__(self, vocab: int, d_model: int, n_heads: int = 2, n_layers: int = 1, max_len: int = 16) -> None:
        super().__init__(vocab, d_model, n_heads, n_layers, max_len, Block)


def cnn(
    in_channels: int, width: int, out_dim: int = 1, hidden_layers: int = 2, activation: str = "relu"
) -> nn.Sequential:
    """A CNN ``Conv2d(in_channels -> width, 3x3) -> ... -> Conv2d(width -> width) -> global average pool ->
    Linear(width -> out_dim)`` with ``hidden_layers`` activations ("same" padding, stride 1).

    Input ``(batch, in_channels, H, W)`` -> output ``(batch, out_dim)``. Width is the channel count; the global
    average pool keeps the readout's fan-in equal to it for any image size. activation: a name in
    :data:`learnmech.observe.tasks.ACTIVATIONS` (as for :func:`mlp`).
    """
    in_channels, width = positive_int(in_channels, "in_channels"), positive_int(width, "width")
    out_dim, hidden_layers = positive_int(out_dim, "out_dim"), positive_int(hidden_layers, "hidden_layers")
    act = _activation(activation)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), act()]
    for _ in range(hidden_layers - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), act()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, out_dim)]
    return nn.Sequential(*layers)


class MHABlock(nn.Module):
    """Pre-LayerNorm block around ``nn.MultiheadAttention``: ``x + attn(ln(x))`` (causal), then
    ``x + mlp(ln(x))`` with a 4x GELU MLP (``mlp`` is an ``nn.Sequential``, so it can be named as a branch)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class MHATransformer(_Decoder):
    """:class:`TinyTransformer` with ``nn.MultiheadAttention`` blocks (:class:`MHABlock`) instead of the package's
    attention. Input: integer tokens ``(batch, seq)``, ``seq <= max_len``; output: logits ``(batch, seq, vocab)``.
    Width is ``d_model`` (``n_heads`` fixed, so ``d_head`` grows with it).
    """

    def __init__(self, vocab: int, d_model: int, n_heads: int = 2, n_layers: int = 1, max_len: int = 16) -> None:
        super().__init__(vocab, d_model, n_heads, n_layers, max_len, MHABlock, heads_divide_width=True)


class ResMLP(nn.Module):
    """A residual MLP ``h_0 = W_in x``, ``h_{l+1} = h_l + W_l phi(h_l)`` (``l < depth``), ``f = W_out h_L``.

    Each residual branch ``blocks.l`` is ``Sequential(phi, Linear(width, width))``: one hidden weight per block, the
    block depth 1 of Tensor Programs VI (Yang, Yu, Zhu & Hayou 2023), for which Depth-muP's ``1/sqrt(L)`` branch
    multiplier gives a well-defined infinite-depth limit. The multiplier is not built in: pass ``depth=(L, base_L)``
    and ``branches=model.branches`` to :func:`~learnmech.hyper.parametrize` (a forward hook on each branch), so the
    same builder gives the standard residual net (multiplier 1) and the Depth-muP one. activation: ``phi``, a name
    in :data:`learnmech.observe.tasks.ACTIVATIONS` (as for :func:`mlp`).
    Input ``(batch, in_dim)`` -> output ``(batch, out_dim)``.
    """

    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int = 1, activation: str = "relu") -> None:
        super().__init__()
        in_dim, width = positive_int(in_dim, "in_dim"), positive_int(width, "width")
        depth, out_dim = positive_int(depth, "depth"), positive_int(out_dim, "out_dim")
        act = _activation(activation)
        # Registration order matters: parametrize(base_width=) takes the first Linear as the input layer and the
        # last one as the readout.
        self.input = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList([nn.Sequential(act(), nn.Linear(width, width)) for _ in range(depth)])
        self.readout = nn.Linear(width, out_dim)

    @property
    def branches(self) -> list[str]:
        """Names of the residual-branch modules (``["blocks.0", ...]``), for ``parametrize(branches=...)``."""
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def residual_stream(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream ``[h_0, ..., h_L]``, each ``(batch, width)`` (branch multipliers included)."""
        h = self.input(x)
        stream = [h]
        for block in self.blocks:
            h = h + block(h)
            stream.append(h)
        return stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        for block in self.blocks:
            h = h + block(h)
        return self.readout(h)


def resmlp(in_dim: int, width: int, depth: int, out_dim: int = 1, activation: str = "relu") -> ResMLP:
    """Build a :class:`ResMLP` with ``depth`` residual blocks of width ``width``."""
    return ResMLP(in_dim, width, depth, out_dim, activation)
