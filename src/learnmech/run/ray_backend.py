"""The Ray backend: jobs as Ray tasks on a local instance or a cluster; the driver alone writes the store."""

from __future__ import annotations

import os
import socket
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..subruns import CACHE_ENV
from .jobs import Job, execute, failed_row
from .store import Row


class BackendError(ValueError):
    """The chosen backend cannot run: Ray missing, or no cluster at ``address`` (a usage error, exit code 2)."""


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


def run_ray(jobs: Sequence[Job], address: str | None, on_row: Callable[[Row], None]) -> None:
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
                    row = failed_row(job, traceback.format_exc(), "ray")
                on_row(row)
    finally:
        if started_here:
            ray.shutdown()

