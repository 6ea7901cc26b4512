"""Ray backend against a real local cluster: `ray start --head` (2 CPUs, loopback), then `--address auto`.

The cluster is started WITHOUT the toy-claims plugin on its PYTHONPATH, so these tests also prove that the runner
forwards the plugin variables to Ray workers (runtime_env), as it must for a cluster someone else started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from learnmech.run import Store, sweep

ray = pytest.importorskip("ray", reason='the Ray backend needs the "ray" extra')
pytestmark = [pytest.mark.ray, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
# No token files in $HOME, no phoning home: a throwaway loopback cluster for one test module.
QUIET_RAY = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A `ray start --head --block` cluster with 2 CPUs; yields its address; torn down by process group."""
    ray_exe = VENV_BIN / "ray"
    if not ray_exe.exists():
        pytest.skip("the ray command is not installed next to this Python")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="lmray", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEARNMECH_CLAIM_MODULES", "RAY_ADDRESS")}
    env.update(QUIET_RAY, PYTHONUNBUFFERED="1")
    log = open(Path(temp_dir) / "ray-start.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [str(ray_exe), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
         "--include-dashboard", "false", "--temp-dir", temp_dir, "--disable-usage-stats",
         # free ports instead of Ray's fixed defaults, so this cluster can coexist with another one on the machine
         "--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port())],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "block forever" not in (Path(temp_dir) / "ray-start.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start did not come up:\n" + (Path(temp_dir) / "ray-start.log").read_text()[-3000:])
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of that session still alive (only what we started)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _rows(db: Path) -> list:
    with Store(db) as store:
        return store.rows()


def test_cli_sweep_joins_running_cluster_with_address_auto(ray_cluster, tmp_path):
    db = tmp_path / "ray.db"
    env = dict(os.environ, RAY_ADDRESS=ray_cluster, **QUIET_RAY)  # `auto` resolves RAY_ADDRESS
    cmd = [str(VENV_BIN / "learnmech"), "sweep", "toy-coin", "--grid", "samples=100,200", "--seeds", "2",
           "--backend", "ray", "--address", "auto", "--db", str(db), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4/4" in done.stderr and "ran 4" in done.stdout

    ray_rows = _rows(db)
    keys = [(r.claim, r.config_hash, r.seed) for r in ray_rows]
    assert len(keys) == 4 and len(set(keys)) == 4  # one row per (config, seed), no duplicates
    assert {r.backend for r in ray_rows} == {"ray"} and {r.status for r in ray_rows} == {"ok"}

    # The same jobs on the local backend give the same numbers: results do not depend on where they ran.
    local = sweep("toy-coin", {"samples": [100, 200]}, 2, db=tmp_path / "local.db", workers=1, quiet=True)
    local_numbers = {(r.config_hash, r.seed): (r.measurement, r.error) for r in local.rows}
    assert {(r.config_hash, r.seed): (r.measurement, r.error) for r in ray_rows} == local_numbers

    # Resume: every point is stored, so nothing is sent to the cluster again.
    again = sweep("toy-coin", {"samples": [100, 200]}, 2, db=db, backend="ray", address=ray_cluster, quiet=True)
    assert again.skipped == 4 and again.rows == [] and len(_rows(db)) == 4


def test_python_api_on_connected_cluster_stores_diverged_and_failed(ray_cluster, tmp_path, monkeypatch):
    for name, value in QUIET_RAY.items():
        monkeypatch.setenv(name, value)
    ray.init(address=ray_cluster, log_to_driver=False)
    try:
        summary = sweep("toy-explode", {"mode": ["diverge", "fail"]}, 2, db=tmp_path / "x.db", backend="ray",
                        quiet=True)
    finally:
        ray.shutdown()
    statuses = sorted((r.status, r.diverged_step) for r in summary.rows)
    assert statuses == [("diverged", 17), ("diverged", 17), ("failed", None), ("failed", None)]
    assert all("boom in the experiment" in r.traceback for r in summary.rows if r.status == "failed")
    assert len(_rows(tmp_path / "x.db")) == 4


def test_address_without_cluster_is_a_usage_error(tmp_path, monkeypatch):
    from learnmech import cli

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_free_port()}")  # nothing listens there
    for name, value in QUIET_RAY.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["sweep", "toy-coin", "--grid", "samples=10", "--backend", "ray", "--address", "auto",
                     "--db", str(tmp_path / "n.db"), "--out", str(tmp_path)])
    assert code == 2
    assert _rows(tmp_path / "n.db") == []  # nothing half-written
    assert cli.main(["sweep", "toy-coin", "--grid", "samples=10", "--backend", "ray", "--address", "localhost:notaport",
                     "--db", str(tmp_path / "n.db"), "--out", str(tmp_path)]) == 2
