"""Figure data and JSON helpers: the bottom of the package, imported by strands, claims, forecast and report.

A :class:`Panel` is one subplot described as plain, JSON-serialisable data (a list of :class:`Series` with axis labels
and scales), so results can be stored in SQLite and redrawn later by :mod:`learnmech.report` without re-running
anything. Nothing here imports from the rest of the package, so data flows one way (strands -> claims -> run -> report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Panel", "Series", "Role", "jsonable"]

Role = Literal["prediction", "measurement", "reference"]


def _floats(values: Any) -> list[float]:
    """1-D list of Python floats (NaN/inf become None in JSON via :func:`jsonable`)."""
    return [float(v) for v in np.asarray(values, dtype=float).reshape(-1)]


@dataclass
class Series:
    """One curve or point set in a panel.

    ``role`` says what it is: the theory's ``"prediction"`` (drawn as a line), the experiment's
    ``"measurement"`` (drawn as markers, with ``yerr`` if given) or a ``"reference"`` (grey, dashed).
    ``lower``/``upper`` draw a shaded band around the series (e.g. the tolerance band of a prediction).
    ``group``: series with the same group share one colour (a fitted line and the data it was fitted to).
    ``connect``: join the points with a line (default: predictions yes; measurements only when dense, > 40
    points; set ``False`` for categorical x such as a parameter index or a run index).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    role: Role = "measurement"
    yerr: Sequence[float] | None = None
    lower: Sequence[float] | None = None
    upper: Sequence[float] | None = None
    group: str | None = None
    connect: bool | None = None

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
    """One subplot of a claim's figure: axes labels (with units), scales, series, horizontal guide lines.

    ``xticks``: ``(position, label)`` pairs for a categorical x axis (e.g. parameter names), drawn instead of numbers.
    """

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xscale: Literal["linear", "log", "symlog"] = "linear"
    yscale: Literal["linear", "log", "symlog"] = "linear"
    hlines: list[tuple[float, str]] = field(default_factory=list)
    xticks: list[tuple[float, str]] = field(default_factory=list)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Panel:
        series = [Series(**s) for s in data.get("series", [])]
        rest = {k: v for k, v in data.items() if k != "series"}
        rest["hlines"] = [tuple(h) for h in rest.get("hlines", [])]
        rest["xticks"] = [tuple(t) for t in rest.get("xticks", [])]
        return Panel(series=series, **rest)


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
