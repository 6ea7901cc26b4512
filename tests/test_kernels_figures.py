"""kernels.convergence_panels: the error-vs-width panel and the kernel-entries scatter, from given numbers."""

from __future__ import annotations

import numpy as np

from learnmech.kernels import convergence_panels


def test_panels_draw_the_band_rivals_fit_and_entries():
    widths = [64, 128, 256]
    errors = np.array([[0.2, 0.22], [0.14, 0.15], [0.1, 0.11]])
    kernel = np.array([[2.0, 0.5], [0.5, 1.0]])
    trend, entries = convergence_panels(widths, errors, kernel, kernel + 0.01, slope=-0.5, intercept=0.5,
                                        tolerance=0.1, predicted=-0.5, rivals=[(0.0, True), (-1.0, False)],
                                        title="t", width_label="width", entries_title="e")
    measured, predicted, zero, minus_one, fit = trend.series
    assert measured.y == list(errors.mean(axis=1)) and measured.group == fit.group == "measured"
    assert all(lo <= y <= hi for lo, y, hi in zip(predicted.lower, predicted.y, predicted.upper, strict=True))
    assert "rejected" in zero.label and "not rejected" in minus_one.label
    assert entries.series[1].x == [0.5, 1.0, 2.0] and entries.series[1].connect is False
