"""The laws strand's claims (chinchilla-fit, mlp-scaling): quick configs run, agree, are well formed and resumable."""

from __future__ import annotations

import json

import pytest

from learnmech.claims import Result, get, registry
from learnmech.claims import mlp_scaling as mlp_module
from learnmech.subruns import set_cache_path


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


def test_mlp_scaling_quick_trains_real_mlps_and_predicts_held_out_runs():
    claim = get("mlp-scaling")
    config = claim.config(quick=True)
    assert config["model"] == "mlp"  # the default is the fully trained MLP
    result = claim.run(config, 0)
    _well_formed(result)
    assert result.metrics["model"] == "mlp"
    assert result.metrics["n_held_out_runs"] == 9 and result.metrics["n_fitted_runs"] == 16
    assert set(result.prediction) == set(result.measurement)
    # N counts every trainable parameter of the d=8 MLP: width * (8 + 2) + 1
    assert result.metrics["parameters"] == [41.0, 81.0, 161.0, 321.0, 641.0]
    # the widest net's held-out losses fall with D; the fit's floor E does not exceed a few times the noise^2
    widest = [result.measurement[f"N=641,D={d}"] for d in config["data_sizes"]]
    assert all(b < a for a, b in zip(widest, widest[1:], strict=False))
    assert 0 <= result.metrics["fit"]["E"] < 3 * config["noise"] ** 2
    # sigma is the stated seed + bootstrap spread: every z is the log-ratio over it
    for name, z in result.metrics["held_out_z"].items():
        sigma = (result.metrics["held_out_seed_sigma"][name] ** 2 + result.metrics["held_out_fit_sigma"][name] ** 2)
        assert z == pytest.approx(result.metrics["held_out_log_ratio"][name] / sigma**0.5)
    assert result.error == pytest.approx(max(abs(z) for z in result.metrics["held_out_z"].values()))


def test_mlp_scaling_random_feature_variant_agrees():
    # the solvable regime (ridge readout on Maloney et al.'s task), where theory derives L(N, D)
    claim = get("mlp-scaling")
    result = claim.run(claim.config(quick=True, **mlp_module.RANDOM_FEATURES), 0)
    _well_formed(result)
    assert result.metrics["model"] == "random_features" and result.verdict == "agrees"
    assert result.metrics["parameters"] == [17.0, 33.0, 65.0, 129.0, 257.0]  # readout + bias
    assert result.metrics["max_abs_log_ratio"] < 0.3


def test_mlp_scaling_bad_model_is_refused():
    claim = get("mlp-scaling")
    with pytest.raises(ValueError, match="model"):
        claim.run(claim.config(quick=True, model="transformer"), 0)


_TINY_MLP = {"widths": [2, 3, 4, 6], "data_sizes": [16, 24, 32, 48], "seeds": 2, "steps": 30, "n_val": 64,
             "n_test": 64, "n_bootstrap": 20}


def test_mlp_scaling_runs_are_cached_and_resume(tmp_path, monkeypatch):
    claim = get("mlp-scaling")
    config = claim.config(quick=True, **_TINY_MLP)
    runs = []
    original = mlp_module.train_mlps

    def counting(task, widths, n_train, **kwargs):
        runs.extend((w, n_train) for w in widths)
        return original(task, widths, n_train, **kwargs)

    monkeypatch.setattr(mlp_module, "train_mlps", counting)
    set_cache_path(tmp_path / "cache.db")
    try:
        first = claim.run(config, 0)
        assert len(runs) == 4 * 4 * 2
        second = claim.run(config, 0)
        assert len(runs) == 32  # every run came from the cache
        assert second.measurement == first.measurement
        changed = claim.run({**config, "lr": 3e-2}, 0)  # a different training recipe is a different key
        assert len(runs) == 64 and changed.measurement != first.measurement
        claim.run({**config, "ridge": 1.0}, 0)  # a random-feature-only key does not split the MLP cache
        assert len(runs) == 64
    finally:
        set_cache_path(None)


def test_mlp_scaling_random_feature_runs_are_cached(tmp_path, monkeypatch):
    claim = get("mlp-scaling")
    config = claim.config(quick=True, **{**mlp_module.RANDOM_FEATURES, "widths": [8, 16, 32, 64],
                                         "data_sizes": [16, 32, 64, 128], "seeds": 2, "n_bootstrap": 20,
                                         "rf_input_dim": 64, "n_test": 200})
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
        assert claim.run(config, 0).measurement == first.measurement and len(calls) == 32
        changed = claim.run({**config, "ridge": 1e-2}, 0)  # a different task is a different key
        assert len(calls) == 64 and changed.measurement != first.measurement
    finally:
        set_cache_path(None)
