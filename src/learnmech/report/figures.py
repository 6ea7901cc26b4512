"""Matplotlib rendering of a claim's figure data (a list of :class:`~learnmech.claims.Panel`) to PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..panels import Panel  # noqa: E402

_ROLE_STYLE = {
    "prediction": {"linestyle": "-", "marker": None, "linewidth": 2.0},
    "measurement": {"linestyle": "none", "marker": "o", "markersize": 5},
    "reference": {"linestyle": "--", "marker": None, "linewidth": 1.2, "color": "0.45"},
}


def _nan(values: Sequence[float | None] | None) -> np.ndarray | None:
    """JSON null (a non-finite number on the way in) back to NaN."""
    if values is None:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def draw_panel(ax: plt.Axes, panel: Panel) -> None:
    """Draw one panel: predictions as lines with their tolerance band, measurements as points with error bars."""
    for index, series in enumerate(panel.series):
        x, y = _nan(series.x), _nan(series.y)
        style = dict(_ROLE_STYLE[series.role])
        color = style.pop("color", f"C{index % 10}")
        if series.role == "measurement" and len(x) > 40:
            style.update(linestyle="-", marker=None, linewidth=1.2, alpha=0.9)  # dense traces read better as lines
        if series.yerr is not None:
            ax.errorbar(x, y, yerr=_nan(series.yerr), color=color, label=series.label, capsize=2, **style)
        else:
            ax.plot(x, y, color=color, label=series.label, **style)
        if series.lower is not None and series.upper is not None:
            ax.fill_between(x, _nan(series.lower), _nan(series.upper), color=color, alpha=0.18, linewidth=0)
    for value, label in panel.hlines:
        if value is not None:
            ax.axhline(float(value), color="0.3", linestyle=":", linewidth=1.2, label=label or None)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    ax.set_xscale(panel.xscale)
    ax.set_yscale(panel.yscale)
    ax.grid(True, alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def render_png(panels: Sequence[Panel], *, dpi: int = 90) -> bytes:
    """All panels side by side (up to 3 per row) as one PNG image."""
    panels = list(panels)
    if not panels:
        raise ValueError("panels must contain at least one Panel")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    try:
        for ax, panel in zip(axes.flat, panels, strict=False):
            draw_panel(ax, panel)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    finally:
        plt.close(fig)
