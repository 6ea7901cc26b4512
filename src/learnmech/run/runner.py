"""Run claims and sweeps: a local process pool (default) or Ray; the driver alone writes the SQLite store.

A *job* is one (claim, config, seed). Jobs already stored are skipped (resume) unless ``force``. Each finished job
is committed at once, so killing the driver loses only the jobs in flight. A job that raises
:class:`~learnmech.claims.Diverged` is stored with status ``"diverged"`` and the step; any other exception is stored
as ``"failed"`` with its traceback, and the rest go on.

Pool workers die with the driver: each sets the Linux parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
and also runs a watchdog thread that exits when its parent process is gone (other platforms, or a parent that died
before the signal was armed), so a ``kill -9`` of the driver alone leaves no orphaned worker behind. An interrupt
(Ctrl-C, or SIGTERM which the CLI turns into one) stops the workers at once instead of waiting for their jobs.

This module composes the parts: :mod:`.jobs` (what a job is, claims and sweeps as jobs), :mod:`.progress` (the
terminal progress), :mod:`.local` (the process pool) and :mod:`.ray_backend` (Ray).
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .jobs import (
    CHOICES_ATTRIBUTE,
    Job,
    Summary,
    check_config,
    claims_jobs,
    execute,
    expand_grid,
    failed_row,
    sweep_jobs,
)
from .local import MAX_POOL_ATTEMPTS, WATCHDOG_PERIOD, die_with_parent, run_local
from .progress import Progress
from .ray_backend import FORWARDED_ENV, BackendError, check_ray_address, ray_runtime_env, run_ray
from .store import Row, Store

__all__ = ["BACKENDS", "MAX_POOL_ATTEMPTS", "WATCHDOG_PERIOD", "CHOICES_ATTRIBUTE", "FORWARDED_ENV", "BackendError",
           "Job", "Summary", "Progress", "execute", "failed_row", "check_config", "claims_jobs", "expand_grid",
           "sweep_jobs", "die_with_parent", "ray_runtime_env", "check_ray_address", "run_jobs", "reproduce", "sweep",
           "environment"]

BACKENDS = ("local", "ray")
# run_jobs reads MAX_POOL_ATTEMPTS from this module when it runs, so setting ``runner.MAX_POOL_ATTEMPTS`` still works.


def run_jobs(
    jobs: Iterable[Job],
    db: str | os.PathLike[str],
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    force: bool = False,
    quiet: bool = False,
    stream: Any = None,
) -> Summary:
    """Run ``jobs`` and store one row each in the SQLite file ``db``; skips stored rows unless ``force``.

    backend: ``"local"`` (process pool with ``workers`` processes, default min(cores, jobs); 1 = in-process) or
    ``"ray"`` (``address=None`` starts a local Ray instance; ``"auto"`` or ``"ray://..."`` joins a cluster).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    jobs = list(jobs)
    with Store(db) as store:
        done = set() if force else store.done_keys()
        todo = [job for job in jobs if job.key not in done]
        summary = Summary(total=len(jobs), skipped=len(jobs) - len(todo))
        members: dict[str, list[tuple[str, str, int]]] = {}
        for job in jobs:
            if job.sweep is not None:
                members.setdefault(job.sweep, []).append(job.key)
        for sweep_id, keys in members.items():  # a grid point's stored seeds belong to the sweep too (not re-run)
            store.add_sweep_members(sweep_id, keys)
        prog = Progress(len(todo), stream=stream, quiet=quiet, labels={j.key: j.label for j in todo if j.label})
        if summary.skipped and not quiet:
            print(f"resume: {summary.skipped} of {len(jobs)} runs already stored in {db}; running {len(todo)}",
                  file=prog.stream, flush=True)

        def on_row(row: Row) -> None:
            store.put(row, replace=force)  # committed before anything else happens
            summary.rows.append(row)
            prog.job_done(row)

        try:
            if todo:
                if backend == "ray":
                    run_ray(todo, address, on_row)
                else:
                    n = workers or min(os.cpu_count() or 1, len(todo))
                    run_local(todo, n, on_row, prog, os.fspath(Path(db).resolve()), max_attempts=MAX_POOL_ATTEMPTS)
        finally:
            prog.close()
    return summary



def reproduce(names: Sequence[str] | None = None, *, quick: bool = True, seed: int = 0, seeds: int | None = None,
              db: str | os.PathLike[str] = "learnmech-out/results.db", **kwargs: Any) -> Summary:
    """Run the claims (all by default) on ``seeds`` seeds from ``seed`` and store the results; see :func:`run_jobs`."""
    return run_jobs(claims_jobs(names, quick=quick, seed=seed, seeds=seeds), db, **kwargs)



def sweep(claim_name: str, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1, *,
          quick: bool = True, seed: int = 0, db: str | os.PathLike[str] = "learnmech-out/results.db",
          **kwargs: Any) -> Summary:
    """Run a claim over a config grid and seeds, one stored row per (config, seed); see :func:`run_jobs`.

    A grid point's seeds already stored (by ``reproduce`` or another sweep) are not re-run but still count as the
    sweep's (:meth:`~learnmech.run.Store.sweep_rows`).
    """
    return run_jobs(sweep_jobs(claim_name, grid, seeds, quick=quick, seed=seed), db, **kwargs)


def environment() -> dict[str, str]:
    """Run metadata for the report."""
    import numpy as np
    import torch

    return {"learnmech": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "platform": platform.platform(), "host": socket.gethostname(),
            "cpus": str(os.cpu_count())}
