"""The :class:`Forecast` of a training run, its scoring against what the run did, and the HTML report card.

Every forecast is made before training and scored afterwards like a claim (prediction, measurement, error,
tolerance, verdict), from an Observer frame (columns ``step, metric, layer, value, error``). The scoring rules and
tolerances are fixed here, before any run:

- ``stability``: regime forecast from the sharpness at init (:mod:`.stability`). Measured: "unstable" if within
  the first ``EARLY`` steps the loss is non-finite or exceeds its initial value (the top direction grows:
  |1 - lr lambda| > 1 multiplies its share of the loss every step), else "stable". Agrees iff the labels match;
  "inconclusive" for a marginal forecast (within a factor 1.25 of the threshold, :data:`.stability.MARGIN`).
- ``edge_of_stability``: the sharpness never exceeds the threshold T for long, and once it reaches it, it hovers
  there (Cohen et al. 2021, 2022). Measured on the sharpness series (``sharpness``, or ``adam_sharpness`` for
  Adam; after the first ``EARLY`` steps for an unstable forecast): from the first measurement at or above T on
  (if at least 3), the median of s/T (prediction 1, tolerance EOS_TOL = 0.1: Cohen et al. 2021, sec. 3, sharpness
  "hovers just above 2/eta"); otherwise the maximum of s/T (prediction: <= 1 + EOS_TOL, no sustained edge).
  (Fixed after the first digits run: a median started at 0.9 T counts the sharpening ramp below T as
  "hovering".) A diverged run agrees only if the forecast said unstable.
- ``batch_size``: B_simple from a few batches after a short pilot (``pilot_steps`` GD steps on a copy) vs the
  median ``grad_noise`` the Observer measured after the pilot's steps within the first ``BATCH_WINDOW`` of
  training; agrees within a factor 2 (|log2 ratio| <= 1): McCandlish et al. (2018, fig. 4)
  treat B_simple as an order-of-magnitude forecast of B_crit, and it drifts as the loss falls (their fig. 7).
- ``width_transfer``: the muP coordinate check on the user's architecture: every layer's change-from-init slope
  in log2(width) within SLOPE_TOL = 0.25 of 0 (Yang et al. 2022, sec. 7; 0.25 is the midpoint to the nearest
  rival rate, +-1/2: SP's hidden layers with SGD, NTP's vanishing features); the control is SP's largest |slope|,
  which must exceed SLOPE_TOL (so the check can fail); SP coordinates that overflow count as blown up. The check
  runs in muP's domain (widths 8-32x the proxy = base width, 3 seeds, SGD lr capped at 1/lambda of the base
  model: :mod:`.width`); the user's own widths and lr are shown as an unscored boundary. (These rules were
  fixed after a first look, which measured at the user's widths with the base at the smallest of them and scored
  the pre-asymptotic sqrt(base/width) transient instead of muP's prediction; see :mod:`.width`.)
- ``loss``: the final value of the loss metric lies in the forecast's bootstrap band (tolerance: the band's
  half-width on the side of the measurement).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..panels import Panel, Series
from .batch import BatchSizeForecast
from .loss import LossForecast
from .stability import EdgeOfStability, Stability
from .width import WidthTransfer

__all__ = ["Forecast", "ScoredItem", "Scorecard", "EARLY", "EOS_TOL", "BATCH_WINDOW", "SLOPE_TOL"]

EARLY = 20
EOS_TOL = 0.1
BATCH_WINDOW = 0.1
SLOPE_TOL = 0.25
VERDICTS = ("agrees", "disagrees", "inconclusive", "not scored")


@dataclass
class ScoredItem:
    """One forecast, scored: name, statement (the forecast in words), prediction, measurement, error, tolerance,
    verdict (agrees | disagrees | inconclusive | not scored), note (how it was measured), panels (figure)."""

    name: str
    statement: str
    prediction: Any
    measurement: Any
    error: float
    tolerance: float
    verdict: str
    note: str = ""
    panels: list[Panel] = field(default_factory=list)


def _series(frame: pd.DataFrame, metric: str, layer: str = "") -> tuple[np.ndarray, np.ndarray]:
    rows = frame[(frame["metric"] == metric) & (frame["layer"].fillna("") == layer)].sort_values("step")
    return rows["step"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float)


def _check_frame(observations: Any) -> pd.DataFrame:
    if not isinstance(observations, pd.DataFrame):
        raise ValueError(f"observations must be a pandas DataFrame (Observer.to_frame()), got "
                         f"{type(observations).__name__}")
    missing = {"step", "metric", "value"} - set(observations.columns)
    if missing:
        raise ValueError(f"observations lack the columns {sorted(missing)} (expected step, metric, layer, value)")
    frame = observations.copy()
    if "layer" not in frame:
        frame["layer"] = ""
    frame["value"] = frame["value"].astype(float)
    return frame


@dataclass
class Forecast:
    """Forecasts for one training run, made before it starts (see :func:`learnmech.forecast.predict`).

    lr, optimizer ("gd" | "momentum" | "adam"), steps: the run's settings; stability / regime: the stability
    forecast and its edge-of-stability expectation at ``lr``; batch, width, loss: the other forecasts (None when
    not requested); coord: the coordinate checks {"mup": CoordCheck, "sp": CoordCheck} behind ``width``;
    loss_metric: the Observer metric the loss forecast is scored against; notes: forecasts that could not be made.
    """

    lr: float
    optimizer: str
    steps: int | None = None
    stability: Stability | None = None
    regime: EdgeOfStability | None = None
    batch: BatchSizeForecast | None = None
    width: WidthTransfer | None = None
    loss: LossForecast | None = None
    coord: dict[str, Any] = field(default_factory=dict)
    loss_metric: str = "test_loss"
    notes: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """The forecasts as printable lines."""
        lines = [f"forecast for {self.optimizer} at lr={self.lr:g}" + (f", {self.steps} steps" if self.steps else "")]
        if self.stability is not None and self.regime is not None:
            s = self.stability
            what = "preconditioned sharpness" if s.optimizer == "adam" else "sharpness"
            lines.append(f"  stability: {what} at init {s.sharpness:.4g}, lr_stable {s.lr_stable:.4g} "
                         f"(lr / lr_stable = {self.regime.ratio:.3g}: {self.regime.regime})")
            lines.append(f"  edge of stability: {self.regime.expectation}")
        if self.batch is not None:
            b = self.batch
            lines.append(f"  batch size: B_simple {b.b_simple:.4g} examples (spread {b.spread:.2g}); critical batch "
                         f"~{b.b_crit:.3g}: below it doubling the batch halves the steps, above it it wastes examples")
        if self.width is not None:
            w = self.width
            lrs = sorted(set(round(v, 12) for v in w.lr_per_parameter.values()))
            lines.append(f"  width transfer (muP): lr {w.lr:g} tuned at width {w.base_width} -> per-parameter lrs "
                         f"{', '.join(f'{v:.4g}' for v in lrs)} at width {w.width}")
        if self.loss is not None:
            f = self.loss
            at = ", ".join(f"{k}={v:g}" for k, v in f.target.items())
            lines.append(f"  loss ({self.loss_metric}) at {at}: {f.prediction:.4g} "
                         f"[{f.low:.4g}, {f.high:.4g}] ({100 * f.confidence:.0f}% bootstrap, {f.law} law)")
        for name, why in self.notes.items():
            lines.append(f"  {name}: not forecast ({why})")
        return "\n".join(lines)

    # -- scoring ----------------------------------------------------------------------------------------------

    def score(self, observations: pd.DataFrame) -> Scorecard:
        """Score every forecast against ``observations`` (an Observer frame: step, metric, layer, value, error)."""
        frame = _check_frame(observations)
        items = []
        if self.stability is not None:
            items.append(self._score_stability(frame))
            items.append(self._score_eos(frame))
        if self.batch is not None:
            items.append(self._score_batch(frame))
        if self.width is not None or self.coord or "width_transfer" in self.notes:
            items.append(self._score_width())
        if self.loss is not None:
            items.append(self._score_loss(frame))
        return Scorecard(forecast=self, items=items, observations=frame)

    def _diverged(self, frame: pd.DataFrame) -> bool:
        steps, loss = _series(frame, "loss")
        return bool(loss.size and not np.all(np.isfinite(loss)))

    def _score_stability(self, frame: pd.DataFrame) -> ScoredItem:
        regime = self.regime
        steps, loss = _series(frame, "loss")
        early = loss[steps <= EARLY]
        statement = f"lr={self.lr:g} vs lr_stable={self.stability.lr_stable:.4g}: {regime.regime}"
        if early.size < 2:
            return ScoredItem("stability", statement, regime.regime, None, float("nan"), 0.0, "not scored",
                              "no 'loss' rows in the first steps")
        rise = float(np.nanmax(np.where(np.isfinite(early), early, np.inf)) / early[0])
        measured = "unstable" if (not np.all(np.isfinite(early)) or rise > 1.0) else "stable"
        error = 0.0 if measured == regime.regime else 1.0
        verdict = "inconclusive" if regime.regime == "marginal" else ("agrees" if error == 0 else "disagrees")
        note = (f"max loss over steps 0-{EARLY} / initial loss = {rise:.3g}" if math.isfinite(rise)
                else f"loss not finite within {EARLY} steps")
        panel = Panel("loss in the first steps", "step", "training loss", [Series("loss", steps, loss)],
                      yscale="log", hlines=[(float(loss[0]), "initial loss")])
        return ScoredItem("stability", statement, {"regime": regime.regime, "lr_stable": self.stability.lr_stable,
                                                   "lr/lr_stable": regime.ratio},
                          measured, error, 0.0, verdict, note, [panel])

    def _score_eos(self, frame: pd.DataFrame) -> ScoredItem:
        adam = self.optimizer == "adam"
        metric = "adam_sharpness" if adam else "sharpness"
        limit = self.regime.threshold
        statement = (f"{metric} stays <= {limit:.4g} (= {'38' if adam else '2'}/lr"
                     f"{'' if self.optimizer != 'momentum' else ' x (1 + momentum)'}) and hovers there once reached")
        steps, values = _series(frame, metric)
        panels = []
        if steps.size:
            band = Series(f"threshold {limit:.4g} +- {EOS_TOL:.0%}", steps, np.full(steps.size, limit),
                          role="prediction", lower=np.full(steps.size, (1 - EOS_TOL) * limit),
                          upper=np.full(steps.size, (1 + EOS_TOL) * limit))
            panels.append(Panel(f"{metric} vs the stability threshold", "step", f"{metric} (1/lr units)",
                                [band, Series(metric, steps, values)]))
        if self._diverged(frame):
            ok = self.regime.regime == "unstable"
            expected = "diverges or catapults below" if self.regime.regime == "unstable" else "hovers at threshold"
            return ScoredItem("edge_of_stability", statement, expected, "diverged", 0.0 if ok else 1.0,
                              0.0, "agrees" if ok else "disagrees",
                              "the run diverged: consistent only with an unstable forecast", panels)
        keep = np.isfinite(values) & (steps > (EARLY if self.regime.regime == "unstable" else 0))
        steps, values = steps[keep], values[keep]
        if values.size < 3:
            return ScoredItem("edge_of_stability", statement, 1.0, None, float("nan"), EOS_TOL, "not scored",
                              f"fewer than 3 finite '{metric}' measurements", panels)
        ratio = values / limit
        reached = np.nonzero(ratio >= 1.0)[0]
        if reached.size and ratio.size - reached[0] >= 3:
            measured = float(np.median(ratio[reached[0]:]))
            error = abs(measured - 1.0)
            note = (f"reached the threshold at step {int(steps[reached[0]])}; median {metric}/threshold from then on "
                    f"= {measured:.3g} over {ratio.size - reached[0]} measurements (max {ratio.max():.3g})")
            prediction: Any = 1.0
        else:
            measured = float(ratio.max())
            error = max(0.0, measured - 1.0)
            note = (f"no sustained edge of stability (fewer than 3 measurements at or above the threshold): max "
                    f"{metric}/threshold = {measured:.3g}")
            prediction = "<= 1"
        verdict = "agrees" if error <= EOS_TOL else "disagrees"
        return ScoredItem("edge_of_stability", statement, prediction, measured, error, EOS_TOL, verdict, note, panels)

    def _score_batch(self, frame: pd.DataFrame) -> ScoredItem:
        b = self.batch
        statement = f"gradient noise scale B_simple ~ {b.b_simple:.4g} examples (critical batch size)"
        steps, values = _series(frame, "grad_noise")
        last = float(frame["step"].max()) if len(frame) else 0.0
        window = (steps > b.pilot_steps) & (steps <= max(BATCH_WINDOW * last, b.pilot_steps + 1.0))
        early = values[window & np.isfinite(values) & (values > 0)]
        panels = []
        if steps.size:
            panels.append(Panel("gradient noise scale", "step", "B_simple (examples)", [
                Series("forecast (x/÷ 2)", steps, np.full(steps.size, b.b_simple), role="prediction",
                       lower=np.full(steps.size, b.b_simple / 2), upper=np.full(steps.size, b.b_simple * 2)),
                Series("measured", steps, values)], yscale="log"))
        if early.size == 0:
            return ScoredItem("batch_size", statement, b.b_simple, None, float("nan"), 1.0, "not scored",
                              f"no finite 'grad_noise' measurement in the first {BATCH_WINDOW:.0%} of training", panels)
        measured = float(np.median(early))
        error = abs(math.log2(measured / b.b_simple))
        note = (f"median of {early.size} measurement(s) after the {b.pilot_steps}-step pilot, in the first "
                f"{BATCH_WINDOW:.0%} of training; error = "
                "|log2(measured / forecast)|; later values (drift as the loss falls) are shown, not scored")
        return ScoredItem("batch_size", statement, b.b_simple, measured, error, 1.0,
                          "agrees" if error <= 1.0 else "disagrees", note, panels)

    def _score_width(self) -> ScoredItem:
        statement = "muP: the lr tuned at the proxy width transfers (coordinates' updates O(1) in width)"
        mup, sp = self.coord.get("mup"), self.coord.get("sp")
        if mup is not None and getattr(mup, "user_lr", None) is not None and mup.lr < mup.user_lr:
            # the check ran at the capped lr (.width): say so, it does not test the user's lr itself
            statement = (f"muP's per-parameter rules keep coordinates' updates O(1) in width (checked at lr "
                         f"{mup.lr:.3g} = 1/lambda_base; the run's lr {mup.user_lr:g} is above that cap)")
        if mup is None:
            why = self.notes.get("width_transfer", "no coordinate check was run")
            return ScoredItem("width_transfer", statement, 0.0, None, float("nan"), SLOPE_TOL, "not scored", why)
        slopes = {k: v for k, v in mup.change_slope.items() if math.isfinite(v)}
        worst = max(slopes, key=lambda k: abs(slopes[k])) if slopes else None
        measured = float(abs(slopes[worst])) if worst else float("nan")
        panels = list(mup.figure())[1:]
        sp_worst = float("nan")
        if sp is not None:
            finite = [abs(v) for v in sp.change_slope.values() if math.isfinite(v)]
            sp_worst = max(finite) if finite else float("nan")
            if not np.all(np.isfinite(np.asarray(sp.change))):  # SP's coordinates overflowed: blown up
                sp_worst = float("inf")
            panels += list(sp.figure())[1:]
        layers = list(mup.change_slope)
        index = np.arange(len(layers), dtype=float)
        slope_series = [
            Series(f"muP prediction 0 +- {SLOPE_TOL}", index, np.zeros(index.size), role="prediction",
                   lower=np.full(index.size, -SLOPE_TOL), upper=np.full(index.size, SLOPE_TOL)),
            Series("muP (measured)", index, [mup.change_slope[k] for k in layers]),
        ]
        if sp is not None:
            slope_series.append(Series("SP (control)", index, [sp.change_slope.get(k, float("nan")) for k in layers]))
        panels.insert(0, Panel(f"change slope per layer ({', '.join(f'{i}: {k}' for i, k in enumerate(layers))})",
                               "layer index", "d log2 |change| / d log2 width", slope_series, yscale="symlog"))
        rejected = sp_worst > SLOPE_TOL  # NaN (no control) is not a rejection; inf (overflow) is
        if not math.isfinite(measured):
            verdict = "not scored"
        elif measured > SLOPE_TOL:
            verdict = "disagrees"
        else:
            verdict = "agrees" if rejected else "inconclusive"
        note = (f"largest |change slope| under muP: {measured:.3g} ({worst}); control SP: {sp_worst:.3g} "
                f"({'rejected' if rejected else 'not rejected'}: SP must exceed {SLOPE_TOL})")
        note += _width_domain_note(mup)
        return ScoredItem("width_transfer", statement, 0.0, measured, measured, SLOPE_TOL, verdict, note, panels)

    def _score_loss(self, frame: pd.DataFrame) -> ScoredItem:
        f = self.loss
        at = ", ".join(f"{k}={v:g}" for k, v in f.target.items())
        statement = f"final {self.loss_metric} at {at} in [{f.low:.4g}, {f.high:.4g}] ({f.law} law)"
        steps, values = _series(frame, self.loss_metric)
        finite = values[np.isfinite(values)]
        panels = []
        if f.law == "power":
            col = f.columns[0]
            lo_x = min(float(f.x.min()), f.target[col])
            grid = np.geomspace(lo_x, max(float(f.x.max()), f.target[col]) * 1.2, 60)
            mid, low, high = f.band(grid)
            series = [Series(f"fit +- {100 * f.confidence:.0f}% band", grid, mid, role="prediction", lower=low,
                             upper=high), Series("sweep runs", f.x[:, 0], f.y)]
            if finite.size:
                series.append(Series("this run (final)", [f.target[col]], [finite[-1]]))
            panels.append(Panel("loss vs the scaling-law band", col, self.loss_metric, series, xscale="log",
                                yscale="log"))
        if finite.size == 0:
            return ScoredItem("loss", statement, f.prediction, None, float("nan"), float("nan"), "not scored",
                              f"no finite '{self.loss_metric}' rows", panels)
        measured = float(finite[-1])
        error = abs(measured - f.prediction)
        tolerance = (f.high - f.prediction) if measured >= f.prediction else (f.prediction - f.low)
        verdict = "agrees" if f.low <= measured <= f.high else "disagrees"
        note = f"last '{self.loss_metric}' (step {int(steps[np.isfinite(values)][-1])}) vs the bootstrap band"
        return ScoredItem("loss", statement, f.prediction, measured, error, tolerance, verdict, note, panels)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:1rem 0}th,td{border-bottom:1px solid #ddd;
padding:.35rem .5rem;text-align:left;vertical-align:top}th{background:#f4f4f6}.agrees{color:#0a7d32;font-weight:600}
.disagrees{color:#b3261e;font-weight:600}.inconclusive,.not{color:#8a5300;font-weight:600}img{max-width:100%;
border:1px solid #eee}pre{background:#f7f7f7;padding:.6rem;font-size:.8rem;overflow:auto}"""


