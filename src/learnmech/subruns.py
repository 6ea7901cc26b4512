"""Sub-result cache: lets a long claim (a sweep of training runs inside one claim, e.g. ``mlp-scaling``) keep
each finished sub-run, so a killed ``reproduce`` resumes inside the claim instead of starting it over.

The runner points :func:`set_cache_path` at its SQLite file (table ``subruns``); with no path set (tests,
remote Ray workers) :func:`cached` simply computes. Each sub-result is committed in its own transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any

from .panels import jsonable

#: The variable holding the cache file's path (empty or unset: no caching).
CACHE_ENV = "LEARNMECH_CACHE_DB"


def set_cache_path(path: str | os.PathLike[str] | None) -> None:
    """Enable caching into the SQLite file ``path`` (inherited by worker processes); ``None`` disables it."""
    if path is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = os.fspath(path)


def key_hash(key: Any) -> str:
    """Stable hash of a JSON-serialisable key (dict order does not matter)."""
    blob = json.dumps(jsonable(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS subruns (namespace TEXT NOT NULL, key_hash TEXT NOT NULL, key TEXT NOT NULL,"
        " value TEXT NOT NULL, PRIMARY KEY (namespace, key_hash))"
    )
    return conn


def cached(namespace: str, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON-serialisable value for ``(namespace, key)``, read from the cache when present.

    namespace: e.g. the claim name; key: a dict identifying the sub-run (config + seed). The value goes through
    JSON, so numpy arrays come back as lists.
    """
    path = os.environ.get(CACHE_ENV)
    if not path:
        return compute()
    digest = key_hash(key)
    conn = _connect(path)
    try:
        row = conn.execute(
            "SELECT value FROM subruns WHERE namespace=? AND key_hash=?", (namespace, digest)
        ).fetchone()
        if row is not None:
            return json.loads(row[0])
        value = jsonable(compute())
        with conn:  # one transaction per sub-result
            conn.execute(
                "INSERT OR REPLACE INTO subruns VALUES (?,?,?,?)",
                (namespace, digest, json.dumps(jsonable(key), sort_keys=True), json.dumps(value)),
            )
        return value
    finally:
        conn.close()
