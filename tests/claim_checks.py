"""Shared pieces of the claim tests: a claim's quick run, its registration, and the protocol's shape of a powered,
well-formed result."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from learnmech.claims import Claim, Panel, Result, get, registry


def quick_result(name: str, seed: int = 0, **overrides: Any) -> Result:
    """Claim ``name`` run once on its quick config (with ``overrides`` to shrink it further) at ``seed``."""
    claim = get(name)
    return claim.run(claim.config(quick=True, **overrides), seed)


def registered(name: str, strand: str) -> Claim:
    """The registered claim ``name``, checked to sit in ``strand`` and to cite its paper as author (year)."""
    claim = registry()[name]
    assert claim.strand == strand and "(20" in claim.reference, (claim.strand, claim.reference)
    return claim


def assert_band_holds_prediction(panel: Panel) -> None:
    """The panel's first prediction series carries a tolerance band that contains it."""
    band = [s for s in panel.series if s.role == "prediction"][0]
    assert band.lower is not None
    assert all(lo <= y <= hi for lo, y, hi in zip(band.lower, band.y, band.upper, strict=True))


def assert_agrees_with_power_and_well_formed(result: Result) -> None:
    """Agrees, every control rejected, units and a unit tolerance, a figure with a band and the controls drawn, and a
    lossless JSON round trip."""
    ratios = result.metrics.get("criteria_error_over_tolerance")
    assert result.verdict == "agrees", (result.error, result.tolerance, ratios)
    assert result.controls and all(c.rejected for c in result.controls), [(c.name, c.error, c.tolerance)
                                                                          for c in result.controls]
    assert result.units and result.tolerance == 1.0 and np.isfinite(result.error)
    assert result.figure and all(isinstance(p, Panel) and p.xlabel and p.ylabel for p in result.figure)
    assert any(s.role == "prediction" and s.lower is not None for p in result.figure for s in p.series)  # band
    assert any("control" in s.label for p in result.figure for s in p.series)
    json.dumps(result.to_dict())
    restored = Result.from_dict(result.to_dict())
    assert restored.verdict == "agrees" and all(c.verdict == "disagrees" for c in restored.controls)
