"""The `silent-alignment` claim on a reduced quick config: agrees, every control rejected, result well formed."""

from __future__ import annotations

import pytest
from claim_checks import assert_agrees_with_power_and_well_formed, quick_result, registered

from learnmech.claims import Result


@pytest.fixture(scope="module")
def result() -> Result:
    return quick_result("silent-alignment")


def test_registered_in_limits() -> None:
    claim = registered("silent-alignment", "limits")
    assert set(claim.quick) == set(claim.full)


def test_agrees_with_power_and_is_well_formed(result: Result) -> None:
    assert_agrees_with_power_and_well_formed(result)


def test_silent_alignment_numbers(result: Result) -> None:
    small, large = result.metrics["timing_small"], result.metrics["timing_large"]
    assert small["t_align"] < small["t_10"] < small["t_drop"]  # aligned while the loss has barely moved
    assert large["ratio"] > 1  # standard init: the kernel changes only as the loss falls
    theory = result.metrics["theory"]
    assert abs(small["t_drop"] - theory["t_drop"]) < 0.2 * theory["t_drop"]  # Saxe timescale
    fn = result.metrics["function"]
    assert fn["error_final_ntk"] < fn["tolerance"] < fn["error_initial_ntk"]

