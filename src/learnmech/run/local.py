"""The local backend: a process pool that survives crashing workers, and workers that die with the driver.

Pool workers die with the driver: each sets the Linux parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
and also runs a watchdog thread that exits when its parent process is gone (other platforms, or a parent that died
before the signal was armed), so a ``kill -9`` of the driver alone leaves no orphaned worker behind. An interrupt
(Ctrl-C, or SIGTERM which the CLI turns into one) stops the workers at once instead of waiting for their jobs.

A worker that dies (segfault, ``os._exit``, OOM kill) breaks the whole pool; its jobs are retried (see
:func:`run_local`) and stored as ``"failed"`` after :data:`MAX_POOL_ATTEMPTS` crashes.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from typing import Any

from ..claims import progress
from ..subruns import CACHE_ENV, set_cache_path
from .jobs import Job, execute, failed_row
from .progress import Progress
from .store import Row

#: How often a job may take its pool worker down with it before it is stored as "failed" (Ray: max_retries=3).
MAX_POOL_ATTEMPTS = 3


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


def run_local(jobs: Sequence[Job], workers: int, on_row: Callable[[Row], None], prog: Progress,
              cache_path: str | None, *, max_attempts: int = MAX_POOL_ATTEMPTS) -> None:
    """Run ``jobs`` on ``workers`` processes (1: in this process), handing each finished row to ``on_row``.

    max_attempts: how often a job may take its pool worker down before it is stored as ``"failed"``.
    """
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
        _run_pool(jobs, workers, on_row, prog, cache_path, ctx, manager.Queue(), max_attempts)
    finally:
        manager.shutdown()


def _run_pool(jobs: Sequence[Job], workers: int, on_row: Callable[[Row], None], prog: Progress,
              cache_path: str | None, ctx: Any, queue: Any, max_attempts: int) -> None:
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
    # times (max_attempts) is stored as "failed" (like Ray's task retries) and the sweep goes on.
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
                        if attempts.get(key, 0) < max_attempts and rounds < max_attempts * len(jobs):
                            retry.append(job)
                            continue
                        row = failed_row(job, traceback.format_exc(), "local")
                    except Exception:
                        row = failed_row(job, traceback.format_exc(), "local")
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

