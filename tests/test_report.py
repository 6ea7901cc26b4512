"""The report's verdict table and figure rules (issue 12 §3, issue 13 §10-11), read from the HTML it writes."""

from __future__ import annotations

import re

from learnmech.panels import Panel, Series
from learnmech.report import write_report
from learnmech.report.figures import _colours, _style, render_png
from learnmech.run import claims_jobs, run_jobs


def test_table_shows_controls_units_and_the_verdict_of_every_seed(tmp_path):
    db = tmp_path / "r.db"
    run_jobs(claims_jobs(["toy-coin", "toy-explode"], seed=2, seeds=3), db, workers=1, quiet=True)
    page = write_report(db, tmp_path).read_text()
    row = re.search(r"<tr data-claim='toy-coin'>.*?</tr>", page, re.S).group(0)
    assert "1/1 rejected" in row and "mean-one: rejected" in row
    assert "quick, 3 seeds (2–4)" in row and row.count("class='chip agrees'") == 3
    # the claim's section lists each control and each seed
    section = page[page.index('id="claim-toy-coin"'):]
    assert "negative control" in section and "a rival says the mean is 1" in section
    assert all(f"<td class='num'>{s}</td>" in section for s in (2, 3, 4))
    explode = re.search(r"<tr data-claim='toy-explode'>.*?</tr>", page, re.S).group(0)
    assert "diverged at step 17" in explode


def test_failed_row_shows_the_last_line_of_its_error(tmp_path):
    db = tmp_path / "r.db"
    run_jobs(claims_jobs(["toy-explode"], quick=False), db, workers=1, quiet=True)
    row = re.search(r"<tr data-claim='toy-explode'>.*?</tr>", write_report(db, tmp_path).read_text(), re.S).group(0)
    assert "RuntimeError: boom in the experiment" in row


def test_a_fitted_line_takes_the_colour_of_its_data_and_categories_are_not_joined():
    data = Series("runs", [0, 1, 2], [1, 2, 3], group="a", connect=False)
    fit = Series("fit", [0, 2], [1, 3], role="reference", group="a")
    other = Series("other", [0, 1], [0, 0], role="prediction")
    guide = Series("guide", [0, 1], [1, 1], role="reference")
    colours = _colours([data, fit, other, guide])
    assert colours[0] == colours[1] != colours[2] and colours[3] == "0.45"
    assert _style(data)["linestyle"] == "none"
    assert _style(Series("trace", range(100), range(100)))["linestyle"] == "-"


def test_long_labels_and_categorical_ticks_render():
    panel = Panel("a title long enough that it would be clipped at this width if nobody wrapped it, really",
                  "x", "a y label that is also rather long for one line of an axis (units)",
                  [Series("points", [1, 2, 3], [1, 10, 100], connect=False)], yscale="log",
                  xticks=[(1, "E"), (2, "A"), (3, "alpha")])
    png = render_png([panel])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
