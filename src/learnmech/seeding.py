"""Determinism: one seed drives numpy and torch."""

from __future__ import annotations

import numpy as np
import torch


def rng(seed: int) -> np.random.Generator:
    """A numpy Generator for ``seed`` (seeds torch's global generator too, for code that uses it)."""
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def torch_generator(seed: int) -> torch.Generator:
    """A private torch CPU generator for ``seed`` (preferred over the global one)."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen
