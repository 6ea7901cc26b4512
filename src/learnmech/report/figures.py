"""Matplotlib rendering of a claim's figure data (a list of :class:`~learnmech.panels.Panel`) to PNG bytes.

Layout rules that keep every figure readable whatever the claim puts in it: titles and axis labels are wrapped (never
clipped), the legend sits below its axes (never over the data), series of one ``group`` share a colour (a fitted line
has its data's colour), categories are never joined by lines, and log axes spanning less than a decade get a few
plain-number ticks instead of overlapping minor labels.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from ..panels import Panel, Series  # noqa: E402

_ROLE_STYLE = {
    "prediction": {"linestyle": "-", "marker": None, "linewidth": 2.0},
    "measurement": {"linestyle": "none", "marker": "o", "markersize": 5},
    "reference": {"linestyle": "--", "marker": None, "linewidth": 1.2},
}
_GREY = "0.45"
#: Measurement series denser than this are drawn as lines (training traces) unless ``connect`` says otherwise.
_DENSE = 40
_TITLE_CHARS, _LABEL_CHARS, _LEGEND_CHARS = 48, 52, 60


def _nan(values: Sequence[float | None] | None) -> np.ndarray | None:
    """JSON null (a non-finite number on the way in) back to NaN."""
    if values is None:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else text


def _colours(series: Sequence[Series]) -> list[str]:
    """One colour per series: ungrouped references are grey; a group shares the colour of its first member."""
    by_group: dict[str, str] = {}
    out, next_index = [], 0
    for s in series:
        if s.group is not None and s.group in by_group:
            out.append(by_group[s.group])
            continue
        if s.role == "reference" and s.group is None:
            out.append(_GREY)
            continue
        colour = f"C{next_index % 10}"
        next_index += 1
        if s.group is not None:
            by_group[s.group] = colour
        out.append(colour)
    return out


def _style(series: Series) -> dict:
    style = dict(_ROLE_STYLE[series.role])
    connect = series.connect
    if connect is None:
        connect = series.role != "measurement" or len(series.x) > _DENSE
    if series.role == "measurement":
        if connect and len(series.x) > _DENSE:
            style.update(linestyle="-", marker=None, linewidth=1.2, alpha=0.9)  # dense traces read better as lines
        elif connect:
            style.update(linestyle="-", linewidth=1.0)
    elif not connect:
        style.update(linestyle="none", marker="s" if series.role == "prediction" else "x", markersize=6)
    return style


def _tidy_log_axis(axis: matplotlib.axis.Axis, values: np.ndarray) -> None:
    """Log axes spanning under ~1.5 decades: a few plain-number ticks, no overlapping minor labels."""
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0:
        return
    if np.log10(finite.max() / finite.min()) < 1.5:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def draw_panel(ax: plt.Axes, panel: Panel) -> None:
    """Draw one panel: predictions as lines with their tolerance band, measurements as points with error bars."""
    xs, ys = [], []
    for series, colour in zip(panel.series, _colours(panel.series), strict=True):
        x, y = _nan(series.x), _nan(series.y)
        xs.append(x)
        ys.append(y)
        style = _style(series)
        label = _wrap(series.label, _LEGEND_CHARS)
        if series.yerr is not None:
            ax.errorbar(x, y, yerr=_nan(series.yerr), color=colour, label=label, capsize=2, **style)
        else:
            ax.plot(x, y, color=colour, label=label, **style)
        if series.lower is not None and series.upper is not None:
            lower, upper = _nan(series.lower), _nan(series.upper)
            if style.get("linestyle") == "none":  # separate points (categories): one band per point, not a sheet
                ax.vlines(x, lower, upper, color=colour, alpha=0.3, linewidth=9)
            else:
                ax.fill_between(x, lower, upper, color=colour, alpha=0.18, linewidth=0)
            ys += [lower, upper]
    for value, label in panel.hlines:
        if value is not None:
            ax.axhline(float(value), color="0.3", linestyle=":", linewidth=1.2,
                       label=_wrap(label, _LEGEND_CHARS) or None)
            ys.append(np.array([float(value)]))
    ax.set_title(_wrap(panel.title, _TITLE_CHARS), fontsize=9.5)
    ax.set_xlabel(_wrap(panel.xlabel, _LABEL_CHARS), fontsize=8.5)
    ax.set_ylabel(_wrap(panel.ylabel, _LABEL_CHARS - 12), fontsize=8.5)
    ax.set_xscale(panel.xscale)
    ax.set_yscale(panel.yscale)
    if panel.xscale == "log" and xs:
        _tidy_log_axis(ax.xaxis, np.concatenate(xs))
    if panel.yscale == "log" and ys:
        _tidy_log_axis(ax.yaxis, np.concatenate(ys))
    if panel.xticks:
        ax.set_xticks([float(p) for p, _ in panel.xticks])
        ax.set_xticklabels([str(t) for _, t in panel.xticks], rotation=30, ha="right", fontsize=7.5)
    ax.tick_params(labelsize=7.5)
    ax.grid(True, alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # below the axes, so it never covers data
        below = -0.2 - 0.16 * bool(panel.xticks)  # rotated category labels take room below the axis
        ncol = 1 if len(handles) > 3 or max(map(len, labels)) > 30 else len(handles)
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, below), ncol=ncol,
                  frameon=False)


def render_png(panels: Sequence[Panel], *, dpi: int = 90) -> bytes:
    """All panels side by side (up to 3 per row) as one PNG image."""
    panels = list(panels)
    if not panels:
        raise ValueError("panels must contain at least one Panel")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    # Room below each axes for its legend: the panel with the most legend lines sets the row height.
    legend_lines = max(sum(1 + s.label.count("\n") + len(s.label) // _LEGEND_CHARS for s in p.series)
                       + len(p.hlines) for p in panels)
    height = 3.4 + 0.17 * legend_lines
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, height * rows), squeeze=False)
    try:
        for ax, panel in zip(axes.flat, panels, strict=False):
            draw_panel(ax, panel)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)
