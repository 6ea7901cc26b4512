"""Small PyTorch models whose width is the only knob, for parametrization experiments.

Both are plain ``torch.nn.Module``\\ s built from ``nn.Linear``/``nn.Embedding``/``nn.LayerNorm``, so
:func:`learnmech.hyper.parametrize` can classify every layer; the attention module exposes its logit scale
(``scale``) because muP changes it from ``1/sqrt(d_head)`` to ``1/d_head`` (Yang et al. 2022, section 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import one_of, positive_int

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "linear": nn.Identity}


def mlp(in_dim: int, width: int, out_dim: int = 1, hidden_layers: int = 2, activation: str = "relu") -> nn.Sequential:
    """An MLP ``in_dim -> width -> ... -> width -> out_dim`` with ``hidden_layers`` activations.

    ``hidden_layers=1`` is the two-layer net (input + readout); each extra hidden layer adds a ``width x width``
    "hidden" matrix, the layer type whose learning rate muP and SP treat differently. ``activation="linear"``
    gives a deep linear net (the uv-model of Lewkowycz et al. 2020 for ``hidden_layers=1``).
    Input ``(batch, in_dim)`` -> output ``(batch, out_dim)``.
    """
    in_dim = positive_int(in_dim, "in_dim")
    width = positive_int(width, "width")
    out_dim = positive_int(out_dim, "out_dim")
    hidden_layers = positive_int(hidden_layers, "hidden_layers")
    act = ACTIVATIONS[one_of(activation, "activation", ACTIVATIONS)]
    layers: list[nn.Module] = [nn.Linear(in_dim, width), act()]
    for _ in range(hidden_layers - 1):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


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


class TinyTransformer(nn.Module):
    """A decoder-only transformer: token + position embeddings, ``n_layers`` blocks, final LayerNorm, readout.

    Input: integer tokens ``(batch, seq)`` with ``seq <= max_len``; output: logits ``(batch, seq, vocab)``.
    Width is ``d_model``; all hidden dimensions (``d_head``, the 4x MLP) are proportional to it.
    """

    def __init__(self, vocab: int, d_model: int, n_heads: int = 2, n_layers: int = 1, max_len: int = 16) -> None:
        super().__init__()
        vocab, d_model = positive_int(vocab, "vocab"), positive_int(d_model, "d_model")
        n_heads, n_layers = positive_int(n_heads, "n_heads"), positive_int(n_layers, "n_layers")
        self.max_len = positive_int(max_len, "max_len")
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(self.max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
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
