"""Figures for kernel-convergence experiments: the empirical NTK of finite nets against the analytic limit.

Both the MLP (``ntk-convergence``) and the CNN-GAP (``cnn-gap-convergence``) claims test the same statement, relative
Frobenius error ~ width^-1/2 (Jacot, Gabriel & Hongler 2018; Hanin & Nica 2019), and draw it the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..panels import Panel, Series

__all__ = ["convergence_panels"]


def _upper_sorted(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct entries of two symmetric matrices (upper triangle), ordered by ``reference``, for a scatter."""
    rows, cols = np.triu_indices(reference.shape[0])
    order = np.argsort(reference[rows, cols])
    return reference[rows, cols][order], other[rows, cols][order]


def convergence_panels(
    widths: Sequence[float],
    errors: np.ndarray,
    analytic: np.ndarray,
    empirical: np.ndarray,
    *,
    slope: float,
    intercept: float,
    tolerance: float,
    predicted: float,
    rivals: Sequence[tuple[float, bool]] = (),
    title: str,
    width_label: str,
    entries_title: str,
    entry_units: str = "",
) -> list[Panel]:
    """Two panels: relative error vs width (log-log) with the predicted slope and its band, the rival slopes and the
    least-squares fit; and the widest net's kernel entries against the analytic ones.

    Parameters
    ----------
    widths : sequence of float, shape (n_widths,)
        Widths (hidden units or channels).
    errors : ndarray, shape (n_widths, n_nets)
        Relative Frobenius errors ``||Theta_n - Theta||_F / ||Theta||_F`` of independent nets.
    analytic, empirical : ndarray, shape (n, n)
        The analytic NTK and one empirical NTK (of the widest net) on the same inputs.
    slope, intercept : float
        The fitted line ``log error = intercept + slope log width``.
    tolerance : float
        Half-width of the band drawn around the predicted slope (slope units).
    predicted : float
        The predicted slope (-1/2); its line is pinned at the fit's centre, for the eye only.
    rivals : sequence of (slope, rejected)
        The negative controls' slopes and whether the experiment rejected each.
    title, width_label, entries_title, entry_units : str
        Panel titles, the x-axis label, and the kernel entries' units (e.g. ``"(output units^2)"``).
    """
    widths = np.asarray(widths, dtype=float)
    errors = np.asarray(errors, dtype=float)
    mean_err, std_err = errors.mean(axis=1), errors.std(axis=1, ddof=1)
    grid = np.geomspace(widths[0], widths[-1], 50)
    centre = np.exp(np.mean(np.log(widths)))
    anchor = np.exp(intercept + slope * np.log(centre))
    lo = anchor * (grid / centre) ** (predicted - tolerance)
    hi = anchor * (grid / centre) ** (predicted + tolerance)
    units = f" {entry_units}" if entry_units else ""
    return [
        Panel(
            title=title,
            xlabel=width_label,
            ylabel="||Theta_n - Theta||_F / ||Theta||_F",
            xscale="log",
            yscale="log",
            series=[
                Series("measured (mean +- sd over nets)", widths, mean_err, role="measurement", yerr=std_err,
                       group="measured"),
                Series(f"slope {predicted:g} (pinned at the fit's centre); band: slope +- tolerance", grid,
                       anchor * (grid / centre) ** predicted, role="prediction",
                       lower=np.minimum(lo, hi), upper=np.maximum(lo, hi)),
                *[Series(f"control: slope {rival:g} ({'rejected' if rejected else 'not rejected'})", grid,
                         anchor * (grid / centre) ** rival, role="reference") for rival, rejected in rivals],
                Series(f"least-squares fit, slope {slope:.3f}", grid, np.exp(intercept) * grid**slope,
                       role="reference", group="measured"),
            ],
        ),
        Panel(
            title=entries_title,
            xlabel=f"analytic NTK entry{units}",
            ylabel=f"empirical NTK entry{units}",
            series=[
                Series("y = x", [analytic.min(), analytic.max()], [analytic.min(), analytic.max()],
                       role="prediction"),
                Series("entries (upper triangle)", *_upper_sorted(analytic, np.asarray(empirical)),
                       role="measurement", connect=False),
            ],
        ),
    ]
