"""The Observer: two lines in a training loop, a tidy DataFrame, SQLite, and failures recorded, never raised."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from learnmech.observe import BUILTIN_MEASURES, Observer, read_observations, sharpness


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 24), torch.nn.Tanh(), torch.nn.Linear(24, 24), torch.nn.Tanh(),
                                torch.nn.Linear(24, 1))
    x = torch.randn(64, 5)
    y = torch.sin(x[:, :1])
    return model, torch.nn.MSELoss(), (x, y)


def _train(model, loss_fn, batch, obs, steps: int, lr: float = 0.05) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(batch[0]), batch[1])
        loss.backward()
        obs.step(loss, batch)
        optimizer.step()


def test_observer_records_a_tidy_time_series_every_k_steps(tmp_path):
    model, loss_fn, batch = _setup()
    obs = Observer(model, every=10,
                   measure=["loss", "grad_norm", "sharpness", "hessian_trace", "grad_noise", "weight_norm",
                            "update_norm", "esd_alpha"],
                   loss_fn=loss_fn, sqlite=tmp_path / "obs.db", run="demo",
                   options={"hessian_trace": {"n_samples": 5}, "grad_noise": {"n_groups": 4},
                            "esd_alpha": {"min_eigenvalues": 20}})
    _train(model, loss_fn, batch, obs, steps=31)
    frame = obs.to_frame()
    assert list(frame.columns) == ["step", "metric", "layer", "value", "error", "data"]
    assert sorted(frame["step"].unique()) == [0, 10, 20, 30]
    whole = frame[frame["layer"] == ""]
    assert set(whole["metric"]) == {"loss", "grad_norm", "sharpness", "hessian_trace", "grad_noise"}
    per_layer = frame[frame["layer"] != ""]
    assert set(per_layer.loc[per_layer.metric == "weight_norm", "layer"]) == {n for n, _ in model.named_parameters()}
    esd = per_layer[per_layer.metric == "esd_alpha"]
    assert set(esd.loc[esd.error == "", "layer"]) == {"2.weight"}  # the only 24x24 matrix
    assert esd.loc[esd.error != "", "value"].isna().all()  # the smaller ones: NaN rows saying why
    assert esd.loc[esd.error != "", "error"].str.contains("too small").all()
    # update_norm needs a previous snapshot: present from the second measurement on.
    assert sorted(per_layer.loc[per_layer.metric == "update_norm", "step"].unique()) == [10, 20, 30]
    steps, losses = obs.series("loss")
    assert list(steps) == [0, 10, 20, 30] and losses[-1] < losses[0]
    # The recorded sharpness is the instrument's value at that moment (the last measurement is after training).
    _, sharp = obs.series("sharpness")
    assert sharp[-1] == pytest.approx(sharpness(model, loss_fn, batch), rel=1e-2)
    stored = read_observations(tmp_path / "obs.db", run="demo")
    assert len(stored) == len(frame)
    pd.testing.assert_series_equal(stored["value"], frame["value"], check_names=False)


def test_failures_are_recorded_not_raised():
    model, loss_fn, (x, y) = _setup()
    obs = Observer(model, every=1, measure=["loss", "sharpness", "grad_norm"], loss_fn=loss_fn)
    bad = (x * float("nan"), y)
    assert obs.step(float("nan"), bad) is True  # no exception mid-training
    frame = obs.to_frame()
    loss_row = frame[frame.metric == "loss"].iloc[0]
    assert math.isnan(loss_row.value) and "not finite" in loss_row.error
    sharp_row = frame[frame.metric == "sharpness"].iloc[0]
    assert math.isnan(sharp_row.value) and "ValueError" in sharp_row.error
    grad_row = frame[frame.metric == "grad_norm"].iloc[0]
    assert "backward" in grad_row.error  # no .grad yet: says why
    # And the next, healthy step measures normally.
    obs.step(loss_fn(model(x), y), (x, y))
    assert obs.to_frame().query("step == 1 and metric == 'sharpness'")["error"].item() == ""


def test_custom_measures_probe_batch_and_explicit_steps():
    model, loss_fn, (x, y) = _setup()

    def output_scale(m, batch):
        with torch.no_grad():
            out = m(batch[0])
        return {"mean": float(out.mean()), "std": float(out.std())}

    obs = Observer(model, every=5, measure={"scale": output_scale, "curvature": "sharpness"}, loss_fn=loss_fn,
                   probe=(x[:16], y[:16]))
    loss_fn(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert obs.step(step=0) and not obs.step(step=3) and obs.step(step=5)
    # Measuring (HVPs included) must not touch the .grad the optimizer is about to use.
    for before, p in zip(grads, model.parameters(), strict=True):
        assert torch.equal(before, p.grad)
    frame = obs.to_frame()
    assert set(frame.loc[frame.metric == "scale", "layer"]) == {"mean", "std"}
    _, curvature = obs.series("curvature")
    assert curvature[0] == pytest.approx(sharpness(model, loss_fn, (x[:16], y[:16])), rel=1e-2)
    assert np.all(np.isfinite(frame["value"]))


def test_builtin_measures_are_documented_and_bad_configuration_is_refused():
    model, loss_fn, batch = _setup()
    assert {"loss", "sharpness", "esd_alpha", "ntk_drift"} <= set(BUILTIN_MEASURES)
    with pytest.raises(ValueError, match="unknown"):
        Observer(model, measure=["sharpnes"])
    with pytest.raises(ValueError, match="loss_fn is required"):
        Observer(model, measure=["sharpness"])
    with pytest.raises(ValueError, match="probe"):
        Observer(model, measure=["ntk_drift"])
    with pytest.raises(ValueError, match="every"):
        Observer(model, every=0)
    with pytest.raises(ValueError, match="at least one parameter"):
        Observer(torch.nn.ReLU())
    with pytest.raises(ValueError, match="options"):
        Observer(model, measure=["loss"], options={"sharpness": {}})
    with pytest.raises(ValueError, match="metric must be one of"):
        Observer(model).series("nope")
    with pytest.raises(ValueError, match="path"):
        read_observations("/nonexistent/obs.db")


# ---------------------------------------------------------------------------------------------------------------
# Issue 13 item 8: found in a new-user trial.


def test_the_documented_loop_order_records_grad_norm():
    """The order in learnmech.observe's docstring (step after backward, before the next zero_grad) gives grad_norm
    rows without errors; zero_grad before obs.step (the old example) gives only error rows."""
    model, loss_fn, (x, y) = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    obs = Observer(model, every=1, measure=["loss", "grad_norm"])
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        obs.step(loss, (x, y))
        optimizer.step()
    rows = obs.to_frame().query("metric == 'grad_norm'")
    assert len(rows) == 3 and (rows["error"] == "").all() and (rows["value"] > 0).all()
    import learnmech.observe as package

    example = package.__doc__[package.__doc__.index("for x, y in loader"):]
    assert example.index("loss.backward()") < example.index("obs.step(") < example.index("optimizer.step()")
    assert "zero_grad" not in example[example.index("loss.backward()"):example.index("obs.step(")]


def test_esd_alpha_on_small_layers_gives_nan_rows_that_say_why():
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    obs = Observer(model, every=1, measure=["esd_alpha"])
    obs.step()
    frame = obs.to_frame()
    assert set(frame["layer"]) == {"0.weight", "2.weight"}  # one row per weight matrix, none silently dropped
    assert frame["value"].isna().all()
    assert frame["error"].str.contains("too small for a power-law fit").all()
    assert frame["error"].str.contains("min_eigenvalues=20").all()


def test_grad_noise_failure_says_why():
    model, loss_fn, (x, y) = _setup()
    obs = Observer(model, every=1, measure=["grad_noise"], loss_fn=loss_fn, options={"grad_noise": {"n_groups": 4}})
    obs.step(None, (x[:2], y[:2]))  # 2 examples for 4 groups
    assert "n_groups=4" in obs.to_frame()["error"].item()


def test_grad_noise_with_a_nonpositive_gradient_estimate_names_the_cause(monkeypatch):
    from learnmech.observe import NoiseScale, observer

    model, loss_fn, batch = _setup()
    monkeypatch.setattr(observer, "gradient_noise_scale",
                        lambda *a, **k: NoiseScale(float("nan"), 1.0, -2e-3, 16, 64))
    obs = Observer(model, every=1, measure=["grad_noise"], loss_fn=loss_fn)
    obs.step(None, batch)
    error = obs.to_frame()["error"].item()
    assert "|G|^2 is -0.002 <= 0" in error and "larger batch" in error


def test_the_data_column_says_which_batch_each_measurement_used(tmp_path):
    model, loss_fn, (x, y) = _setup()
    measures = ["loss", "grad_norm", "sharpness", "weight_norm"]
    loss_fn(model(x), y).backward()
    with_probe = Observer(model, every=1, measure=measures, loss_fn=loss_fn, probe=(x[:16], y[:16]),
                          sqlite=tmp_path / "o.db")
    with_probe.step(loss_fn(model(x), y), (x, y))
    data = with_probe.to_frame().groupby("metric")["data"].agg(set).to_dict()
    assert data == {"loss": {"batch"}, "grad_norm": {"batch"}, "sharpness": {"probe"}, "weight_norm": {""}}
    assert list(read_observations(tmp_path / "o.db")["data"].unique()) == ["batch", "probe", ""]
    without = Observer(model, every=1, measure=["sharpness"], loss_fn=loss_fn)
    without.step(None, (x, y))
    assert without.to_frame()["data"].item() == "batch"


def test_observations_files_from_before_the_data_column_still_work(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE observations (run TEXT, step INTEGER, metric TEXT, layer TEXT, value REAL, "
                           "error TEXT)")
        connection.execute("INSERT INTO observations VALUES ('old', 0, 'loss', '', 1.0, '')")
    connection.close()
    assert read_observations(path)["data"].tolist() == [""]
    model, _, _ = _setup()
    obs = Observer(model, every=1, measure=["loss"], sqlite=path, run="new")
    obs.step(0.5)
    assert read_observations(path)["run"].tolist() == ["old", "new"]
