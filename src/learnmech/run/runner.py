"""Run claims and sweeps: a local process pool (default) or Ray; the driver alone writes the SQLite store.

A *job* is one (claim, config, seed). Jobs already stored are skipped (resume) unless ``force``. Each finished job
is committed at once, so killing the driver loses only the jobs in flight. A job that raises
:class:`~learnmech.claims.Diverged` is stored with status ``"diverged"`` and the step; any other exception is stored
as ``"failed"`` with its traceback, and the rest go on.

Pool workers die with the driver: each sets the Linux parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
and also runs a watchdog thread that exits when its parent process is gone (other platforms, or a parent that died
before the signal was armed), so a ``kill -9`` of the driver alone leaves no orphaned worker behind. An interrupt
(Ctrl-C, or SIGTERM which the CLI turns into one) stops the workers at once instead of waiting for their jobs.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
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
from multiprocessing.managers import SyncManager
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


# ---------------------------------------------------------------------------------------------------------------
# Progress: done/total, failures and ETA. On a terminal it is one live bar redrawn in place (\r); finished runs
# scroll above it. Anywhere else (CI logs, pipes, files) it is plain lines, one per finished run.


class Progress:
    """Prints progress to ``stream`` (stderr).

    live: redraw one status line in place with ``\r`` (default: when ``stream`` is a terminal). Otherwise one line
    per finished job and rate-limited per-step lines, so logs stay readable.
    """

    def __init__(self, total: int, stream: Any = None, quiet: bool = False, live: bool | None = None,
                 labels: Mapping[tuple[str, str, int], str] | None = None) -> None:
        self.total, self.done, self.failed, self.quiet = total, 0, 0, quiet
        self.labels = dict(labels or {})  # job key -> grid point, shown in each finished run's line
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
            label = self.labels.get((row.claim, row.config_hash, int(row.seed)), "")
            text = f"{row.claim}{' ' + label if label else ''} seed={row.seed}: {outcome} ({row.duration_s:.1f}s)"
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
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: seconds between the watchdog's checks that the driver is still alive
WATCHDOG_PERIOD = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD)
        if os.getppid() != parent:  # re-parented: the driver is gone
            os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` (the driver) dies, however it dies (kill -9 included).

    On Linux the kernel sends SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon
    thread polls :func:`os.getppid` every :data:`WATCHDOG_PERIOD` s as a fallback. Called in each pool worker and in
    the progress-queue manager process.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the watchdog below still works
            pass
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="learnmech-parent-watchdog", daemon=True).start()


def _worker_init(queue: Any, threads: int, cache_path: str | None, parent: int | None = None) -> None:
    import torch

    global _worker_queue
    if parent is not None:
        die_with_parent(parent)
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
    progress.set_sink(progress._sink, _progress_name(job))  # name the claim in this worker's progress events
    return execute(job, "local")


def _progress_name(job: Job) -> str:
    """How a job's per-step progress lines name it: the claim, and for a sweep the grid point and seed."""
    return f"{job.claim} {job.label} seed={job.seed}" if job.label else job.claim


def _run_local(jobs: Sequence[Job], workers: int, on_row: Callable[[Row], None], prog: Progress,
               cache_path: str | None) -> None:
    if workers <= 1:
        # In-process: simplest, and what tests and debuggers want.
        previous = os.environ.get(CACHE_ENV)
        set_cache_path(cache_path)
        try:
            for job in jobs:
                progress.set_sink(prog.step, _progress_name(job))
                try:
                    on_row(execute(job, "local"))
                finally:
                    progress.set_sink(None)
        finally:
            set_cache_path(previous)  # leave the caller's process as it was
        return
    ctx = mp.get_context("spawn")  # fork after torch initialised its thread pools is unsafe
    # The manager process ends with the pool, not with the interpreter; like the workers, it dies with the driver.
    manager = SyncManager(ctx=ctx)
    manager.start(die_with_parent, (os.getpid(),))
    try:
        _run_pool(jobs, workers, on_row, prog, cache_path, ctx, manager.Queue())
    finally:
        manager.shutdown()


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
        pool = ProcessPoolExecutor(size, mp_context=ctx, initializer=_worker_init,
                                   initargs=(queue, threads, cache_path, os.getpid()))
        try:
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
        except BaseException:  # Ctrl-C / SIGTERM / a store error: stop now, do not wait for the jobs in flight
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
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


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers and drop its queued jobs (``shutdown`` alone would wait for the running ones)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


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


#: Module-level name a claim's module may define to declare the values of its string-valued config keys,
#: e.g. ``CONFIG_CHOICES = {"model": ("mlp", "random-features")}``; sweeps refuse other values before running.
CHOICES_ATTRIBUTE = "CONFIG_CHOICES"


def _choices(claim: Claim, key: str) -> tuple[str, ...] | None:
    """The values a string-valued config key may take, or None when the claim does not say.

    ``activation`` takes the activations the kernels know (:data:`learnmech.kernels.ACTIVATIONS`); any key may be
    declared by the claim's module in :data:`CHOICES_ATTRIBUTE`.
    """
    declared = getattr(sys.modules.get(claim.run.__module__), CHOICES_ATTRIBUTE, None) or {}
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


def check_config(claim: Claim, config: Mapping[str, Any], *, name: str = "config") -> None:
    """Refuse a config before it runs: ValueError naming ``name`` and the key when a value does not fit the
    claim's quick/full defaults (see :func:`_check_value` for the rules) or a key is unknown."""
    for key, value in config.items():
        if key not in claim.quick:
            raise ValueError(f"{name}: claim {claim.name} has no config key {key!r}; keys: {', '.join(claim.quick)}")
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
