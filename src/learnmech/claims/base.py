"""The claim abstraction: a published prediction, an experiment, and a verdict.

A claim reads like the paper's sentence: *theory says X, we measure Y, they agree within Z*. Its ``run``
composes public functions of the strand modules and returns a :class:`Result` whose ``figure`` is plain,
JSON-serialisable data (a list of :class:`Panel`), so the runner can store it in SQLite and the report can
redraw it later without re-running anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

STRANDS = ("limits", "solvable", "laws", "hyper", "universal")
Verdict = Literal["agrees", "disagrees"]
Status = Literal["ok", "diverged", "failed"]
Role = Literal["prediction", "measurement", "reference"]


class Diverged(Exception):
    """Raise inside a claim's ``run`` when training blows up (NaN/inf loss, exploding weights).

    The runner stores the point with status ``"diverged"`` and the step, instead of a failure.
    """

    def __init__(self, step: int, message: str = "") -> None:
        self.step = int(step)
        super().__init__(message or f"diverged at step {step}")


def _floats(values: Any) -> list[float]:
    """1-D list of Python floats (NaN/inf become None in JSON via :func:`jsonable`)."""
    return [float(v) for v in np.asarray(values, dtype=float).reshape(-1)]


@dataclass
class Series:
    """One curve or point set in a panel.

    ``role`` says what it is: the theory's ``"prediction"`` (drawn as a line), the experiment's
    ``"measurement"`` (drawn as markers, with ``yerr`` if given) or a ``"reference"`` (grey, dashed).
    ``lower``/``upper`` draw a shaded band around the series (e.g. the tolerance band of a prediction).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    role: Role = "measurement"
    yerr: Sequence[float] | None = None
    lower: Sequence[float] | None = None
    upper: Sequence[float] | None = None

    def __post_init__(self) -> None:
        self.x, self.y = _floats(self.x), _floats(self.y)
        if len(self.x) != len(self.y):
            raise ValueError(f"Series {self.label!r}: x has {len(self.x)} points but y has {len(self.y)}")
        for name in ("yerr", "lower", "upper"):
            value = getattr(self, name)
            if value is not None:
                value = _floats(value)
                if len(value) != len(self.y):
                    raise ValueError(f"Series {self.label!r}: {name} has {len(value)} points, y has {len(self.y)}")
                setattr(self, name, value)
        if self.role not in ("prediction", "measurement", "reference"):
            raise ValueError(f"Series {self.label!r}: role must be prediction|measurement|reference, got {self.role!r}")


@dataclass
class Panel:
    """One subplot of a claim's figure: axes labels (with units), scales, series, horizontal guide lines."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xscale: Literal["linear", "log", "symlog"] = "linear"
    yscale: Literal["linear", "log", "symlog"] = "linear"
    hlines: list[tuple[float, str]] = field(default_factory=list)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Panel:
        series = [Series(**s) for s in data.get("series", [])]
        rest = {k: v for k, v in data.items() if k != "series"}
        rest["hlines"] = [tuple(h) for h in rest.get("hlines", [])]
        return Panel(series=series, **rest)


@dataclass
class Result:
    """What a claim's run returns.

    prediction / measurement: the headline numbers (a float, or a dict of named floats) that the verdict
        compares; ``error`` is the claim's stated error metric between them and ``tolerance`` the bound the
        theory allows. ``verdict`` is ``"agrees"`` iff ``error <= tolerance`` (NaN error disagrees).
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

    def __post_init__(self) -> None:
        self.error, self.tolerance = float(self.error), float(self.tolerance)
        if not (self.tolerance >= 0):
            raise ValueError(f"tolerance must be a non-negative number, got {self.tolerance}")
        computed: Verdict = "agrees" if (math.isfinite(self.error) and self.error <= self.tolerance) else "disagrees"
        if self.verdict is None:
            self.verdict = computed
        elif self.verdict != computed:
            raise ValueError(f"verdict {self.verdict!r} contradicts error={self.error} vs tolerance={self.tolerance}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Result:
        data = dict(data)
        data["figure"] = [Panel.from_dict(p) for p in data.get("figure", [])]
        data["error"] = float("nan") if data.get("error") is None else data["error"]
        return Result(**data)


def jsonable(obj: Any) -> Any:
    """Recursively convert numpy/torch scalars and arrays to JSON-safe Python (non-finite floats -> None)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "detach"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    return obj


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
