"""Throwaway virtual environments for peer libraries (neural-tangents, PyHessian, WeightWatcher).

Peers live under ``benchmarks/.peers/<name>`` (git-ignored) and are never imported into learnmech's own venv:
benchmarks run peer code in a subprocess with the peer venv's python and exchange data through files.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

PEERS = Path(__file__).resolve().parent / ".peers"

#: neural-tangents 0.6.5's venv, shared by every benchmark that uses it. jax 0.4.23 predates numpy 2 (it imports a
#: removed function) and scipy 1.13 (``nt.predict`` needs ``scipy.linalg.tril``), hence the two caps.
NT_REQUIREMENTS = ["neural-tangents==0.6.5", "jax==0.4.23", "jaxlib==0.4.23", "numpy<2", "scipy<1.13"]


def peer_python(name: str, requirements: list[str]) -> Path:
    """Path to the python of peer venv ``name`` with ``requirements`` installed (created once; a file lock
    makes concurrent callers wait instead of installing twice)."""
    venv = PEERS / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    PEERS.mkdir(parents=True, exist_ok=True)
    with open(PEERS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = "\n".join(requirements)
        if not (stamp.exists() and stamp.read_text() == wanted):
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements], check=True)
            stamp.write_text(wanted)
    return python


def run_peer(name: str, requirements: list[str], script: str | Path, *args: str, timeout: float = 3600) -> str:
    """Run ``script`` with the peer venv's python; returns its stdout (raises with stderr on failure)."""
    python = peer_python(name, requirements)
    proc = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"peer script {script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


#: Source prepended to a neural-tangents worker script (run in the peer venv, where this package is not importable):
#: one timing routine for ``kernel_fn(x, None, ("nngp", "ntk"))`` and one way to hand its kernels back as files.
NT_KERNEL_TIMING = r'''
import json, sys, time, statistics
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np


def timed_kernels(fn, x, repeats, out_prefix):
    """Median seconds of ``repeats`` calls fn(x, None, ("nngp", "ntk")) (already warmed up); the last call's
    kernels are saved as ``{out_prefix}_nngp.npy`` and ``{out_prefix}_ntk.npy``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(x, None, ("nngp", "ntk"))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    np.save(f"{out_prefix}_nngp.npy", np.asarray(out.nngp))
    np.save(f"{out_prefix}_ntk.npy", np.asarray(out.ntk))
    return statistics.median(times)
'''
