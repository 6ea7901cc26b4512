"""The claim abstraction: a published prediction, an experiment, and a verdict.

A claim reads like the paper's sentence: *theory says X, we measure Y, they agree within Z*. Its ``run``
composes public functions of the strand modules and returns a :class:`Result` whose ``figure`` is plain,
JSON-serialisable data (a list of :class:`Panel`), so the runner can store it in SQLite and the report can
redraw it later without re-running anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from ..panels import Panel, Series, jsonable

__all__ = ["STRANDS", "Claim", "Control", "Diverged", "Panel", "Result", "Series", "jsonable"]

STRANDS = ("limits", "solvable", "laws", "hyper", "universal")
Verdict = Literal["agrees", "disagrees", "inconclusive"]
Status = Literal["ok", "diverged", "failed"]


class Diverged(Exception):
    """Raise inside a claim's ``run`` when training blows up (NaN/inf loss, exploding weights).

    The runner stores the point with status ``"diverged"`` and the step, instead of a failure.
    """

    def __init__(self, step: int, message: str = "") -> None:
        self.step = int(step)
        super().__init__(message or f"diverged at step {step}")


def _judge(error: float, tolerance: float) -> Literal["agrees", "disagrees"]:
    """``"agrees"`` iff the error is finite and within tolerance (a NaN error disagrees)."""
    return "agrees" if (math.isfinite(error) and error <= tolerance) else "disagrees"


_VerdictT = TypeVar("_VerdictT", bound=str)


def _settled_verdict(stated: _VerdictT | None, computed: _VerdictT, contradiction: str) -> _VerdictT:
    """The verdict is computed, never chosen: ``computed`` when none was stated (a fresh result), else the stated one
    (e.g. read back from the database) if it matches; a mismatch raises ``contradiction``."""
    if stated is None:
        return computed
    if stated != computed:
        raise ValueError(contradiction)
    return stated


def _check_tolerance(owner: str, tolerance: float) -> None:
    if not (tolerance >= 0):
        raise ValueError(f"{owner}: tolerance must be a non-negative number, got {tolerance}")


@dataclass
class Control:
    """A negative control: a rival prediction that the same experiment must reject.

    The claim protocol (``DESIGN.md``) asks every claim to show it *could* have failed: a rival statement (e.g.
    "the slope is 0", "sharpness stays at its initial value", Hoffmann et al.'s published constants) or the same
    test run where the theory's assumption is broken is judged on the same measurement with the same kind of error
    metric. ``verdict`` is computed exactly like a claim's: ``"agrees"`` iff ``error <= tolerance``. A control
    whose verdict is ``"disagrees"`` is *rejected*, which is what gives the claim's verdict its power.

    name: short id (``"slope-zero"``); statement: the rival sentence; prediction / measurement: its numbers;
    error / tolerance: as for :class:`Result` (state units in the statement).
    """

    name: str
    statement: str
    prediction: Any
    measurement: Any
    error: float
    tolerance: float
    verdict: Literal["agrees", "disagrees"] | None = None

    def __post_init__(self) -> None:
        self.error, self.tolerance = float(self.error), float(self.tolerance)
        _check_tolerance(f"control {self.name!r}", self.tolerance)
        self.verdict = _settled_verdict(self.verdict, _judge(self.error, self.tolerance),
                                        f"control {self.name!r}: verdict {self.verdict!r} contradicts "
                                        f"error={self.error} vs tolerance={self.tolerance}")

    @property
    def rejected(self) -> bool:
        """True when the experiment rejects this rival (its verdict is ``"disagrees"``)."""
        return self.verdict == "disagrees"


@dataclass
class Result:
    """What a claim's run returns.

    prediction / measurement: the headline numbers (a float, or a dict of named floats) that the verdict
        compares; ``error`` is the claim's stated error metric between them and ``tolerance`` the bound the
        theory allows.
    controls: the negative controls (:class:`Control`) judged on the same experiment.
    units: what ``error`` and ``tolerance`` are measured in (e.g. ``"|slope difference|"``, ``"t units"``), shown
        beside them in the report.
    verdict: computed, never chosen. ``"agrees"``/``"disagrees"`` (``error <= tolerance``, NaN disagrees) only
        when there is at least one control and every control is rejected; otherwise ``"inconclusive"``: the
        experiment had no power to tell the theory from its rival.
    figure: panels the report draws. metrics: any further numbers worth keeping (all JSON-serialisable).
    status: ``"ok"``; the runner sets ``"diverged"``/``"failed"`` for points that blew up or raised.
    """

    prediction: Any
    measurement: Any
    error: float
    tolerance: float
    figure: list[Panel] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None
    status: Status = "ok"
    note: str = ""
    controls: list[Control] = field(default_factory=list)
    units: str = ""

    def __post_init__(self) -> None:
        self.error, self.tolerance = float(self.error), float(self.tolerance)
        _check_tolerance("Result", self.tolerance)
        self.controls = [c if isinstance(c, Control) else Control(**c) for c in self.controls]
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise ValueError(f"Result: control names must be unique, got {names}")
        self.verdict = _settled_verdict(self.verdict, self.computed_verdict(),
                                        f"verdict {self.verdict!r} contradicts error={self.error} vs "
                                        f"tolerance={self.tolerance} and controls rejected="
                                        f"{[c.rejected for c in self.controls]}")

    @property
    def comparison(self) -> Literal["agrees", "disagrees"]:
        """The bare comparison ``error <= tolerance``, before the controls are taken into account."""
        return _judge(self.error, self.tolerance)

    @property
    def powered(self) -> bool:
        """True when there is at least one control and every control is rejected."""
        return bool(self.controls) and all(c.rejected for c in self.controls)

    def computed_verdict(self) -> Verdict:
        return self.comparison if self.powered else "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Result:
        data = dict(data)
        data["figure"] = [Panel.from_dict(p) for p in data.get("figure", [])]
        data["error"] = float("nan") if data.get("error") is None else data["error"]
        data["controls"] = [
            Control(**{**c, "error": float("nan") if c.get("error") is None else c["error"]})
            for c in data.get("controls", [])
        ]
        return Result(**data)


@dataclass(frozen=True)
class Claim:
    """A falsifiable, published prediction with an experiment that tests it.

    name: stable id (``"ntk-convergence"``); strand: one of :data:`STRANDS`; reference: authors, year (and
    equation); statement: the sentence being tested; quick/full: default configs (JSON-serialisable dicts,
    ``quick`` runs in seconds on 2 CPU cores); run: ``run(config, seed) -> Result``, deterministic given the seed.
    """

    name: str
    strand: str
    reference: str
    statement: str
    quick: Mapping[str, Any]
    full: Mapping[str, Any]
    run: Callable[[dict[str, Any], int], Result]

    def __post_init__(self) -> None:
        if self.strand not in STRANDS:
            raise ValueError(f"claim {self.name!r}: strand must be one of {STRANDS}, got {self.strand!r}")
        extra = set(self.quick) ^ set(self.full)
        if extra:
            raise ValueError(f"claim {self.name!r}: quick and full configs must have the same keys, differ in {extra}")

    def config(self, quick: bool = True, **overrides: Any) -> dict[str, Any]:
        """The quick or full config with ``overrides`` applied; unknown keys are a ValueError."""
        base = dict(self.quick if quick else self.full)
        unknown = set(overrides) - set(base)
        if unknown:
            raise ValueError(
                f"claim {self.name!r} has no config key(s) {sorted(unknown)}; known keys: {sorted(base)}"
            )
        base.update(overrides)
        return base
