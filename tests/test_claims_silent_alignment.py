"""The `silent-alignment` claim on a reduced quick config: agrees, every control rejected, result well formed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnmech.claims import Panel, Result, get, registry


@pytest.fixture(scope="module")
def result() -> Result:
    claim = get("silent-alignment")
    return claim.run(claim.config(quick=True), 0)


def test_registered_in_limits() -> None:
    claim = registry()["silent-alignment"]
    assert claim.strand == "limits" and "(20" in claim.reference
    assert set(claim.quick) == set(claim.full)


def test_agrees_with_power_and_is_well_formed(result: Result) -> None:
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

def test_silent_alignment_numbers(result: Result) -> None:
    small, large = result.metrics["timing_small"], result.metrics["timing_large"]
    assert small["t_align"] < small["t_10"] < small["t_drop"]  # aligned while the loss has barely moved
    assert large["ratio"] > 1  # standard init: the kernel changes only as the loss falls
    theory = result.metrics["theory"]
    assert abs(small["t_drop"] - theory["t_drop"]) < 0.2 * theory["t_drop"]  # Saxe timescale
    fn = result.metrics["function"]
    assert fn["error_final_ntk"] < fn["tolerance"] < fn["error_initial_ntk"]

