"""The claims registry. Each module in this package defines one module-level ``CLAIM``; they are discovered
automatically, so adding a claim is adding one file.
"""

from __future__ import annotations

import importlib
import os
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
#: Comma-separated importable modules with extra claims (a module-level ``CLAIM`` or list ``CLAIMS``): a user's
#: own claims run, store and report exactly like the built-in ones, in worker processes too.
PLUGIN_ENV = "LEARNMECH_CLAIM_MODULES"


def _module_claims(module: object) -> list[Claim]:
    single = getattr(module, "CLAIM", None)
    many = list(getattr(module, "CLAIMS", []))
    return [c for c in ([single] if single is not None else []) + many if isinstance(c, Claim)]


def registry() -> dict[str, Claim]:
    """All claims, by name, in DESIGN.md order (then any others alphabetically)."""
    modules = [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)
               if not info.name.startswith("_") and info.name not in _NON_CLAIM_MODULES]
    modules += [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    found: dict[str, Claim] = {}
    for module_name in modules:
        for claim in _module_claims(importlib.import_module(module_name)):
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
