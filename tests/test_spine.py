"""The spine: claim types, registry, runner (resume, failures, determinism), SQLite store, report, CLI."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from learnmech import cli
from learnmech.claims import Claim, Control, Panel, Result, Series, get, registry
from learnmech.report import sweep_aggregates, write_report
from learnmech.run import Store, StoreError, claims_jobs, run_jobs, sweep, sweep_jobs

REJECTED = Control("rival", "a rival that the data reject", 5.0, 1.1, 3.9, 0.2)


def test_result_verdict_follows_error_and_tolerance_when_powered():
    assert Result(1.0, 1.1, 0.1, 0.2, controls=[REJECTED]).verdict == "agrees"
    assert Result(1.0, 2.0, 1.0, 0.2, controls=[REJECTED]).verdict == "disagrees"
    assert Result(1.0, float("nan"), float("nan"), 0.2, controls=[REJECTED]).verdict == "disagrees"
    with pytest.raises(ValueError, match="contradicts"):
        Result(1.0, 2.0, 1.0, 0.2, verdict="agrees", controls=[REJECTED])
    with pytest.raises(ValueError, match="tolerance"):
        Result(1.0, 1.0, 0.0, -1.0)


def test_verdict_is_inconclusive_without_a_rejected_control():
    """The claim protocol: no control, or a control the experiment cannot reject, means the test had no power."""
    assert Result(1.0, 1.1, 0.1, 0.2).verdict == "inconclusive"
    kept = Control("close-rival", "a rival the data cannot tell apart", 1.05, 1.1, 0.05, 0.2)
    assert kept.verdict == "agrees" and not kept.rejected and REJECTED.rejected
    assert Result(1.0, 1.1, 0.1, 0.2, controls=[REJECTED, kept]).verdict == "inconclusive"
    assert Result(1.0, 2.0, 1.0, 0.2, controls=[kept]).verdict == "inconclusive"
    with pytest.raises(ValueError, match="unique"):
        Result(1.0, 1.1, 0.1, 0.2, controls=[REJECTED, REJECTED])
    with pytest.raises(ValueError, match="control 'rival'.*tolerance"):
        Control("rival", "s", 0.0, 0.0, 0.0, -1.0)


def test_result_round_trips_through_json():
    panel = Panel("t", "x", "y", [Series("s", [1, 2], [3, float("inf")], "prediction", lower=[0, 0], upper=[4, 5])])
    result = Result({"a": 1.0}, {"a": 1.5}, 0.5, 1.0, [panel], {"m": [1, 2]}, controls=[REJECTED], units="nats")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["controls"][0]["verdict"] == "disagrees" and data["units"] == "nats"
    back = Result.from_dict(data)
    assert back.verdict == "agrees" and back.figure[0].series[0].upper == [4.0, 5.0]
    assert back.controls == [REJECTED]
    assert back.figure[0].series[0].y[1] is None or back.figure[0].series[0].y[1] != back.figure[0].series[0].y[1]


def test_series_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="x has 2 points but y has 3"):
        Series("s", [1, 2], [1, 2, 3])


def test_registry_discovers_plugins_and_refuses_unknown_names():
    claims = registry()
    assert "toy-coin" in claims and isinstance(claims["toy-coin"], Claim)
    with pytest.raises(ValueError, match="unknown claim 'nope'"):
        get("nope")
    with pytest.raises(ValueError, match="no config key"):
        get("toy-coin").config(True, bogus=1)


def test_runner_stores_resumes_and_forces(tmp_path):
    db = tmp_path / "r.db"
    jobs = claims_jobs(["toy-coin"], seed=3)
    first = run_jobs(jobs, db, workers=1, quiet=True)
    assert len(first.rows) == 1 and first.rows[0].verdict == "agrees"
    again = run_jobs(jobs, db, workers=1, quiet=True)
    assert again.skipped == 1 and again.rows == []
    forced = run_jobs(jobs, db, workers=1, quiet=True, force=True)
    assert len(forced.rows) == 1
    with Store(db) as store:
        assert store.count() == 1  # replaced, not duplicated
        row = store.rows()[0]
    assert row.result["metrics"]["std"] > 0 and row.version and row.started_at <= row.finished_at


def test_same_seed_same_numbers_different_seed_different(tmp_path):
    a = run_jobs(claims_jobs(["toy-coin"], seed=1), tmp_path / "a.db", workers=1, quiet=True).rows[0]
    b = run_jobs(claims_jobs(["toy-coin"], seed=1), tmp_path / "b.db", workers=1, quiet=True).rows[0]
    c = run_jobs(claims_jobs(["toy-coin"], seed=2), tmp_path / "c.db", workers=1, quiet=True).rows[0]
    assert a.measurement == b.measurement != c.measurement


def test_diverged_and_failed_points_are_results_and_the_sweep_goes_on(tmp_path):
    db = tmp_path / "s.db"
    summary = sweep("toy-explode", {"mode": ["diverge", "fail"]}, 2, db=db, workers=1, quiet=True)
    statuses = sorted((r.status, r.diverged_step) for r in summary.rows)
    assert statuses == [("diverged", 17), ("diverged", 17), ("failed", None), ("failed", None)]
    failed = [r for r in summary.rows if r.status == "failed"]
    assert "boom in the experiment" in failed[0].traceback
    # failed rows are retried on resume; diverged ones are results and are kept
    again = sweep("toy-explode", {"mode": ["diverge", "fail"]}, 2, db=db, workers=1, quiet=True)
    assert again.skipped == 2 and len(again.rows) == 2
    with Store(db) as store:
        assert store.count() == 4


def test_process_pool_runs_sweep_with_progress(tmp_path, capsys):
    db = tmp_path / "p.db"
    summary = sweep("toy-coin", {"samples": [100, 200]}, 2, db=db, workers=2)
    assert len(summary.rows) == 4 and {r.status for r in summary.rows} == {"ok"}
    err = capsys.readouterr().err
    assert "4/4" in err and "toy-coin" in err
    aggregates = sweep_aggregates(Store(db).rows())
    assert sorted(a["config"]["samples"] for a in aggregates) == [100, 200]
    assert all(a["seeds"] == 2 and a["error_ci95"] >= 0 for a in aggregates)
    # Determinism: the same (config, seed) gives the same numbers in a pool worker and in this process.
    inline = sweep("toy-coin", {"samples": [100, 200]}, 2, db=tmp_path / "inline.db", workers=1, quiet=True)
    numbers = {(r.config_hash, r.seed): (r.measurement, r.result["metrics"]) for r in summary.rows}
    assert numbers == {(r.config_hash, r.seed): (r.measurement, r.result["metrics"]) for r in inline.rows}


def test_worker_process_death_is_a_failed_row_and_the_others_still_run(tmp_path, monkeypatch):
    from learnmech.run import runner

    monkeypatch.setattr(runner, "MAX_POOL_ATTEMPTS", 2)  # one retry, alone in a fresh pool, is enough to show it
    summary = sweep("toy-explode", {"mode": ["crash_process", "diverge", "fail"]}, 1, db=tmp_path / "d.db",
                    workers=2, quiet=True)
    statuses = sorted(r.status for r in summary.rows)
    # The crashing point is retried alone in a fresh pool, then stored as failed; the innocent points get results.
    assert statuses == ["diverged", "failed", "failed"]
    tracebacks = " | ".join(r.traceback.strip().splitlines()[-1] for r in summary.rows if r.status == "failed")
    assert "BrokenProcessPool" in tracebacks and "boom in the experiment" in tracebacks


def test_sweep_jobs_validate_arguments():
    with pytest.raises(ValueError, match="seeds"):
        sweep_jobs("toy-coin", {"samples": [1]}, 0)
    with pytest.raises(ValueError, match="no values"):
        sweep_jobs("toy-coin", {"samples": []}, 1)
    jobs = sweep_jobs("toy-coin", {"samples": [10, 20], "mean": [0.0, 1.0]}, 3)
    assert len(jobs) == 12 and len({j.key for j in jobs}) == 12


def test_store_refuses_foreign_and_corrupt_files(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="did not create"):
        Store(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not a learnmech results database"):
        Store(garbage)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_report_has_table_and_a_figure_per_claim(tmp_path):
    db = tmp_path / "r.db"
    run_jobs(claims_jobs(["toy-coin", "toy-explode"]), db, workers=1, quiet=True)
    sweep("toy-coin", {"samples": [100, 400]}, 2, db=db, workers=1, quiet=True)
    page = write_report(db, tmp_path / "out").read_text()
    assert page.count('data-claim="toy-coin"') == 1 and "Diverged" not in page.split("<h2>Claims")[0]
    assert page.count("data:image/png;base64,") == 2  # toy-coin's figure + the sweep figure
    assert "diverged" in page and "sweep of toy-coin over samples" in page


def test_cli_exit_codes(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["list"]) == 0
    assert "toy-coin" in capsys.readouterr().out
    assert cli.main(["reproduce", "--quick", "--claims", "toy-coin", "--out", str(out), "--workers", "1"]) == 0
    assert (out / "report.html").exists() and (out / "results.db").exists()
    assert "report:" in capsys.readouterr().out
    assert cli.main(["results", "--db", str(out / "results.db"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["claim"] == "toy-coin"
    for bad in (["reproduce", "--claims", "nope"], ["reproduce", "--bogus"], ["frobnicate"],
                ["report", "--db", str(tmp_path / "missing.db")], ["sweep", "toy-coin", "--grid", "samples"],
                ["sweep", "toy-coin", "--grid", "nokey=1"], ["sweep", "toy-coin", "--grid", "samples=ten"],
                ["reproduce", "--out", "/proc/forbidden"]):
        assert cli.main(bad) == 2, bad
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_live_bar_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    live = _Terminal()
    sweep("toy-explode", {"mode": ["fail", "diverge"]}, 1, db=tmp_path / "a.db", workers=1, stream=live)
    text = live.getvalue()
    assert "\r\033[K" in text and "2/2 failed=1" in text and "eta=" in text
    assert text.endswith("\n")  # the live line is closed at the end
    frames = text.split("\r\033[K")
    assert any("1/2 failed=1" in f for f in frames)  # redrawn in place as runs finish

    plain = io.StringIO()
    sweep("toy-coin", {"samples": [10, 20]}, 1, db=tmp_path / "b.db", workers=1, stream=plain)
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue()
    assert [line.split("]")[1].split()[0] for line in lines if line.startswith("[")] == ["1/2", "2/2"]
    assert any("step 3/3" in line for line in lines)  # the claim's own progress, rate-limited


def test_sweep_counts_the_seeds_it_finds_stored(tmp_path):
    """Issue 13 item 2: a grid point's seed stored by `reproduce` is part of the sweep (not re-run, not dropped)."""
    db = tmp_path / "r.db"
    run_jobs(claims_jobs(["toy-coin"], seed=0), db, workers=1, quiet=True)  # seed 0 at the quick default
    summary = sweep("toy-coin", {"samples": [400, 800]}, 2, db=db, workers=1, quiet=True)
    assert summary.skipped == 1 and len(summary.rows) == 3
    with Store(db) as store:
        points = {a["config"]["samples"]: a["seeds"] for a in sweep_aggregates(store.sweep_rows())}
        assert len(store.rows()) == 4  # nothing stored twice
    assert points == {400: 2, 800: 2}
    page = write_report(db, tmp_path / "out").read_text()
    section = page[page.index("<h2>Sweeps</h2>"):]
    assert section.count(">2<") >= 2  # both grid points show 2 seeds


def test_sweep_progress_lines_name_the_grid_point_and_list_values_sweep(tmp_path):
    """Issue 13 items 3 and 7: list-valued keys are sweepable; each progress line shows its grid point."""
    plain = io.StringIO()
    sweep("toy-coin", {"samples": [10, 20]}, 1, db=tmp_path / "b.db", workers=1, stream=plain)
    done = [line for line in plain.getvalue().splitlines() if line.startswith("[")]
    assert any("toy-coin samples=10 seed=0: " in line for line in done)
    assert any("toy-coin samples=20 seed=0: " in line for line in done)
    steps = [line for line in plain.getvalue().splitlines() if "step 3/3" in line]
    assert steps and all("samples=" in line for line in steps)
    jobs = sweep_jobs("ntk-convergence", {"widths": [[8, 16], [16, 32]]}, 1)
    assert [j.config["widths"] for j in jobs] == [[8, 16], [16, 32]]
    assert [j.label for j in jobs] == ["widths=[8,16]", "widths=[16,32]"]
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        sweep_jobs("ntk-convergence", {"widths": [[8, -16]]}, 1)
