"""Jobs: what one run is (claim, config, seed), how it executes in a process, and how claims and sweeps become jobs.

A job that raises :class:`~learnmech.claims.Diverged` gives a row with status ``"diverged"`` and the step; any other
exception a row with status ``"failed"`` and its traceback. Sweep grids and configs are checked against the claim's
defaults before any job exists (:func:`check_config`).
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..claims import Claim, Diverged, get, registry
from .store import Row, config_hash


@dataclass(frozen=True)
class Job:
    """One unit of work: run ``claim`` with ``config`` and ``seed``."""

    claim: str
    config: Mapping[str, Any]
    seed: int
    kind: str = "quick"
    sweep: str | None = None
    #: what progress lines show besides the claim and seed (a sweep's grid point, e.g. ``width=64 lr=0.1``)
    label: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.claim, config_hash(self.claim, self.config), int(self.seed))


@dataclass
class Summary:
    """What a run did: rows written this time, rows skipped because they were stored, and the status counts."""

    total: int
    skipped: int
    rows: list[Row] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            key = row.verdict if row.status == "ok" else row.status
            out[key or row.status] = out.get(key or row.status, 0) + 1
        return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def execute(job: Job, backend: str = "local") -> Row:
    """Run one job in this process and return its row (never raises for the claim's own failures)."""
    import numpy as np
    import torch

    started, t0 = _now(), time.perf_counter()
    status, result, step, tb = "ok", None, None, None
    # Determinism: claims seed their own generators; seeding the globals too makes stray uses reproducible.
    torch.manual_seed(job.seed)
    np.random.seed(job.seed % 2**32)
    try:
        claim = get(job.claim)
        result = claim.run(dict(job.config), int(job.seed)).to_dict()
        status = result.get("status", "ok")
    except Diverged as exc:
        status, step, tb = "diverged", exc.step, str(exc)
    except Exception:
        status, tb = "failed", traceback.format_exc()
    return Row(
        claim=job.claim, config_hash=job.key[1], seed=int(job.seed), kind=job.kind, sweep=job.sweep,
        config=dict(job.config), status=status, verdict=(result or {}).get("verdict") if status == "ok" else None,
        error=(result or {}).get("error"), tolerance=(result or {}).get("tolerance"),
        prediction=(result or {}).get("prediction"), measurement=(result or {}).get("measurement"), result=result,
        diverged_step=step, traceback=tb, started_at=started, finished_at=_now(),
        duration_s=time.perf_counter() - t0, version=__version__, backend=backend, host=socket.gethostname(),
    )



def failed_row(job: Job, tb: str, backend: str) -> Row:
    """The row of a job that never returned one (its worker process died, or Ray gave up): status ``"failed"``."""
    now = _now()
    return Row(
        claim=job.claim, config_hash=job.key[1], seed=int(job.seed), kind=job.kind, sweep=job.sweep,
        config=dict(job.config), status="failed", verdict=None, error=None, tolerance=None, prediction=None,
        measurement=None, result=None, diverged_step=None, traceback=tb, started_at=now, finished_at=now,
        duration_s=0.0, version=__version__, backend=backend, host=socket.gethostname(),
    )


def _seed_list(seed: int, seeds: int | None) -> list[int]:
    """``seeds`` consecutive seeds starting at ``seed`` (just ``seed`` when ``seeds`` is None)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if seeds is None:
        return [seed]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    return list(range(seed, seed + seeds))


def claims_jobs(names: Sequence[str] | None = None, *, quick: bool = True, seed: int = 0,
                seeds: int | None = None) -> list[Job]:
    """One job per claim (all claims if ``names`` is None) and seed, with its quick or full config.

    seed: the first seed; seeds: how many consecutive seeds per claim (``seed .. seed + seeds - 1``; default one).
    """
    claims = registry()
    selected = list(claims) if names is None else list(names)
    for name in selected:
        if name not in claims:
            raise ValueError(f"unknown claim {name!r}; known claims: {', '.join(claims)}")
    kind = "quick" if quick else "full"
    return [Job(name, claims[name].config(quick), s, kind) for name in selected for s in _seed_list(seed, seeds)]



#: Module-level name a claim's module may define to declare the values of its string-valued config keys,
#: e.g. ``CONFIG_CHOICES = {"model": ("mlp", "random-features")}``; sweeps refuse other values before running.
CHOICES_ATTRIBUTE = "CONFIG_CHOICES"


#: Module-level name a claim's module may define to keep the config keys it renamed, old -> new, e.g.
#: ``CONFIG_RENAMED = {"input_dim": "in_dim"}`` (the glossary in docs/architecture.md); a config or sweep grid that
#: uses an old key is refused with an error naming the new one.
RENAMED_ATTRIBUTE = "CONFIG_RENAMED"


def _claim_module_attribute(claim: Claim, attribute: str) -> Mapping[str, Any]:
    """The mapping ``attribute`` of the module defining ``claim.run``, or ``{}`` when it has none."""
    return getattr(sys.modules.get(claim.run.__module__), attribute, None) or {}


def renamed_keys(claim: Claim) -> Mapping[str, str]:
    """The claim's renamed config keys, old name -> new name (its module's :data:`RENAMED_ATTRIBUTE`; ``{}``)."""
    return _claim_module_attribute(claim, RENAMED_ATTRIBUTE)


def _choices(claim: Claim, key: str) -> tuple[str, ...] | None:
    """The values a string-valued config key may take, or None when the claim does not say.

    ``activation`` takes the activations the kernels know (:data:`learnmech.kernels.ACTIVATIONS`); any key may be
    declared by the claim's module in :data:`CHOICES_ATTRIBUTE`.
    """
    declared = _claim_module_attribute(claim, CHOICES_ATTRIBUTE)
    if key in declared:
        return tuple(declared[key])
    if key == "activation":
        from ..kernels.analytic import ACTIVATIONS

        return tuple(ACTIVATIONS)
    return None


def _check_value(claim: Claim, key: str, value: Any, defaults: Sequence[Any], where: str) -> None:
    """ValueError naming ``where`` unless ``value`` has the kind of the claim's ``defaults`` for this key.

    Rules, from the defaults alone (the claims declare no schema): the same type (an int for an int, a number for a
    float, true/false for a bool, a list for a list, element by element); finite numbers; no negative number where
    every default is >= 0 (counts, widths, scales, rates); a string from :func:`_choices` when the claim declares
    them.
    """
    first = defaults[0]
    if isinstance(first, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return
    if isinstance(first, (int, float)):
        integral = all(isinstance(d, int) and not isinstance(d, bool) for d in defaults)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and not isinstance(value, int)):
            kind = "an integer" if integral else "a number"
            raise ValueError(f"{where}: expected {kind} like the default {first!r}, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        if value < 0 and all(d >= 0 for d in defaults):
            raise ValueError(f"{where}: expected a number >= 0 like the claim's default {first!r}, got {value!r}")
        return
    if isinstance(first, str):
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string like the default {first!r}, got {value!r}")
        allowed = _choices(claim, key)
        if allowed is not None and value not in allowed:
            raise ValueError(f"{where}: expected one of {', '.join(allowed)}, got {value!r}")
        return
    if isinstance(first, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list like the default {json.dumps(first)}, got {value!r}")
        if len(first) and not len(value):
            raise ValueError(f"{where}: expected a non-empty list like the default {json.dumps(first)}")
        elements = [d for default in defaults for d in default]
        if elements:
            for i, item in enumerate(value):
                _check_value(claim, key, item, elements, f"{where}[{i}]")


def check_key(claim: Claim, key: str, *, name: str = "config") -> None:
    """Refuse a config key the claim does not have: ValueError naming ``name`` and the key, listing the claim's
    keys (an old name of a renamed key, :data:`RENAMED_ATTRIBUTE`, gets the new name instead)."""
    if key in claim.quick:
        return
    renamed = renamed_keys(claim)
    if key in renamed:
        raise ValueError(f"{name}: claim {claim.name}'s config key {key!r} is now called {renamed[key]!r} "
                         "(the glossary in docs/architecture.md); use that name")
    raise ValueError(f"{name}: claim {claim.name} has no config key {key!r}; keys: {', '.join(claim.quick)}")


def check_config(claim: Claim, config: Mapping[str, Any], *, name: str = "config") -> None:
    """Refuse a config before it runs: ValueError naming ``name`` and the key when a key is unknown
    (:func:`check_key`) or a value does not fit the claim's quick/full defaults (see :func:`_check_value`)."""
    for key, value in config.items():
        check_key(claim, key, name=name)
        _check_value(claim, key, value, [claim.quick[key], claim.full[key]], f"{name} {key}")


