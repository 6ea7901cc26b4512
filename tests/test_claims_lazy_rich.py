"""The `lazy-rich` claim on a reduced quick config: it agrees, every control is rejected, the result is well formed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnmech.claims import Panel, Result, get, registry


@pytest.fixture(scope="module")
def result() -> Result:
    claim = get("lazy-rich")
    return claim.run(claim.config(quick=True, width=128, n_train=32, n_test=32, steps=300), 0)


def test_registered_in_limits() -> None:
    claim = registry()["lazy-rich"]
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

def test_lazy_rich_numbers(result: Result) -> None:
    exponents = result.metrics["exponents"]
    assert abs(exponents["weight_change"]["exponent"] + 1) < 0.01
    per_alpha = result.metrics["per_alpha"]
    small, big = per_alpha["0.0625"], per_alpha["512"]
    # Rich: features move towards the teacher and the kernel prediction fails; lazy: weights barely move.
    assert small["teacher_fraction"] > big["teacher_fraction"]
    assert small["deviation"] > 10 * big["deviation"] and big["weight_change"] < 1e-2
    assert result.metrics["criteria_error_over_tolerance"]["kernel_at_large_alpha"] <= 1

