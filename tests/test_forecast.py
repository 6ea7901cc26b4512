"""learnmech.forecast: stability thresholds against exact quadratics, the batch/loss/width forecasts, the scoring
rules on constructed observation frames, the report card and the `learnmech forecast` command."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from learnmech import forecast
from learnmech.cli import main as cli_main
from learnmech.forecast.card import EOS_TOL, Forecast
from learnmech.forecast.stability import Stability
from learnmech.observe import gradient_noise_scale


def _linear_regression(seed: int = 0, n: int = 64, d: int = 5):
    """0.5 * mean (x.w - y)^2: Hessian X^T X / n exactly."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * torch.linspace(0.5, 2.0, d)
    y = torch.randn(n, 1, generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Linear(d, 1, bias=False)

    def loss_fn(out, target):
        return 0.5 * ((out - target) ** 2).mean()

    top = float(np.linalg.eigvalsh((x.T @ x / n).double().numpy())[-1])
    return model, loss_fn, (x, y), top


def _run(model, loss_fn, batch, lr, steps=200, momentum=0.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
    return float(loss_fn(model(batch[0]), batch[1]).detach())


@pytest.mark.parametrize("optimizer,momentum", [("gd", 0.0), ("momentum", 0.9)])
def test_lr_stable_is_exact_on_a_quadratic(optimizer, momentum):
    model, loss_fn, batch, top = _linear_regression()
    result = forecast.stability(model, loss_fn, batch, optimizer=optimizer, momentum=momentum)
    expected = (2 + 2 * momentum) / top
    assert result.sharpness == pytest.approx(top, rel=1e-3)
    assert result.lr_stable == pytest.approx(expected, rel=1e-3)
    initial = float(loss_fn(model(batch[0]), batch[1]).detach())
    below = _run(model, loss_fn, batch, 0.95 * expected, momentum=momentum)
    model2, *_ = _linear_regression()
    above = _run(model2, loss_fn, batch, 1.05 * expected, momentum=momentum)
    assert below < initial and not (above < initial)
    assert result.at(0.5 * expected).regime == "stable"
    assert result.at(2.0 * expected).regime == "unstable"
    assert result.at(expected).regime == "marginal"
    assert result.threshold(0.1) == pytest.approx((2 + 2 * momentum) / 0.1)


def test_adam_stability_uses_the_first_step_preconditioner():
    model, loss_fn, batch, _ = _linear_regression(1)
    result = forecast.stability(model, loss_fn, batch, optimizer="adam", betas=(0.9, 0.999), eps=1e-8)
    g = torch.autograd.grad(loss_fn(model(batch[0]), batch[1]), model.weight)[0].reshape(-1).double()
    p = (g.abs() + 1e-8).numpy()
    x = batch[0].double().numpy()
    h = x.T @ x / x.shape[0]
    a = np.linalg.eigvalsh(np.diag(p**-0.5) @ h @ np.diag(p**-0.5))[-1]
    assert result.sharpness == pytest.approx(a, rel=1e-3)
    assert result.lr_stable == pytest.approx(38.0 / a, rel=1e-3)
    assert forecast.threshold(0.01, "adam") == pytest.approx(3800.0)


def test_stability_rejects_bad_input_by_name():
    model, loss_fn, batch, _ = _linear_regression()
    with pytest.raises(ValueError, match="optimizer"):
        forecast.stability(model, loss_fn, batch, optimizer="sgd")
    with pytest.raises(ValueError, match="momentum"):
        forecast.stability(model, loss_fn, batch, optimizer="momentum", momentum=1.5)
    with pytest.raises(ValueError, match="betas"):
        forecast.stability(model, loss_fn, batch, optimizer="adam", betas=(0.9,))
    with pytest.raises(ValueError, match="batch"):
        forecast.stability(model, loss_fn, (batch[0], batch[1][:3]))
    with pytest.raises(ValueError, match="lr"):
        forecast.stability(model, loss_fn, batch).at(-1.0)


def test_batch_forecast_matches_the_noise_scale_and_leaves_the_model_alone():
    model, loss_fn, batch, _ = _linear_regression(2, n=256)
    before = model.weight.detach().clone()
    result = forecast.batch_size(model, loss_fn, batch, n_batches=1, n_groups=8, seed=3)
    order = torch.randperm(256, generator=torch.Generator().manual_seed(3))  # batch_size's seeded shuffle
    shuffled = (batch[0][order], batch[1][order])
    assert result.b_simple == pytest.approx(gradient_noise_scale(model, loss_fn, shuffled, n_groups=8).b_simple,
                                            rel=1e-6)
    piloted = forecast.batch_size(model, loss_fn, batch, n_batches=2, pilot_steps=2, lr=0.01)
    assert torch.equal(model.weight, before) and piloted.pilot_steps == 2
    assert result.steps_factor(int(result.b_crit)) == pytest.approx(1 + result.b_crit / int(result.b_crit))
    with pytest.raises(ValueError, match="lr"):
        forecast.batch_size(model, loss_fn, batch, pilot_steps=3)
    with pytest.raises(ValueError, match="pilot"):  # lr far above 2 / lambda: the pilot's loss blows up
        forecast.batch_size(model, loss_fn, batch, pilot_steps=5, lr=10.0)
    with pytest.raises(ValueError, match="batch"):
        forecast.batch_size(model, loss_fn, (batch[0][:10], batch[1][:10]))


def test_loss_forecast_recovers_an_exact_power_law(tmp_path):
    runs = [{"D": d, "loss": 3.0 * d**-0.4, "name": f"run{d}"} for d in (100, 200, 400, 800)]
    result = forecast.loss_forecast(runs, {"D": 3200})
    assert result.prediction == pytest.approx(3.0 * 3200**-0.4, rel=1e-6)
    assert result.low <= result.prediction <= result.high
    path = tmp_path / "runs.csv"
    pd.DataFrame(runs).to_csv(path, index=False)
    assert forecast.loss_forecast(path, {"D": 3200}).prediction == pytest.approx(result.prediction)
    with pytest.raises(ValueError, match="target"):
        forecast.loss_forecast(runs, {"N": 10})
    with pytest.raises(ValueError, match="runs"):
        forecast.loss_forecast(runs[:2], {"D": 3200})
    with pytest.raises(ValueError, match="runs"):
        forecast.loss_forecast(tmp_path / "missing.csv", {"D": 3200})


def _frame(rows):
    return pd.DataFrame([{"step": s, "metric": m, "layer": "", "value": v, "error": ""} for s, m, v in rows])


def _gd_forecast(lr=0.1, sharpness=15.0):
    stab = Stability(optimizer="gd", sharpness=sharpness, lr_stable=2.0 / sharpness)
    return Forecast(lr=lr, optimizer="gd", stability=stab, regime=stab.at(lr))


def test_scoring_agrees_when_the_run_hovers_at_the_edge_and_disagrees_when_it_overshoots():
    fc = _gd_forecast()  # threshold 20, lr / lr_stable = 0.75: stable
    losses = [(t, "loss", 1.0 / (1 + 0.1 * t)) for t in range(60)]
    hover = [(t, "sharpness", v) for t, v in zip(range(0, 60, 10), [15, 17, 19.5, 20.3, 19.8, 20.1], strict=True)]
    card = fc.score(_frame(losses + hover))
    verdicts = card.verdicts()
    assert verdicts["stability"] == "agrees" and verdicts["edge_of_stability"] == "agrees"
    overshoot = [(t, "sharpness", v) for t, v in zip(range(0, 60, 10), [15, 18, 22, 25, 27, 28], strict=True)]
    eos = {i.name: i for i in fc.score(_frame(losses + overshoot)).items}["edge_of_stability"]
    assert eos.verdict == "disagrees" and eos.error > EOS_TOL


def test_scoring_of_an_unstable_forecast():
    fc = _gd_forecast(lr=0.3)  # lr / lr_stable = 2.25
    diverged = [(0, "loss", 1.0), (1, "loss", 5.0), (2, "loss", float("nan"))]
    assert fc.score(_frame(diverged)).verdicts() == {"stability": "agrees", "edge_of_stability": "agrees"}
    calm = [(t, "loss", 1.0 - 0.01 * t) for t in range(30)] + [(t, "sharpness", 6.0) for t in range(0, 30, 10)]
    assert fc.score(_frame(calm)).verdicts()["stability"] == "disagrees"
    stable = _gd_forecast(lr=0.1)
    assert stable.score(_frame(diverged)).verdicts() == {"stability": "disagrees", "edge_of_stability": "disagrees"}
    with pytest.raises(ValueError, match="observations"):
        fc.score([1, 2, 3])


def test_report_card_html(tmp_path):
    fc = _gd_forecast()
    fc.loss = forecast.loss_forecast([{"D": d, "loss": 2.0 * d**-0.3} for d in (50, 100, 200)], {"D": 400})
    fc.loss_metric = "test_loss"
    rows = [(t, "loss", 1.0 / (1 + t)) for t in range(30)] + [(t, "sharpness", 10.0 + t / 10) for t in range(0, 30, 5)]
    rows += [(29, "test_loss", 2.0 * 400**-0.3)]
    card = fc.score(_frame(rows))
    assert card.verdicts()["loss"] == "agrees"
    path = card.to_html(tmp_path / "card.html")
    text = path.read_text()
    assert "edge_of_stability" in text and "data:image/png;base64" in text and "agrees" in text
    assert list(card.table().columns[:3]) == ["name", "statement", "prediction"]


SCRIPT = """
import torch
from torch import nn

optimizer = {"name": "gd", "lr": LR, "steps": 30, "every": 5}
target = {"D": 96}
runs = [{"D": 24, "loss": 0.9}, {"D": 48, "loss": 0.7}, {"D": 72, "loss": 0.6}]

def model():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))

def loss_fn(out, y):
    return 0.5 * ((out - y) ** 2).mean()

def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = torch.sin(x[:, :1])
    return {"train": (x[:96], y[:96]), "test": (x[96:], y[96:])}
"""


@pytest.mark.parametrize("lr,regime", [(0.05, "stable"), (5.0, "unstable")])
def test_cli_forecasts_trains_and_writes_the_card(tmp_path, capsys, lr, regime):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.replace("LR", str(lr))))
    out = tmp_path / "out"
    assert cli_main(["forecast", "--script", str(script), "--run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f": {regime})" in printed
    scores = pd.read_csv(out / "scores.csv").set_index("name")
    assert scores.loc["stability", "verdict"] == "agrees"
    assert (out / "forecast.html").is_file() and (out / "observations.csv").is_file()


def test_cli_bad_script_is_exit_2_with_one_line(tmp_path, capsys):
    assert cli_main(["forecast", "--script", str(tmp_path / "nope.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "script" in err
    broken = tmp_path / "broken.py"
    broken.write_text("model = 3\n")
    assert cli_main(["forecast", "--script", str(broken)]) == 2
    assert "must define" in capsys.readouterr().err


def test_width_transfer_scoring_needs_flat_mup_slopes_and_a_rejected_sp_control():
    from learnmech.hyper import CoordCheck

    def check(scheme, slopes):
        ones = np.ones((3, len(slopes), 5))
        return CoordCheck(scheme, np.array([8.0, 16.0, 32.0]), list(slopes), ones, ones, dict(slopes), dict(slopes))

    frame = _frame([(0, "loss", 1.0)])
    fc = _gd_forecast()
    fc.coord = {"mup": check("mup", {"0": 0.1, "3": -0.2}), "sp": check("sp", {"0": 1.1, "3": 2.0})}
    assert fc.score(frame).verdicts()["width_transfer"] == "agrees"
    fc.coord["sp"] = check("sp", {"0": 0.1, "3": 0.2})  # SP not rejected: the check had no power
    assert fc.score(frame).verdicts()["width_transfer"] == "inconclusive"
    fc.coord["mup"] = check("mup", {"0": 0.1, "3": -0.7})
    assert fc.score(frame).verdicts()["width_transfer"] == "disagrees"
