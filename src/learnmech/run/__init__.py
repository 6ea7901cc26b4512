"""Experiment runner: claims and sweeps on a local process pool or Ray, every result in SQLite, resumable."""

from .runner import (
    BackendError,
    Job,
    Summary,
    check_config,
    claims_jobs,
    expand_grid,
    reproduce,
    run_jobs,
    sweep,
    sweep_jobs,
)
from .store import Row, Store, StoreError, config_hash

__all__ = ["BackendError", "Job", "Summary", "Row", "Store", "StoreError", "config_hash", "reproduce", "sweep",
           "run_jobs", "claims_jobs", "sweep_jobs", "expand_grid", "check_config"]
