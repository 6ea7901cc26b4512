"""The laws strand's claims (chinchilla-fit, mlp-scaling): quick configs run, agree, are well formed and resumable."""

from __future__ import annotations

import json

import pytest

from learnmech.claims import Result, get, registry
from learnmech.claims import mlp_scaling as mlp_module
from learnmech.run.cache import set_cache_path


def _well_formed(result: Result) -> None:
    assert result.status == "ok"
    assert result.figure and all(panel.series for panel in result.figure)
    round_trip = Result.from_dict(json.loads(json.dumps(result.to_dict())))
    assert round_trip.verdict == result.verdict and round_trip.error == pytest.approx(result.error)
    for panel in result.figure:
        assert panel.xlabel and panel.ylabel


def test_registered_in_the_laws_strand():
    claims = registry()
    for name in ("chinchilla-fit", "mlp-scaling"):
        assert claims[name].strand == "laws"
        assert claims[name].reference and claims[name].statement.startswith("theory says")


def test_chinchilla_fit_quick_reproduces_epoch_and_not_hoffmann():
    claim = get("chinchilla-fit")
    result = claim.run(claim.config(quick=True), 0)
    _well_formed(result)
    # a deterministic refit of the same points: theory (same procedure) guarantees agreement
    assert result.verdict == "agrees" and result.error < 0.1
    assert result.measurement["alpha"] == pytest.approx(0.3473, rel=1e-3)
    # the finding: the original paper's E and beta are several standard errors away, its a outside our interval
    z = result.metrics["z_hoffmann_minus_ours"]
    assert abs(z["E"]) > 3 and abs(z["beta"]) > 3
    assert result.metrics["hoffmann_a_inside_interval"] is False
    assert result.metrics["n_points"] == 240


def test_mlp_scaling_quick_agrees():
    claim = get("mlp-scaling")
    result = claim.run(claim.config(quick=True), 0)
    _well_formed(result)
    assert result.verdict == "agrees"
    assert result.metrics["n_held_out_runs"] == 9 and result.metrics["n_fitted_runs"] == 16
    assert set(result.prediction) == set(result.measurement)
    assert result.metrics["max_abs_log_ratio"] < 0.3


def test_mlp_scaling_runs_are_cached_and_resume(tmp_path, monkeypatch):
    claim = get("mlp-scaling")
    config = claim.config(quick=True, widths=[8, 16, 32, 64], data_sizes=[16, 32, 64, 128], seeds=2,
                          n_bootstrap=20, input_dim=64, n_test=200)
    calls = []
    original = mlp_module.train_random_feature_mlp

    def counting(*args, **kwargs):
        calls.append(args[1:3])
        return original(*args, **kwargs)

    monkeypatch.setattr(mlp_module, "train_random_feature_mlp", counting)
    set_cache_path(tmp_path / "cache.db")
    try:
        first = claim.run(config, 0)
        assert len(calls) == 4 * 4 * 2
        second = claim.run(config, 0)
        assert len(calls) == 32  # every run came from the cache
        assert second.measurement == first.measurement
        changed = claim.run({**config, "ridge": 1e-2}, 0)  # a different task is a different key
        assert len(calls) == 64 and changed.measurement != first.measurement
    finally:
        set_cache_path(None)
