"""The `width-consistency` claim on a reduced quick config: agrees, every control rejected, result well formed."""

from __future__ import annotations

import pytest
from claim_checks import assert_agrees_with_power_and_well_formed, quick_result, registered

from learnmech.claims import Result


@pytest.fixture(scope="module")
def result() -> Result:
    return quick_result("width-consistency", steps=40, n_train=64, n_test=64, seeds=4)


def test_registered_in_limits() -> None:
    claim = registered("width-consistency", "limits")
    assert set(claim.quick) == set(claim.full)


def test_agrees_with_power_and_is_well_formed(result: Result) -> None:
    assert_agrees_with_power_and_well_formed(result)


def test_width_consistency_numbers(result: Result) -> None:
    bias = result.metrics["bias"]
    assert abs(bias["mup"]["exponent"] - 1) <= bias["mup"]["tolerance"]
    assert abs(bias["sp"]["exponent"] - 1) > bias["sp"]["tolerance"]
    final = result.metrics["final_loss"]["mean"]
    assert final[-1] < final[0]  # wider is not worse
    assert "digits" in result.figure[0].title

