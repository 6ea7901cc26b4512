"""The claims registry. Each module in this package defines one module-level ``CLAIM``; they are discovered
automatically, so adding a claim is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import STRANDS, Claim, Diverged, Panel, Result, Series
from .progress import step

__all__ = ["Claim", "Result", "Panel", "Series", "Diverged", "STRANDS", "registry", "get", "step"]

_ORDER = [
    "ntk-convergence", "wide-net-dynamics", "nngp-posterior", "saxe-modes", "eigenlearning",
    "spectral-exponent", "double-descent", "chinchilla-fit", "mlp-scaling", "mup-transfer",
    "stability-ceiling", "lr-width-scaling", "edge-of-stability", "neural-collapse", "grokking", "heavy-tails",
]
_NON_CLAIM_MODULES = {"base", "progress"}


def registry() -> dict[str, Claim]:
    """All claims, by name, in DESIGN.md order (then any others alphabetically)."""
    found: dict[str, Claim] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NON_CLAIM_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        claim = getattr(module, "CLAIM", None)
        if isinstance(claim, Claim):
            if claim.name in found:
                raise RuntimeError(f"two claims are named {claim.name!r}")
            found[claim.name] = claim
    rank = {name: i for i, name in enumerate(_ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def get(name: str) -> Claim:
    """The claim called ``name``; ValueError listing the known names otherwise."""
    claims = registry()
    if name not in claims:
        raise ValueError(f"unknown claim {name!r}; known claims: {', '.join(claims) or '(none)'}")
    return claims[name]
