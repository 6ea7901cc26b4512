"""The solvable strand's claims: each quick config runs, agrees with every control rejected (a powered verdict), and
returns a well-formed, serialisable Result with the prediction's tolerance band and the rejected rivals drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnmech.claims import Result, get

NAMES = ["saxe-modes", "eigenlearning", "double-descent"]


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {name: get(name).run(get(name).config(quick=True), 0) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_quick_result_agrees_with_power_and_is_well_formed(results, name):
    result = results[name]
    claim = get(name)
    assert claim.strand == "solvable"
    assert claim.reference and claim.statement.startswith("theory says")
    assert np.isfinite(result.error) and result.tolerance > 0 and result.units
    assert result.verdict == "agrees", (result.error, result.tolerance)
    assert result.controls and all(c.rejected for c in result.controls), [(c.name, c.error) for c in result.controls]
    assert result.figure and all(panel.series for panel in result.figure)
    roles = {s.role for panel in result.figure for s in panel.series}
    assert {"prediction", "measurement", "reference"} <= roles
    assert any(s.role == "prediction" and s.lower is not None for p in result.figure for s in p.series)
    assert any("control" in s.label and "rejected" in s.label for p in result.figure for s in p.series)
    restored = Result.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored.verdict == result.verdict
    assert [c.verdict for c in restored.controls] == [c.verdict for c in result.controls]


def test_saxe_modes_balanced_is_exact_and_random_init_follows_the_timing_law(results):
    result = results["saxe-modes"]
    metrics = result.metrics
    assert metrics["learned_strongest_first"] and metrics["random_init_learned_strongest_first"]
    assert 0 < metrics["balanced_error"] <= metrics["euler_bound"]  # discretisation visible, inside the bound
    assert -1.0 < metrics["random_init_slope_predicted"] < -0.8  # 1/s times a slowly varying log
    assert {c.name: c.prediction for c in result.controls} == {"time-independent-of-s": 0.0,
                                                                "time-inverse-square": -2.0}


def test_eigenlearning_curve_power_and_boundary(results):
    result = results["eigenlearning"]
    predicted = list(result.prediction.values())
    assert all(a > b for a, b in zip(predicted, predicted[1:], strict=False))
    assert result.metrics["num_eigenvalues"] > 1e6  # degenerate blocks handled without expanding them
    # Power: a 25% error is resolvable at every n (the control); the d = 3 boundary is reported, not judged.
    assert np.all(np.asarray(result.metrics["relative_resolution"]) < 0.25)
    assert result.metrics["boundary_dim"] == 3 and len(result.metrics["boundary_relative_error"]) == 2
    assert any("Boundary" in p.title for p in result.figure)


def test_double_descent_peak_is_at_the_threshold(results):
    result = results["double-descent"]
    ridge0 = {k: v for k, v in result.measurement.items() if k.startswith("ridge0")}
    peak = max(ridge0, key=ridge0.get)
    assert peak in ("ridge0@n/d=0.9", "ridge0@n/d=1.1")
    assert {c.name for c in result.controls} == {"monotone-in-n", "half-noise"}
