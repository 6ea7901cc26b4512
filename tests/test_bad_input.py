"""Bad input at every public boundary: a ValueError naming the argument (Python API) or exit code 2 with a one-line
message (CLI), and nothing half-written on disk. The table itself lives in docs/bad-inputs.md."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from bad_input_cases import KNOWN_GAPS, all_cases

from learnmech import cli
from learnmech.run import Store, StoreError, claims_jobs, run_jobs


def _params() -> list:
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=False, reason=KNOWN_GAPS[case.id])]
                         if case.id in KNOWN_GAPS else []) for case in all_cases()]


@pytest.mark.parametrize("case", _params())
def test_public_function_refuses_bad_input_naming_the_argument(case):
    with pytest.raises(ValueError) as info:
        case.call()
    message = str(info.value)
    assert case.names in message, f"{case.id}: message does not name {case.names!r}: {message}"
    assert "Traceback" not in message and len(message) < 600


def test_api_run_refuses_before_creating_the_database():
    for path in ("/nonexistent/never-created.db", "/nonexistent/never.db", "/nonexistent/x.db"):
        assert not Path(path).exists() and not Path(path).parent.exists()


# ---------------------------------------------------------------------------------------------------------------
# CLI and store: exit code 2, one line on stderr naming the flag, and the files untouched.


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, code, err)
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


def _reproduce(db: Path, out: Path) -> list[str]:
    return ["reproduce", "--quick", "--claims", "toy-coin", "--workers", "1", "--db", str(db), "--out", str(out)]


def _learnmech_db(path: Path) -> Path:
    run_jobs(claims_jobs(["toy-coin"], seed=0), path, workers=1, quiet=True)
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    return path


def test_garbage_file_as_db_is_refused_and_left_untouched(tmp_path, capsys):
    db = tmp_path / "garbage.db"
    db.write_bytes(b"not an SQLite file, just bytes " * 200)
    before = _digest(db)
    for argv in (_reproduce(db, tmp_path / "out"), ["results", "--db", str(db)],
                 ["report", "--db", str(db), "--out", str(tmp_path / "out")]):
        assert "--db" in _cli_error(argv, capsys)
    assert _digest(db) == before
    assert not (tmp_path / "out" / "report.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("garbage")) == ["garbage.db"]  # no -wal


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path, capsys):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'Ada')")
    conn.close()
    before = _digest(db)
    err = _cli_error(_reproduce(db, tmp_path / "out"), capsys)
    assert "did not create" in err and "customers" in err
    assert _digest(db) == before
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]
    conn.close()


@pytest.mark.parametrize("damage", ["truncated", "overwritten page"])
def test_damaged_results_database_is_refused(tmp_path, capsys, damage):
    db = _learnmech_db(tmp_path / "r.db")
    run_jobs([j for s in range(40) for j in claims_jobs(["toy-coin"], seed=s)], db, workers=1, quiet=True)
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    size = db.stat().st_size
    with open(db, "r+b") as handle:
        if damage == "truncated":
            handle.truncate(size // 2)
        else:
            handle.seek(size // 2)
            handle.write(bytes(range(256)) * 32)
    before = _digest(db)
    with pytest.raises(StoreError, match="r.db"):
        Store(db)
    assert "--db" in _cli_error(_reproduce(db, tmp_path / "out"), capsys)
    assert "--db" in _cli_error(["results", "--db", str(db)], capsys)
    assert _digest(db) == before


def test_unwritable_out_and_db_locations(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "--out" in _cli_error(_reproduce(tmp_path / "r.db", a_file), capsys)  # --out is a file
    assert "--out" in _cli_error(_reproduce(tmp_path / "r.db", a_file / "sub"), capsys)  # under a file
    assert "--out" in _cli_error(_reproduce(tmp_path / "r.db", Path("/proc/learnmech-out")), capsys)
    assert not (tmp_path / "r.db").exists()  # refused before any database was created
    assert "--db" in _cli_error(_reproduce(tmp_path, tmp_path / "out"), capsys)  # --db is a directory
    assert "--db" in _cli_error(_reproduce(a_file / "r.db", tmp_path / "out"), capsys)  # --db under a file
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("argv, flag", [
    (["sweep", "toy-coin", "--grid", "samples=10", "--seeds", "0"], "--seeds"),
    (["sweep", "toy-coin", "--grid", "samples=10", "--seeds", "-3"], "--seeds"),
    (["sweep", "toy-coin", "--grid", "samples=10", "--workers", "0"], "--workers"),
    (["sweep", "toy-coin", "--grid", "samples=ten"], "--grid samples"),
    (["sweep", "toy-coin", "--grid", "samples=1.5"], "--grid samples"),
    (["sweep", "toy-coin", "--grid", "mean=nan"], "--grid mean"),
    (["sweep", "toy-coin", "--grid", "mean=inf,0"], "--grid mean"),
    (["sweep", "toy-coin", "--grid", "nokey=1"], "nokey"),
    (["sweep", "toy-coin", "--grid", "samples="], "--grid"),
    (["sweep", "toy-coin", "--grid", "samples=,"], "--grid"),
    (["sweep", "toy-coin"], "--grid"),
    (["sweep", "nope", "--grid", "samples=10"], "nope"),
    (["sweep", "toy-coin", "--grid", "samples=10", "--address", "auto"], "--address"),
    (["sweep", "toy-coin", "--grid", "samples=10", "--backend", "slurm"], "--backend"),
    (["reproduce", "--claims", ""], "--claims"),
    (["reproduce", "--claims", "toy-coin,nope"], "nope"),
    (["reproduce", "--seed", "x"], "--seed"),
    (["results", "--format", "xml"], "--format"),
    (["fit", "missing.csv", "--n", "N", "--d", "D", "--loss", "L"], "missing.csv"),
    (["frobnicate"], "frobnicate"),
])
def test_cli_bad_arguments_exit_2_before_writing_anything(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    if argv[0] in ("sweep", "reproduce"):
        argv = [*argv, "--out", str(out)]
    elif argv[0] == "fit":
        argv = [*argv, "--out", str(out), "--bootstrap", "0"]
    err = _cli_error(argv, capsys)
    assert flag in err, err
    if argv[0] != "fit":  # fit may create its --out first; it writes nothing into it
        assert not out.exists(), "a refused command must not create its output directory"
    assert not any(out.glob("*")) if out.exists() else True


def test_cli_fit_bad_csv_is_exit_2(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,L\n1e6,1e8,nan\n2e6,1e8,3.0\n")
    assert "fit" in _cli_error(["fit", str(csv), "--n", "N", "--d", "D", "--loss", "L", "--out", str(tmp_path),
                                "--bootstrap", "0"], capsys)
    assert "N" in _cli_error(["fit", str(csv), "--n", "params", "--d", "D", "--loss", "L", "--out", str(tmp_path),
                              "--bootstrap", "0"], capsys)
    assert not (tmp_path / "scaling_fit.png").exists()


def test_report_and_results_never_create_a_missing_database(tmp_path, capsys):
    missing = tmp_path / "missing.db"
    assert "--db" in _cli_error(["report", "--db", str(missing), "--out", str(tmp_path / "out")], capsys)
    assert "--db" in _cli_error(["results", "--db", str(missing)], capsys)
    assert not missing.exists()
