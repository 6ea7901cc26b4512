"""Run claims and sweeps: a local process pool (default) or Ray; the driver alone writes the SQLite store.

A *job* is one (claim, config, seed). Jobs already stored are skipped (resume) unless ``force``. Each finished job
is committed at once, so killing the driver loses only the jobs in flight. A job that raises
:class:`~learnmech.claims.Diverged` is stored with status ``"diverged"`` and the step; any other exception is stored
as ``"failed"`` with its traceback, and the rest go on.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..claims import Claim, Diverged, get, progress, registry
from ..subruns import CACHE_ENV, set_cache_path
from .store import Row, Store, config_hash

BACKENDS = ("local", "ray")
#: How often a job may take its pool worker down with it before it is stored as "failed" (Ray: max_retries=3).
MAX_POOL_ATTEMPTS = 3


class BackendError(ValueError):
    """The chosen backend cannot run: Ray missing, or no cluster at ``address`` (a usage error, exit code 2)."""


@dataclass(frozen=True)
class Job:
    """One unit of work: run ``claim`` with ``config`` and ``seed``."""

    claim: str
    config: Mapping[str, Any]
    seed: int
    kind: str = "quick"
    sweep: str | None = None

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


# ---------------------------------------------------------------------------------------------------------------
# Progress: done/total, failures and ETA. On a terminal it is one live bar redrawn in place (\r); finished runs
# scroll above it. Anywhere else (CI logs, pipes, files) it is plain lines, one per finished run.


class Progress:
    """Prints progress to ``stream`` (stderr).

    live: redraw one status line in place with ``\r`` (default: when ``stream`` is a terminal). Otherwise one line
    per finished job and rate-limited per-step lines, so logs stay readable.
    """

    def __init__(self, total: int, stream: Any = None, quiet: bool = False, live: bool | None = None) -> None:
        self.total, self.done, self.failed, self.quiet = total, 0, 0, quiet
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live
        self.t0 = time.perf_counter()
        self._last_step = 0.0
        self._status = ""  # the latest step message, shown after the bar in live mode
        self._lock = threading.Lock()

    def _eta(self) -> str:
        if self.done == 0:
            return "?"
        remaining = (time.perf_counter() - self.t0) / self.done * (self.total - self.done)
        return f"{remaining:.0f}s"

    def bar(self) -> str:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        return f"[{bar}] {self.done}/{self.total} failed={self.failed} eta={self._eta()}"

    def _redraw(self) -> None:
        """Live mode: overwrite the current terminal line with the bar and the latest step message."""
        line = f"{self.bar()}  {self._status}"
        columns = shutil.get_terminal_size((120, 24)).columns
        self.stream.write("\r\033[K" + line[: max(columns - 1, 20)])
        self.stream.flush()

    def _line(self, text: str) -> None:
        """A permanent line; in live mode it is printed above the bar, which is then redrawn."""
        if self.live:
            self.stream.write("\r\033[K" + text + "\n")
            self._redraw()
        else:
            print(text, file=self.stream, flush=True)

    def job_done(self, row: Row) -> None:
        with self._lock:
            self.done += 1
            self.failed += row.status == "failed"
            if self.quiet:
                return
            outcome = row.verdict if row.status == "ok" else row.status.upper()
            text = f"{row.claim} seed={row.seed}: {outcome} ({row.duration_s:.1f}s)"
            if not self.live:
                text = f"{self.bar()}  {text}"
            if row.status == "failed" and row.traceback:
                text += "\n    " + row.traceback.strip().splitlines()[-1]
            self._status = ""
            self._line(text)

    def step(self, claim: str, done: int, total: int, message: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.live:  # cheap: a redraw of one line, still rate-limited for slow terminals
                self._status = f"{claim}: step {done}/{total} {message}".rstrip()
                now = time.perf_counter()
                if now - self._last_step >= 0.1 or done >= total:
                    self._last_step = now
                    self._redraw()
                return
            now = time.perf_counter()
            if now - self._last_step < 0.5 and done < total:
                return
            self._last_step = now
            print(f"    {claim}: step {done}/{total} {message}", file=self.stream, flush=True)

    def close(self) -> None:
        """End the live line so what follows starts on a fresh line."""
        if self.live and not self.quiet and self.total:
            with self._lock:
                self._status = ""
                self._redraw()
                self.stream.write("\n")
                self.stream.flush()


def _queue_sink(queue: Any) -> Callable[[str, int, int, str], None]:
    def sink(claim: str, done: int, total: int, message: str) -> None:
        queue.put((claim, done, total, message))

    return sink


_STARTED = "\x00started"  # queue message: a worker began a job (so it is a suspect if the pool breaks)
_worker_queue: Any = None


def _worker_init(queue: Any, threads: int, cache_path: str | None) -> None:
    import torch

    global _worker_queue
    _worker_queue = queue
    torch.set_num_threads(threads)
    set_cache_path(cache_path)
    progress.set_sink(_queue_sink(queue))


def _job_id(job: Job) -> str:
    """The job's key as text: what the "started" messages and the crash bookkeeping identify it by."""
    return json.dumps(list(job.key))