def expand_grid(claim: Claim, grid: Mapping[str, Sequence[Any]], *, quick: bool = True) -> list[dict[str, Any]]:
    """Every config of the Cartesian product of ``grid`` (key -> values) applied to the claim's base config.

    Each value is checked against the claim's defaults first (:func:`check_config`): ValueError naming the key.
    """
    if not grid:
        raise ValueError("grid must name at least one config key with values")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid {key}: expected a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid key {key!r} has no values")
        for value in values:
            check_config(claim, {key: value}, name="grid")
    keys = list(grid)
    return [claim.config(quick, **dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(grid[k] for k in keys))]


def _label(config: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A grid point as ``key=value`` pairs (lists as compact JSON) for progress lines."""
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return " ".join(f"{k}={text(config[k])}" for k in keys)


def sweep_jobs(claim_name: str, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1, *,
               quick: bool = True, seed: int = 0) -> list[Job]:
    """Jobs for a sweep of ``claim_name`` over ``grid`` x ``seeds``.

    seeds: an int n means n consecutive seeds from ``seed`` (default 0..n-1), or an explicit list of seeds >= 0.
    Every grid value and seed is checked before any job exists (ValueError naming it).
    """
    claim = get(claim_name)
    if isinstance(seeds, int):
        if isinstance(seeds, bool) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1 or a list of seeds, got {seeds!r}")
        seeds = _seed_list(seed, seeds)
    else:
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds: expected at least one seed")
        for s in seeds:
            _seed_list(s, None)
    configs = expand_grid(claim, grid, quick=quick)
    sweep_id = config_hash(claim_name, {"grid": {k: list(v) for k, v in grid.items()}, "quick": quick})
    return [Job(claim_name, cfg, int(s), "sweep", sweep_id, _label(cfg, list(grid))) for cfg in configs for s in seeds]

