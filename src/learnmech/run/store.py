"""SQLite result store: one row per (claim, config hash, seed), each committed in its own transaction.

WAL mode so a reader (``learnmech report`` while a sweep runs) never blocks the writer, and a SIGKILL loses at most
the run in flight. A unique key on (claim, config_hash, seed) makes re-runs idempotent: resume skips what is stored.
The file is tagged (``meta`` table) so a foreign or corrupted database is refused with a clear error instead of
being written into. Read-only users (``learnmech results``, ``report``) open it with ``readonly=True``: SQLite's
``mode=ro``, so reading can never create a file or write a schema into one.

A sweep's grid point may find some of its (claim, config, seed) runs already stored by an earlier ``reproduce`` or
another sweep; they are not re-run, but the ``sweep_members`` table records that they belong to the sweep, so
:meth:`Store.sweep_rows` shows every seed of the point, computed now or found stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace as _replace
from pathlib import Path
from typing import Any

from ..panels import jsonable

SCHEMA_VERSION = "1"
APP_TAG = "learnmech-results"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    claim         TEXT NOT NULL,
    config_hash   TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    kind          TEXT NOT NULL,            -- 'quick' | 'full' | 'sweep'
    sweep         TEXT,                     -- sweep id (grid hash) for sweep rows
    config        TEXT NOT NULL,            -- JSON
    status        TEXT NOT NULL,            -- 'ok' | 'diverged' | 'failed'
    verdict       TEXT,                     -- 'agrees' | 'disagrees' | NULL when not ok
    error         REAL,
    tolerance     REAL,
    prediction    TEXT,                     -- JSON
    measurement   TEXT,                     -- JSON
    result        TEXT,                     -- JSON of the whole Result (figure data, metrics)
    diverged_step INTEGER,
    traceback     TEXT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    duration_s    REAL NOT NULL,
    version       TEXT NOT NULL,
    backend       TEXT NOT NULL,
    host          TEXT,
    UNIQUE (claim, config_hash, seed)
);
CREATE INDEX IF NOT EXISTS results_by_claim ON results (claim, finished_at);
CREATE TABLE IF NOT EXISTS sweep_members (
    sweep         TEXT NOT NULL,
    claim         TEXT NOT NULL,
    config_hash   TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    UNIQUE (sweep, claim, config_hash, seed)
);
"""

COLUMNS = (
    "claim", "config_hash", "seed", "kind", "sweep", "config", "status", "verdict", "error", "tolerance",
    "prediction", "measurement", "result", "diverged_step", "traceback", "started_at", "finished_at", "duration_s",
    "version", "backend", "host",
)


