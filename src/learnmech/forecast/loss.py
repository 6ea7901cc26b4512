"""Loss forecast: extrapolate the final loss of a training run from a small sweep of the user's own runs.

One varying size (e.g. training examples D, or parameters N): y = c x^-k by least squares on log y, with a
percentile bootstrap band over resampled runs (:func:`learnmech.laws.fit_power_law`; Kaplan et al. 2020 fit
losses this way). Both N and D: L = E + A/N^alpha + B/D^beta by Hoffmann et al. (2022)'s approach 3 with
bootstrap intervals (:func:`learnmech.laws.fit_scaling_law`; Besiroglu et al. 2024).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import positive_float, positive_int

__all__ = ["LossForecast", "loss_forecast", "read_runs"]


def read_runs(runs: str | Path | Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """The sweep as a list of dicts of floats, from a CSV path (header row) or a list of dicts."""
    if isinstance(runs, (str, Path)):
        path = Path(runs)
        if not path.is_file():
            raise ValueError(f"runs must be a CSV file or a list of dicts, got a path that does not exist: {path}")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    elif isinstance(runs, Sequence) and all(isinstance(r, Mapping) for r in runs):
        rows = [dict(r) for r in runs]
    else:
        raise ValueError(f"runs must be a CSV path or a list of dicts, got {type(runs).__name__}")
    if not rows:
        raise ValueError("runs must contain at least one run")
    out = []
    for i, row in enumerate(rows):
        parsed = {}
        for key, value in row.items():
            try:
                parsed[str(key)] = float(value)
            except (TypeError, ValueError):
                continue  # text columns (names, notes) are ignored
        if not parsed:
            raise ValueError(f"runs[{i}] has no numeric column")
        out.append(parsed)
    return out


@dataclass
class LossForecast:
    """Result of :func:`loss_forecast`.

    columns: the size column(s) varied in the sweep; target: their values for the forecast run; prediction: the
    fitted law's loss at the target; low, high: its percentile bootstrap band at ``confidence``; x, y: the sweep's
    sizes (n, len(columns)) and losses (n,); law: "power" (y = c x^-k) or "chinchilla" (E + A/N^a + B/D^b);
    params: the fitted parameters; fit: the laws fit object (for bands along a curve).
    """

    columns: list[str]
    target: dict[str, float]
    prediction: float
    low: float
    high: float
    confidence: float
    x: np.ndarray
    y: np.ndarray
    law: str
    params: dict[str, float]
    fit: Any

    def band(self, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, low, high) along ``sizes`` (m,) of the single varied size (power law only)."""
        sizes = np.asarray(sizes, dtype=float)
        if self.law != "power":
            raise ValueError("band is available for one-variable (power-law) forecasts only")
        low, high = self.fit.predict_interval(sizes)
        return self.fit.predict(sizes), low, high


def loss_forecast(
    runs: str | Path | Sequence[Mapping[str, Any]],
    target: Mapping[str, float],
    *,
    loss: str = "loss",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> LossForecast:
    """Forecast the loss of a run of size ``target`` from the sweep ``runs``.

    runs: a CSV path or a list of dicts, one per finished run, with the size column(s) named in ``target`` and
    the ``loss`` column (e.g. ``{"D": 200, "loss": 0.41}``); target: ``{"D": 1400}`` (one size: power law) or
    ``{"N": ..., "D": ...}`` (Chinchilla law; needs >= 6 runs); confidence: level of the bootstrap band;
    n_bootstrap: resamples of the runs. ValueError naming the argument for a missing column, fewer than 3 runs
    (6 for two sizes), or non-positive sizes/losses.
    """
    rows = read_runs(runs)
    if not isinstance(target, Mapping) or not 1 <= len(target) <= 2:
        raise ValueError(f"target must be a dict with one or two size columns (e.g. {{'D': 1400}}), got {target!r}")
    columns = list(target)
    if len(columns) == 2 and set(columns) != {"N", "D"}:
        raise ValueError(f"target with two sizes must name 'N' (parameters) and 'D' (examples), got {columns}")
    for name in [*columns, loss]:
        missing = [i for i, r in enumerate(rows) if name not in r]
        if missing:
            label = "loss" if name == loss else "target"
            raise ValueError(f"runs lack the {label} column {name!r} (rows {missing[:5]})")
    confidence = positive_float(confidence, "confidence")
    if confidence >= 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n_bootstrap = positive_int(n_bootstrap, "n_bootstrap", minimum=20)
    target = {k: positive_float(v, f"target[{k!r}]") for k, v in target.items()}
    x = np.array([[r[c] for c in columns] for r in rows], dtype=float)
    y = np.array([r[loss] for r in rows], dtype=float)
    if np.any(~np.isfinite(x)) or np.any(x <= 0) or np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("runs must have finite, positive sizes and losses")
    from ..laws import fit_power_law, fit_scaling_law

    if len(columns) == 1:
        if len(rows) < 3:
            raise ValueError(f"runs must hold at least 3 runs for a power-law forecast, got {len(rows)}")
        fit = fit_power_law(x[:, 0], y, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        at = np.array([target[columns[0]]])
        prediction = float(fit.predict(at)[0])
        low, high = (float(v[0]) for v in fit.predict_interval(at))
        law, params = "power", dict(fit.params)
    else:
        if len(rows) < 6:
            raise ValueError(f"runs must hold at least 6 runs for a two-size (N, D) forecast, got {len(rows)}")
        n_col, d_col = columns.index("N"), columns.index("D")
        fit = fit_scaling_law(x[:, n_col], x[:, d_col], y, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        from ..laws import scaling_law

        prediction = float(fit.predict(np.array(target["N"]), np.array(target["D"])))
        curves = scaling_law(target["N"], target["D"], *fit.bootstrap.T)
        tail = 100 * (1 - confidence) / 2
        low, high = (float(v) for v in np.nanpercentile(curves, [tail, 100 - tail]))
        law, params = "chinchilla", dict(fit.params)
    return LossForecast(columns=columns, target=target, prediction=prediction, low=low, high=high,
                        confidence=confidence, x=x, y=y, law=law, params=params, fit=fit)
