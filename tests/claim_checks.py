"""Shared assertions for claim tests: the protocol's shape of a powered, well-formed result."""

from __future__ import annotations

import json

import numpy as np

from learnmech.claims import Panel, Result


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
