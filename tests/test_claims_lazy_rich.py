"""The `lazy-rich` claim on a reduced quick config: it agrees, every control is rejected, the result is well formed."""

from __future__ import annotations

import pytest
from claim_checks import assert_agrees_with_power_and_well_formed, quick_result, registered

from learnmech.claims import Result


@pytest.fixture(scope="module")
def result() -> Result:
    return quick_result("lazy-rich", width=128, n_train=32, n_test=32, steps=300)


def test_registered_in_limits() -> None:
    claim = registered("lazy-rich", "limits")
    assert set(claim.quick) == set(claim.full)


def test_agrees_with_power_and_is_well_formed(result: Result) -> None:
    assert_agrees_with_power_and_well_formed(result)


def test_lazy_rich_numbers(result: Result) -> None:
    exponents = result.metrics["exponents"]
    assert abs(exponents["weight_change"]["exponent"] + 1) < 0.01
    per_alpha = result.metrics["per_alpha"]
    small, big = per_alpha["0.0625"], per_alpha["512"]
    # Rich: features move towards the teacher and the kernel prediction fails; lazy: weights barely move.
    assert small["teacher_fraction"] > big["teacher_fraction"]
    assert small["deviation"] > 10 * big["deviation"] and big["weight_change"] < 1e-2
    assert result.metrics["criteria_error_over_tolerance"]["kernel_at_large_alpha"] <= 1