def _execute_with_progress(job: Job) -> Row:
    if _worker_queue is not None:
        _worker_queue.put((_STARTED, 0, 0, _job_id(job)))
    progress.set_sink(progress._sink, job.claim)  # name the claim in this worker's progress events
    return execute(job, "local")


def _run_local(jobs: Sequence[Job], workers: int, on_row: Callable[[Row], None], prog: Progress,
               cache_path: str | None) -> None:
    if workers <= 1:
        # In-process: simplest, and what tests and debuggers want.
        previous = os.environ.get(CACHE_ENV)
        set_cache_path(cache_path)
        try:
            for job in jobs:
                progress.set_sink(prog.step, job.claim)
                try:
                    on_row(execute(job, "local"))
                finally:
                    progress.set_sink(None)
        finally:
            set_cache_path(previous)  # leave the caller's process as it was
        return
    ctx = mp.get_context("spawn")  # fork after torch initialised its thread pools is unsafe
    with ctx.Manager() as manager:  # the manager process ends with the pool, not with the interpreter
        _run_pool(jobs, workers, on_row, prog, cache_path, ctx, manager.Queue())


def _run_pool(jobs: Sequence[Job], workers: int, on_row: Callable[[Row], None], prog: Progress,
              cache_path: str | None, ctx: Any, queue: Any) -> None:
    stop = threading.Event()
    started: set[str] = set()

    def pump() -> None:
        while not stop.is_set():
            try:
                message = queue.get(timeout=0.2)
            except Exception:
                continue
            if message[0] == _STARTED:
                started.add(message[3])
            else:
                prog.step(*message)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    threads = max(1, (os.cpu_count() or 1) // workers)
    # A worker that dies (segfault, os._exit, OOM kill) breaks the whole pool and fails every future in it. Jobs
    # that had not started are simply re-run; jobs that had started are suspects, re-run alone in a one-worker pool
    # so the culprit is found and innocent neighbours finish. A job that takes its worker down MAX_POOL_ATTEMPTS
    # times is stored as "failed" (like Ray's task retries) and the sweep goes on.
    attempts: dict[str, int] = {}
    remaining, rounds = list(jobs), 0

    def one_pool(batch: list[Job], size: int) -> list[Job]:
        retry: list[Job] = []
        with ProcessPoolExecutor(size, mp_context=ctx, initializer=_worker_init,
                                 initargs=(queue, threads, cache_path)) as pool:
            pending = {pool.submit(_execute_with_progress, job): job for job in batch}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    try:
                        row = future.result()
                    except BrokenProcessPool:
                        time.sleep(0.3)  # let the pump deliver the "started" messages sent before the crash
                        key = _job_id(job)
                        if key in started or len(batch) == 1:
                            attempts[key] = attempts.get(key, 0) + 1
                        if attempts.get(key, 0) < MAX_POOL_ATTEMPTS and rounds < MAX_POOL_ATTEMPTS * len(jobs):
                            retry.append(job)
                            continue
                        row = _failed_row(job, traceback.format_exc(), "local")
                    except Exception:
                        row = _failed_row(job, traceback.format_exc(), "local")
                    on_row(row)
        return retry

    try:
        while remaining:
            rounds += 1
            suspects = [j for j in remaining if attempts.get(_job_id(j), 0) > 0]
            others = [j for j in remaining if attempts.get(_job_id(j), 0) == 0]
            remaining = one_pool(others, min(workers, len(others))) if others else []
            for job in suspects:
                remaining += one_pool([job], 1)
    finally:
        stop.set()
        pumper.join(timeout=1)


def _failed_row(job: Job, tb: str, backend: str) -> Row:
    now = _now()
    return Row(job.claim, job.key[1], int(job.seed), job.kind, job.sweep, dict(job.config), "failed", None, None,
               None, None, None, None, None, tb, now, now, 0.0, __version__, backend, socket.gethostname())


#: Environment variables that decide which claims exist and where their code is; forwarded to Ray workers so a
#: cluster started elsewhere (``ray start --head``, then ``--address auto``) sees the same plugin claims.
FORWARDED_ENV = ("LEARNMECH_CLAIM_MODULES", "PYTHONPATH")


def ray_runtime_env() -> dict[str, Any]:
    """The Ray ``runtime_env`` for learnmech tasks: plugin-claim variables of the driver, and no sub-run cache.

    The sub-run cache is an SQLite file on the driver's disk, which a remote node cannot reach, so Ray workers
    compute every sub-run (an empty ``LEARNMECH_CACHE_DB`` disables it, see :mod:`learnmech.subruns`).
    """
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    env_vars[CACHE_ENV] = ""
    return {"env_vars": env_vars}


def _ray_bootstrap_address(address: str) -> str | None:
    """``host:port`` that ``address`` names: ``auto`` means $RAY_ADDRESS, else the cluster `ray start` recorded."""
    if address != "auto":
        return address.removeprefix("ray://")
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"].removeprefix("ray://")
    recorded = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    return recorded.read_text().strip() or None if recorded.is_file() else None


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast with :class:`BackendError` when no Ray cluster answers at ``address``.

    Without this check ``ray.init`` retries an unreachable address for minutes before giving up.
    """
    target = _ray_bootstrap_address(address)
    if not target:
        raise BackendError(f"--address {address}: no running Ray cluster found (start one with `ray start --head`,"
                           " or set RAY_ADDRESS)")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"--address {address}: expected host:port (or auto), got {target!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BackendError(f"--address {address}: no Ray cluster answers at {target} ({exc})") from None


def _run_ray(jobs: Sequence[Job], address: str | None, on_row: Callable[[Row], None]) -> None:
    try:
        import ray
    except ImportError:
        raise BackendError('--backend ray needs Ray: pip install -e ".[ray]"') from None
    runtime_env = ray_runtime_env()
    started_here = not ray.is_initialized()
    if started_here and address is not None:
        check_ray_address(address)
    if started_here:
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False, "include_dashboard": False,
                                  "runtime_env": runtime_env}
        if address is None:  # a fresh local instance sized to this machine
            kwargs["num_cpus"] = os.cpu_count()
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:  # e.g. --address auto with no cluster running
            raise BackendError(f"--address {address}: cannot connect to a Ray cluster ({exc})") from None
        remote = ray.remote(max_retries=3)(execute)
    else:
        # Someone (a notebook, a test) already connected; keep their job but still forward our variables per task.
        remote = ray.remote(max_retries=3, runtime_env=runtime_env)(execute)
    # Retries cover a worker process that dies (OOM, node loss); the claim's own exceptions are caught in execute.
    try:
        pending = {remote.remote(job, "ray"): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception:
                    row = _failed_row(job, traceback.format_exc(), "ray")
                on_row(row)
    finally:
        if started_here:
            ray.shutdown()


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
        prog = Progress(len(todo), stream=stream, quiet=quiet)
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
                    _run_ray(todo, address, on_row)
                else:
                    n = workers or min(os.cpu_count() or 1, len(todo))
                    _run_local(todo, n, on_row, prog, os.fspath(Path(db).resolve()))
        finally:
            prog.close()
    return summary


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


def reproduce(names: Sequence[str] | None = None, *, quick: bool = True, seed: int = 0, seeds: int | None = None,
              db: str | os.PathLike[str] = "learnmech-out/results.db", **kwargs: Any) -> Summary:
    """Run the claims (all by default) on ``seeds`` seeds from ``seed`` and store the results; see :func:`run_jobs`."""
    return run_jobs(claims_jobs(names, quick=quick, seed=seed, seeds=seeds), db, **kwargs)


def expand_grid(claim: Claim, grid: Mapping[str, Sequence[Any]], *, quick: bool = True) -> list[dict[str, Any]]:
    """Every config of the Cartesian product of ``grid`` (key -> values) applied to the claim's base config."""
    if not grid:
        raise ValueError("grid must name at least one config key with values")
    for key, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"grid key {key!r} has no values")
    keys = list(grid)
    return [claim.config(quick, **dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(grid[k] for k in keys))]


