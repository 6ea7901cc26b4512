"""The work of ``learnmech fit``: fit L(N, D) = E + A/N^alpha + B/D^beta to a user's own runs from a CSV file.

:func:`fit_csv` reads and checks the file, fits the law and returns the fit with its figure panel; the ``learnmech``
command (:func:`learnmech.cli.run_fit`) renders the panel and prints :func:`format_fit_table`. Every problem with the
input is a one-line ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import positive_int
from ..panels import Panel
from .data import drop_highest
from .fit import PARAMETER_NAMES, ScalingLawFit, fit_scaling_law
from .plot import loss_vs_compute_panel

__all__ = ["CsvFit", "fit_csv", "read_runs", "format_fit_table"]

FIGURE_NAME = "scaling_fit.png"


def read_runs(csv_path: str, n_col: str, d_col: str, loss_col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, loss) float arrays from three columns of a CSV; ValueError for a missing/unreadable file, missing
    columns (listing the available ones), non-numeric, non-finite or non-positive values."""
    import pandas as pd

    path = Path(csv_path)
    if path.is_dir():
        raise ValueError(f"{csv_path!r} is a directory; expected a CSV file with one row per run")
    if not path.exists():
        raise ValueError(f"CSV file {csv_path!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{csv_path!r} is not a regular file; expected a CSV file with one row per run")
    if path.stat().st_size == 0:
        raise ValueError(f"CSV file {csv_path!r} is empty; expected a header line and one row per run")
    try:
        table = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for malformed files; all mean "unreadable"
        raise ValueError(f"could not read CSV {csv_path!r}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    missing = [c for c in (n_col, d_col, loss_col) if c not in table.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in {csv_path!r}; available columns: {list(table.columns)}")
    if len(table) == 0:
        raise ValueError(f"CSV file {csv_path!r} has a header but no data rows; expected one row per run")
    arrays = []
    for role, column in (("--n", n_col), ("--d", d_col), ("--loss", loss_col)):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            rows = np.flatnonzero(bad)[:5] + 2  # spreadsheet-style line numbers: header is line 1
            raise ValueError(
                f"column {column!r} ({role}) must hold finite numbers > 0; {bad.sum()} bad value(s), e.g. on "
                f"line(s) {', '.join(map(str, rows))}"
            )
        arrays.append(values)
    return arrays[0], arrays[1], arrays[2]


def _interval(low: float, high: float) -> str:
    return "[not computed]" if not np.isfinite(low) else f"[{low:.4g}, {high:.4g}]"


def format_fit_table(fit: ScalingLawFit, source: str, excluded: int, figure_path: str, n_bootstrap: int,
                     seed: int) -> str:
    """The printed summary of a :class:`~learnmech.laws.ScalingLawFit`."""
    level = f"{100 * fit.confidence:.0f}%"
    lines = [
        f"L(N, D) = E + A/N^alpha + B/D^beta fitted to {fit.n_points} points of {source}"
        + (f" ({excluded} highest-loss excluded)" if excluded else ""),
        f"Huber delta {fit.huber_delta:g} on log-loss, L-BFGS from {fit.n_starts} starts (Hoffmann et al. 2022, "
        f"approach 3); {n_bootstrap} bootstrap resamples, seed {seed}",
        "",
        f"{'parameter':<10} {'value':>12}   {level + ' interval':<28} {'std err':>10}",
    ]
    for name in PARAMETER_NAMES:
        lines.append(f"{name:<10} {fit.params[name]:>12.5g}   {_interval(*fit.intervals[name]):<28} "
                     f"{fit.standard_errors[name]:>10.3g}")
    frontier = fit.compute_optimal
    lines += [
        f"objective (summed Huber loss): {fit.objective:.6g}",
        "",
        "compute-optimal allocation at compute C = 6 N D (FLOP):",
        f"  N_opt(C) = G (C/6)^a    a = {frontier.a:.4f} {_interval(*frontier.intervals['a'])}",
        f"  D_opt(C) = (C/6)^b / G  b = {frontier.b:.4f} {_interval(*frontier.intervals['b'])}",
        f"  G = {frontier.G:.4g} {_interval(*frontier.intervals['G'])}",
        "",
        f"figure: {figure_path}",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class CsvFit:
    """A scaling-law fit of a CSV file's runs, with what ``learnmech fit`` prints and draws about it.

    fit: the fitted law; panel: loss vs compute with the fit; source: the file's name; excluded: how many
    highest-loss points were dropped; n_bootstrap, seed: the bootstrap that gave the intervals.
    """

    fit: ScalingLawFit
    panel: Panel
    source: str
    excluded: int
    n_bootstrap: int
    seed: int

    def table(self, figure_path: str) -> str:
        """The printed summary (:func:`format_fit_table`) naming the figure written at ``figure_path``."""
        return format_fit_table(self.fit, self.source, self.excluded, figure_path, self.n_bootstrap, self.seed)


def fit_csv(csv_path: str, n_col: str, d_col: str, loss_col: str, exclude_highest: int = 0,
            n_bootstrap: int = 4000, seed: int = 0) -> CsvFit:
    """Fit the Chinchilla law to the runs in ``csv_path``; the fit and its loss-vs-compute panel.

    n_col, d_col, loss_col: column names of parameters N, training tokens/examples D and final loss.
    exclude_highest: drop that many highest-loss points first. n_bootstrap: resamples for the intervals (0: none).
    ValueError (one line, naming the option as the command spells it) for bad input.
    """
    exclude_highest = positive_int(exclude_highest, "--exclude-highest", minimum=0)
    n_bootstrap = positive_int(n_bootstrap, "--bootstrap", minimum=0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    N, D, loss = read_runs(csv_path, n_col, d_col, loss_col)
    if exclude_highest >= N.size:
        raise ValueError(f"--exclude-highest {exclude_highest} would drop all {N.size} points")
    keep = drop_highest(loss, exclude_highest)
    if keep.sum() <= len(PARAMETER_NAMES):
        raise ValueError(
            f"need more points than the {len(PARAMETER_NAMES)} parameters (E, A, B, alpha, beta); {csv_path!r} has "
            f"{int(keep.sum())} after excluding {exclude_highest}"
        )
    N, D, loss = N[keep], D[keep], loss[keep]
    fit = fit_scaling_law(N, D, loss, n_bootstrap=n_bootstrap, seed=int(seed))
    panel = loss_vs_compute_panel(fit, N, D, loss, title=f"{Path(csv_path).name}: loss vs compute")
    return CsvFit(fit, panel, Path(csv_path).name, exclude_highest, n_bootstrap, int(seed))
