"""Static HTML report with a matplotlib figure per claim, built from the results database."""

from .figures import render_png
from .html import run_metadata, sweep_aggregates, write_report

__all__ = ["write_report", "render_png", "sweep_aggregates", "run_metadata"]