def sweep_jobs(claim_name: str, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1, *,
               quick: bool = True) -> list[Job]:
    """Jobs for a sweep of ``claim_name`` over ``grid`` x ``seeds`` (an int n means seeds 0..n-1)."""
    claim = get(claim_name)
    if isinstance(seeds, int):
        if isinstance(seeds, bool) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1 or a list of seeds, got {seeds!r}")
        seeds = list(range(seeds))
    configs = expand_grid(claim, grid, quick=quick)
    sweep_id = config_hash(claim_name, {"grid": {k: list(v) for k, v in grid.items()}, "quick": quick})
    return [Job(claim_name, cfg, int(s), "sweep", sweep_id) for cfg in configs for s in seeds]


def sweep(claim_name: str, grid: Mapping[str, Sequence[Any]], seeds: int | Sequence[int] = 1, *,
          quick: bool = True, db: str | os.PathLike[str] = "learnmech-out/results.db", **kwargs: Any) -> Summary:
    """Run a claim over a config grid and seeds, one stored row per (config, seed); see :func:`run_jobs`."""
    return run_jobs(sweep_jobs(claim_name, grid, seeds, quick=quick), db, **kwargs)


def environment() -> dict[str, str]:
    """Run metadata for the report."""
    import numpy as np
    import torch

    return {"learnmech": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "platform": platform.platform(), "host": socket.gethostname(),
            "cpus": str(os.cpu_count())}