def _width_domain_note(check: Any) -> str:
    """Where the coordinate check ran (attributes set by :func:`.width.coordinate_check`; empty for a bare
    ``CoordCheck``) and the unscored boundary slopes at the user's own widths and lr."""
    if getattr(check, "base_width", None) is None:
        return ""
    widths = ", ".join(str(int(w)) for w in check.widths)
    text = (f"; measured at widths {widths} (base {check.base_width}), seeds {list(check.seeds)}, lr {check.lr:.3g}"
            f" (user lr {check.user_lr:g}; 1/lambda_base = {1 / check.lambda_base:.3g})"
            if math.isfinite(check.lambda_base) and check.lambda_base > 0 else
            f"; measured at widths {widths} (base {check.base_width}), seeds {list(check.seeds)}, lr {check.lr:.3g}")
    boundary = getattr(check, "boundary", None)
    if boundary is not None:
        slopes = ", ".join(f"{k}: {v:+.2f}" for k, v in boundary.change_slope.items())
        text += (f"; boundary (not scored): at the user's widths {', '.join(str(int(w)) for w in boundary.widths)} "
                 f"with base = proxy and the user's lr, change slopes {slopes} (pre-asymptotic)")
    return text


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


@dataclass
class Scorecard:
    """Scored forecasts of one run: ``items`` (list of :class:`ScoredItem`), the forecast and the observations."""

    forecast: Forecast
    items: list[ScoredItem]
    observations: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per item: name, statement, prediction, measurement, error, tolerance, verdict, note."""
        rows = [{k: v for k, v in asdict(item).items() if k != "panels"} for item in self.items]
        return pd.DataFrame(rows, columns=["name", "statement", "prediction", "measurement", "error", "tolerance",
                                           "verdict", "note"])

    def verdicts(self) -> dict[str, str]:
        return {item.name: item.verdict for item in self.items}

    def summary(self) -> str:
        return "\n".join(f"  {i.name:18s} {i.verdict:12s} prediction {_fmt(i.prediction)}; measured "
                         f"{_fmt(i.measurement)}; error {_fmt(i.error)} (tolerance {_fmt(i.tolerance)})"
                         for i in self.items)

    def to_html(self, path: str | Path, *, title: str = "learnmech forecast report card") -> Path:
        """Write a self-contained HTML report card (figures embedded as PNG) to ``path``; returns the path."""
        from ..report.figures import render_png

        path = Path(path)
        rows = []
        for item in self.items:
            css = item.verdict.split()[0]
            rows.append(
                f"<tr><td>{html.escape(item.name)}</td><td>{html.escape(item.statement)}</td>"
                f"<td>{html.escape(_fmt(item.prediction))}</td><td>{html.escape(_fmt(item.measurement))}</td>"
                f"<td>{html.escape(_fmt(item.error))}</td><td>{html.escape(_fmt(item.tolerance))}</td>"
                f"<td class='{css}'>{html.escape(item.verdict)}</td><td>{html.escape(item.note)}</td></tr>")
        figures = []
        for item in self.items:
            if item.panels:
                png = base64.b64encode(render_png(item.panels)).decode()
                figures.append(f"<h3>{html.escape(item.name)} — <span class='{item.verdict.split()[0]}'>"
                               f"{html.escape(item.verdict)}</span></h3><p>{html.escape(item.note)}</p>"
                               f"<img alt='{html.escape(item.name)}' src='data:image/png;base64,{png}'>")
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
                f"<pre>{html.escape(self.forecast.summary())}</pre>"
                "<table><tr><th>forecast</th><th>statement</th><th>prediction</th><th>measurement</th><th>error</th>"
                f"<th>tolerance</th><th>verdict</th><th>how measured</th></tr>{''.join(rows)}</table>"
                f"{''.join(figures)}<p style='color:#666;font-size:.8rem'>Scoring rules: "
                "learnmech.forecast.card module docstring.</p></body></html>")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page)
        return path
