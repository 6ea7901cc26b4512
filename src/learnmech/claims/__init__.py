"""The claims registry, laid out as the seed paper's map (Simon et al. 2026, Table 1): one subfolder per strand
(``limits/``, ``solvable/``, ``laws/``, ``hyper/``, ``universal/``), one file per claim, each defining a module-level
``CLAIM``. Claims are discovered by folder, so adding a claim is adding one file; the registry checks that each claim
sits in the folder of its strand.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from .base import STRANDS, Claim, Control, Diverged, Panel, Result, Series
from .progress import step

__all__ = ["Claim", "Result", "Control", "Panel", "Series", "Diverged", "STRANDS", "registry", "get", "step"]

#: Comma-separated importable modules with extra claims (a module-level ``CLAIM`` or list ``CLAIMS``): a user's
#: own claims run, store and report exactly like the built-in ones, in worker processes too.
PLUGIN_ENV = "LEARNMECH_CLAIM_MODULES"


def _module_claims(module: object) -> list[Claim]:
    single = getattr(module, "CLAIM", None)
    many = list(getattr(module, "CLAIMS", []))
    return [c for c in ([single] if single is not None else []) + many if isinstance(c, Claim)]


def _builtin_modules() -> list[tuple[str, str]]:
    """(strand folder, module name) of every built-in claim file."""
    found = []
    for strand in STRANDS:
        package = importlib.import_module(f"{__name__}.{strand}")
        found += [(strand, f"{package.__name__}.{info.name}") for info in pkgutil.iter_modules(package.__path__)
                  if not info.name.startswith("_")]
    return found


def registry() -> dict[str, Claim]:
    """All claims by name: built-in ones in strand order (Table 1), alphabetical within a strand, then plugins."""
    modules = _builtin_modules()
    modules += [("", m.strip()) for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    found: dict[str, Claim] = {}
    for folder, module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if folder:
                raise
            raise ValueError(f"{PLUGIN_ENV}: cannot import claim module {module_name!r} ({exc})") from None
        for claim in _module_claims(module):
            if claim.name in found:
                raise RuntimeError(f"two claims are named {claim.name!r}")
            if folder and claim.strand != folder:
                raise RuntimeError(f"claim {claim.name!r} has strand {claim.strand!r} but sits in claims/{folder}/")
            found[claim.name] = claim
    builtin = {name for name, c in found.items() if c.run.__module__.startswith(f"{__name__}.")}
    rank = {strand: i for i, strand in enumerate(STRANDS)}
    return dict(sorted(found.items(), key=lambda kv: (kv[0] not in builtin, rank.get(kv[1].strand, 99), kv[0])))


def get(name: str) -> Claim:
    """The claim called ``name``; ValueError listing the known names otherwise."""
    claims = registry()
    if name not in claims:
        raise ValueError(f"unknown claim {name!r}; known claims: {', '.join(claims) or '(none)'}")
    return claims[name]
