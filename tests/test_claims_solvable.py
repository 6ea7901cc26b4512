"""The solvable strand's claims: each quick config runs and returns a well-formed, serialisable Result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnmech.claims import Result, get

NAMES = ["saxe-modes", "eigenlearning", "spectral-exponent", "double-descent"]


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {name: get(name).run(get(name).config(quick=True), 0) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_quick_result_is_well_formed(results, name):
    result = results[name]
    claim = get(name)
    assert claim.reference and claim.statement.startswith("theory says")
    assert np.isfinite(result.error) and result.tolerance > 0
    assert result.verdict == ("agrees" if result.error <= result.tolerance else "disagrees")
    assert result.figure and all(panel.series for panel in result.figure)
    roles = {s.role for panel in result.figure for s in panel.series}
    assert {"prediction", "measurement"} <= roles
    restored = Result.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored.verdict == result.verdict


def test_saxe_modes_agrees_and_learns_strongest_first(results):
    # Exact theory (balanced init, lr -> 0): the error must sit inside the derived Euler bound.
    result = results["saxe-modes"]
    assert result.verdict == "agrees"
    assert result.metrics["learned_strongest_first"]
    assert result.error > 0  # discretisation is visible, so the comparison is not trivial


def test_double_descent_peak_is_at_the_threshold(results):
    result = results["double-descent"]
    assert result.verdict == "agrees"
    ridge0 = {k: v for k, v in result.measurement.items() if k.startswith("ridge0")}
    peak = max(ridge0, key=ridge0.get)
    assert peak in ("ridge0@n/d=0.9", "ridge0@n/d=1.1")


def test_spectral_exponent_prediction_is_the_derived_one(results):
    result = results["spectral-exponent"]
    assert result.prediction == pytest.approx(1.5)
    low, high = result.metrics["ci95"]
    assert low < result.measurement < high


def test_eigenlearning_curve_decreases(results):
    result = results["eigenlearning"]
    predicted = list(result.prediction.values())
    assert all(a > b for a, b in zip(predicted, predicted[1:], strict=False))
    assert result.metrics["num_eigenvalues"] > 1e6  # degenerate blocks handled without expanding them
