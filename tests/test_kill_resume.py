"""No lost results: SIGKILL `learnmech sweep` / `reproduce` mid-run, re-run the same command, and count.

Each finished run is committed in its own transaction (WAL), so a kill loses only the runs in flight; the unique
key (claim, config hash, seed) makes the re-run skip what is stored and never duplicate it. The sub-run cache does
the same inside one long claim.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
LEARNMECH = [sys.executable, "-m", "learnmech.cli"]


def _count(db: Path, table: str) -> int:
    """Rows committed so far, read like any outside reader would (0 while the file or table does not exist)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _kill_when(cmd: list[str], env: dict[str, str], db: Path, table: str, at_least: int) -> int:
    """Start ``cmd``, SIGKILL it once ``table`` has ``at_least`` committed rows; returns the count after the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while _count(db, table) < at_least:
            assert proc.poll() is None, f"{cmd} ended (rc {proc.returncode}) before it could be killed"
            assert time.monotonic() < deadline, "no rows committed in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the driver only: no handler, no cleanup, no flush
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # orphaned pool workers of the killed driver (ours alone)
        except ProcessLookupError:
            pass
        proc.wait()
    return _count(db, table)


def _keys(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT claim, config_hash, seed FROM results")]


def test_sigkilled_sweep_resumes_without_losing_or_duplicating(tmp_path):
    db = tmp_path / "sweep.db"
    cmd = [*LEARNMECH, "sweep", "toy-coin", "--grid", "samples=100,200", "--grid", "sleep=0.3", "--seeds", "4",
           "--workers", "2", "--db", str(db), "--out", str(tmp_path / "out")]
    stored = _kill_when(cmd, dict(os.environ), db, "results", at_least=3)
    assert 3 <= stored < 8, "the kill must land in the middle of the sweep"

    rerun = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # The re-run skipped exactly what the killed run had committed and ran only the rest.
    assert f"ran {8 - stored} (skipped {stored} already stored)" in rerun.stdout
    keys = _keys(db)
    assert len(keys) == 8 and len(set(keys)) == 8  # zero lost, zero duplicated
    assert (tmp_path / "out" / "report.html").exists()


def test_sigkilled_reproduce_resumes_inside_the_claim_from_the_subrun_cache(tmp_path):
    db, log = tmp_path / "repro.db", tmp_path / "computed.log"
    env = dict(os.environ, LEARNMECH_TOY_SUBRUNS="6", LEARNMECH_TOY_SLEEP="0.25", LEARNMECH_TOY_LOG=str(log))
    cmd = [*LEARNMECH, "reproduce", "--quick", "--claims", "toy-subruns,toy-coin", "--workers", "1",
           "--db", str(db), "--out", str(tmp_path / "out")]
    cached_at_kill = _kill_when(cmd, env, db, "subruns", at_least=2)
    assert 2 <= cached_at_kill < 6 and _count(db, "results") == 0  # killed inside the claim
    with sqlite3.connect(db) as conn:
        cached_indices = {int(re.search(r'"index":(\d+)', k).group(1)) for (k,) in conn.execute(
            "SELECT replace(key, ' ', '') FROM subruns")}
    log.write_text("")  # from here on, count only what the re-run computes

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    recomputed = {int(line.split()[1]) for line in log.read_text().split("\n") if line}
    assert recomputed == set(range(6)) - cached_indices  # cached sub-runs were reused, not recomputed
    assert _count(db, "subruns") == 6
    keys = _keys(db)
    assert sorted(k[0] for k in keys) == ["toy-coin", "toy-subruns"]  # one row each, nothing duplicated


# ---------------------------------------------------------------------------------------------------------------
# Issue 13 item 4: killing the driver alone (not its process group) must not leave pool workers running.


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table, found, frontier = _processes(), set(), {pid}
    while frontier:
        children = {p for p, (parent, _) in table.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {p for p in pids if p in table and table[p][1] not in ("Z", "X")}  # a zombie has exited


def _wait_gone(pids: set[int], seconds: float = 15.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


def _busy_sweep(tmp_path: Path, log: Path) -> subprocess.Popen:
    """A two-worker sweep whose jobs take ~40 s each; returns once both workers are inside a job."""
    env = dict(os.environ, LEARNMECH_TOY_LOG=str(log))
    cmd = [*LEARNMECH, "sweep", "toy-subruns", "--grid", "subruns=200", "--grid", "sleep=0.2", "--grid",
           f"log={log}", "--seeds", "3", "--workers", "2", "--db", str(tmp_path / "r.db"), "--out",
           str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    while len({line.split()[0] for line in (log.read_text().split("\n") if log.exists() else []) if line}) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers did not start in time"
        time.sleep(0.05)
    return proc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill9_of_the_driver_alone_leaves_no_worker_running(tmp_path):
    proc = _busy_sweep(tmp_path, tmp_path / "computed.log")
    try:
        workers = _descendants(proc.pid)
        assert len(workers) >= 3  # two pool workers and the progress-queue manager
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its workers get no signal from us
        proc.wait()
        assert _wait_gone(workers) == set(), "pool workers outlived their driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_of_the_driver_is_handled_like_ctrl_c(tmp_path):
    log = tmp_path / "computed.log"
    proc = _busy_sweep(tmp_path, log)
    try:
        workers = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # does not wait for the 40 s jobs in flight
        assert proc.returncode == 143, err[-2000:]
        assert "terminated: finished runs are stored" in err and "Traceback" not in err
        assert _wait_gone(workers, 5.0) == set()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # the database is intact and the same command resumes (nothing was stored half-way)
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
