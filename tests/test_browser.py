"""The HTML report, opened from disk (file://) in headless Debian Chromium through Playwright.

Checks what a reader sees: the verdict table's rows, every claim figure actually decoded (naturalWidth > 0), the
sweep aggregates and the run metadata; saves a full-page screenshot (to $LEARNMECH_SCREENSHOT_DIR when set, for a
human to look at). Skipped only when Chromium (or the Playwright package) cannot be installed or launched:
`make test` installs Debian's chromium first (`make browser`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from learnmech.run import Store, claims_jobs, run_jobs, sweep
from learnmech.run.runner import environment

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Debian's chromium is not installed (run `make browser`)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason='needs the "browser" extra (playwright)')
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # a chromium that is present but cannot start here
            pytest.skip(f"chromium at {executable} cannot be launched: {exc}")
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    db = out / "results.db"
    run_jobs(claims_jobs(["toy-coin", "toy-explode"], seed=5), db, workers=1, quiet=True)
    sweep("toy-coin", {"samples": [100, 400, 1600]}, 3, db=db, workers=1, quiet=True)
    from learnmech.report import write_report

    return write_report(db, out, environment()), db


def test_report_renders_every_figure_table_and_metadata(browser, report):
    path, db = report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.resolve().as_uri(), wait_until="load")

    # Verdict table: one row per claim, showing the stored outcome.
    with Store(db) as store:
        expected = {r.claim: (r.verdict if r.status == "ok" else r.status) for r in store.rows() if r.kind == "quick"}
    rows = page.locator("table#verdicts tr[data-claim]")
    assert rows.count() == len(expected) == 2
    for i in range(rows.count()):
        row = rows.nth(i)
        name = row.get_attribute("data-claim")
        assert row.locator("td").last.inner_text() != "" and expected[name] in row.inner_text()
    assert page.locator("table#verdicts td.diverged").count() == 1  # toy-explode's quick config diverges

    # Every claim section is there, and each figure is a decoded image, not a broken icon.
    sections = page.locator("section.claim[data-claim]")
    assert sorted(sections.nth(i).get_attribute("data-claim") for i in range(sections.count())) == sorted(expected)
    coin_images = page.locator("section[data-claim='toy-coin'] img")
    assert coin_images.count() == 1
    images = page.locator("section.claim img")
    assert images.count() == 2  # toy-coin's figure and the sweep's figure
    widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w > 0 for w in widths), widths
    visible = images.evaluate_all("imgs => imgs.map(i => i.getBoundingClientRect().width)")
    assert all(w > 100 for w in visible), visible  # laid out at a readable size

    # Sweep aggregates: one row per grid point with 3 seeds, mean ± CI.
    sweep_rows = page.locator("section.sweep table tr").filter(has=page.locator("td"))
    assert sweep_rows.count() == 3
    assert all("±" in sweep_rows.nth(i).inner_text() for i in range(3))

    # Run metadata: version, seeds, time.
    metadata = page.locator("table#metadata").inner_text()
    for needle in ("learnmech versions", "seeds", "first started", "last finished", "torch"):
        assert needle in metadata
    assert not errors

    shot = path.parent / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("LEARNMECH_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["LEARNMECH_SCREENSHOT_DIR"]) / "report.png")
    page.close()