def config_hash(claim: str, config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a claim's config (key order does not matter)."""
    blob = json.dumps({"claim": claim, "config": jsonable(dict(config))}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Row:
    """One stored result. ``result`` is the Result's dict (see :meth:`learnmech.claims.Result.to_dict`)."""

    claim: str
    config_hash: str
    seed: int
    kind: str
    sweep: str | None
    config: dict[str, Any]
    status: str
    verdict: str | None
    error: float | None
    tolerance: float | None
    prediction: Any
    measurement: Any
    result: dict[str, Any] | None
    diverged_step: int | None
    traceback: str | None
    started_at: str
    finished_at: str
    duration_s: float
    version: str
    backend: str
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


_JSON_COLUMNS = ("config", "prediction", "measurement", "result")


class StoreError(ValueError):
    """The database path is unusable: not writable, not SQLite, or not a learnmech results database."""


class Store:
    """Results database at ``path`` (created with parents if missing, unless ``readonly``).

    readonly: open an existing database for reading only (SQLite ``mode=ro``): nothing is created or written, and
    a missing, empty or schema-less file is a :class:`StoreError`.
    Raises :class:`StoreError` (a ValueError) naming the path if it is a directory, cannot be created, is not an
    SQLite file, or is an SQLite file that some other program owns.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise StoreError(f"--db {self.path}: is a directory, expected a database file path")
        existed = self.path.exists() and self.path.stat().st_size > 0
        if readonly:
            self._open_readonly(existed)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"--db {self.path}: cannot open ({exc})") from None
        try:
            self._check_and_init(existed)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"--db {self.path}: not a learnmech results database ({exc})") from None

    def _open_readonly(self, existed: bool) -> None:
        if not self.path.is_file():
            raise StoreError(f"--db {self.path}: no such results database (run `learnmech reproduce` first)")
        if not existed:
            raise StoreError(f"--db {self.path}: an empty file, not a learnmech results database")
        try:
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"--db {self.path}: cannot open ({exc})") from None
        try:
            self._check(existed=True, readonly=True)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"--db {self.path}: not a learnmech results database ({exc})") from None

    def _check_and_init(self, existed: bool) -> None:
        self._check(existed, readonly=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP_TAG,))
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def _check(self, existed: bool, readonly: bool) -> None:
        """Refuse a foreign or corrupted file (and, read-only, one without our tables) before anything is written."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if readonly and "results" not in tables:
            self._conn.close()
            what = (f"an SQLite database that learnmech did not create (tables: {', '.join(sorted(tables))})"
                    if tables else "an SQLite file with no learnmech results in it")
            raise StoreError(f"--db {self.path}: {what}")
        if existed and tables:
            tag = None
            if "meta" in tables:
                row = self._conn.execute("SELECT value FROM meta WHERE key='app'").fetchone()
                tag = row[0] if row else None
            if tag != APP_TAG:
                self._conn.close()
                raise StoreError(
                    f"--db {self.path}: an SQLite database that learnmech did not create (tables: "
                    f"{', '.join(sorted(tables))}); refusing to {'read' if readonly else 'write into'} it"
                )
            # A damaged page deep in the file passes the schema read above and would only blow up mid-run; an
            # integrity scan (linear in the file, milliseconds for a results database) refuses it up front.
            problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                self._conn.close()
                summary = " ".join("; ".join(problems).split())[:300]  # one line: SQLite's report has newlines
                raise StoreError(f"--db {self.path}: the database file is corrupted ({summary});"
                                 " refusing to " + ("read" if readonly else "write into") + " it (restore it or"
                                 " choose another --db)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done_keys(self) -> set[tuple[str, str, int]]:
        """Keys of rows that need no re-run: status ok or diverged (failed rows are retried)."""
        rows = self._conn.execute("SELECT claim, config_hash, seed FROM results WHERE status != 'failed'")
        return {(c, h, int(s)) for c, h, s in rows}

    def put(self, row: Row, *, replace: bool = False) -> None:
        """Write one row in its own transaction. Existing (claim, config_hash, seed) rows are kept unless
        ``replace`` or the stored row failed."""
        values = row.to_dict()
        for name in _JSON_COLUMNS:
            values[name] = json.dumps(jsonable(values[name]))
        placeholders = ",".join("?" for _ in COLUMNS)
        with self.transaction() as conn:
            if not replace:
                conn.execute(
                    "DELETE FROM results WHERE claim=? AND config_hash=? AND seed=? AND status='failed'",
                    (row.claim, row.config_hash, row.seed),
                )
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            conn.execute(
                f"{verb} INTO results ({','.join(COLUMNS)}) VALUES ({placeholders})",
                [values[c] for c in COLUMNS],
            )

    def add_sweep_members(self, sweep: str, keys: list[tuple[str, str, int]]) -> None:
        """Record that the runs ``keys`` ((claim, config_hash, seed)) belong to sweep ``sweep``."""
        with self.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO sweep_members VALUES (?, ?, ?, ?)",
                             [(sweep, c, h, int(s)) for c, h, s in keys])

    def _has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return self._conn.execute(query, (name,)).fetchone() is not None

    def _select(self, where: str = "1=1", params: list[Any] | None = None) -> list[Row]:
        out = []
        query = f"SELECT {','.join(COLUMNS)} FROM results WHERE {where} ORDER BY finished_at, id"
        for values in self._conn.execute(query, params or []):
            data = dict(zip(COLUMNS, values, strict=True))
            for name in _JSON_COLUMNS:
                data[name] = json.loads(data[name]) if data[name] is not None else None
            out.append(Row(**data))
        return out

    def rows(self, claim: str | None = None, kind: str | None = None) -> list[Row]:
        """Stored rows (oldest first), optionally filtered by claim and kind."""
        where, params = "1=1", []
        if claim is not None:
            where, params = where + " AND claim=?", [*params, claim]
        if kind is not None:
            where, params = where + " AND kind=?", [*params, kind]
        return self._select(where, params)

    def sweep_rows(self) -> list[Row]:
        """Every sweep's rows (oldest first): those it computed, plus those of its grid points it found stored
        (from a ``reproduce`` or another sweep), the latter as copies with ``kind="sweep"`` and its sweep id."""
        everything = self._select()
        rows = [r for r in everything if r.kind == "sweep"]
        if not self._has_table("sweep_members"):
            return rows
        by_key = {(r.claim, r.config_hash, r.seed): r for r in everything}
        seen = {(r.sweep, r.claim, r.config_hash, r.seed) for r in rows}
        for sweep, claim, digest, seed in self._conn.execute("SELECT sweep, claim, config_hash, seed FROM "
                                                             "sweep_members"):
            row = by_key.get((claim, digest, int(seed)))
            if row is not None and (sweep, claim, digest, int(seed)) not in seen:
                seen.add((sweep, claim, digest, int(seed)))
                rows.append(_replace(row, kind="sweep", sweep=sweep))
        return sorted(rows, key=lambda r: r.finished_at)

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
