"""The small regression problem the curvature-instrument tests measure Hessians on."""

from __future__ import annotations

import torch


def tanh_mlp_mse(hidden: int, n: int, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, tuple]:
    """A ``4 -> hidden -> 3`` tanh MLP, the MSE loss and a batch ``(x, y)`` of ``n`` standard normal inputs ``(n, 4)``
    and targets ``(n, 3)``, all drawn from torch's global generator seeded with ``seed`` (model, then x, then y)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 3))
    x, y = torch.randn(n, 4), torch.randn(n, 3)
    return model, torch.nn.MSELoss(), (x, y)
