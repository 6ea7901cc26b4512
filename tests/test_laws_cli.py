"""learnmech.cli.run_fit (over laws.cli.fit_csv): the `learnmech fit` command's work, on good and bad CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from learnmech.cli import run_fit
from learnmech.laws import scaling_law
from learnmech.laws.cli import read_runs

TRUE = {"E": 1.5, "A": 300.0, "B": 900.0, "alpha": 0.35, "beta": 0.3}


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    N, D = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5))
    N, D = N.ravel(), D.ravel()
    loss = scaling_law(N, D, **TRUE) * np.exp(0.003 * rng.normal(size=N.size))
    loss[0] = 50.0  # an outlier that --exclude-highest 1 removes
    path = tmp_path_factory.mktemp("fit") / "runs.csv"
    pd.DataFrame({"params": N, "tokens": D, "final_loss": loss, "note": "x"}).to_csv(path, index=False)
    return path


def test_run_fit_prints_table_and_writes_figure(runs_csv, tmp_path):
    table = run_fit(str(runs_csv), "params", "tokens", "final_loss", exclude_highest=1, out_dir=str(tmp_path / "o"),
                    n_bootstrap=40, seed=1)
    figure = tmp_path / "o" / "scaling_fit.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure: {figure}" in table
    assert "24 points" in table and "1 highest-loss excluded" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.split()}
    for name, value in TRUE.items():
        # A and B are weakly identified by 24 points over two decades (their intervals span ~2x)
        assert float(rows[name][1]) == pytest.approx(value, rel=0.25 if name in "AB" else 0.05), name
        assert rows[name][2].startswith("[")  # the interval
    assert "N_opt(C) = G (C/6)^a" in table and "D_opt(C) = (C/6)^b / G" in table
    a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    a_line = next(line for line in table.splitlines() if "N_opt(C)" in line)
    assert float(a_line.split("a = ")[1].split()[0]) == pytest.approx(a, abs=0.05)


def test_read_runs_returns_columns(runs_csv):
    N, D, loss = read_runs(str(runs_csv), "params", "tokens", "final_loss")
    assert N.shape == D.shape == loss.shape == (25,)


def _write(tmp_path: Path, frame: pd.DataFrame) -> str:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_bad_inputs_are_one_line_value_errors(runs_csv, tmp_path):
    good = pd.read_csv(runs_csv)
    cases = [
        (lambda: run_fit(str(tmp_path / "missing.csv"), "a", "b", "c"), "does not exist"),
        (lambda: run_fit(str(runs_csv), "N", "tokens", "loss"), "available columns: \\['params', 'tokens'"),
        (lambda: run_fit(_write(tmp_path, good.assign(tokens=-good.tokens)), "params", "tokens", "final_loss"),
         "column 'tokens' \\(--d\\) must hold finite numbers > 0"),
        (lambda: run_fit(_write(tmp_path, good.assign(params="big")), "params", "tokens", "final_loss"),
         "column 'params' \\(--n\\)"),
        (lambda: run_fit(_write(tmp_path, good.head(5)), "params", "tokens", "final_loss"), "more points than"),
        (lambda: run_fit(str(runs_csv), "params", "tokens", "final_loss", exclude_highest=20), "more points than"),
        (lambda: run_fit(str(runs_csv), "params", "tokens", "final_loss", exclude_highest=25), "would drop all"),
        (lambda: run_fit(str(runs_csv), "params", "tokens", "final_loss", exclude_highest=-1), "--exclude-highest"),
        (lambda: run_fit(str(runs_csv), "params", "tokens", "final_loss", n_bootstrap=-5), "--bootstrap"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    inf_path = tmp_path / "inf.csv"
    inf_path.write_text("n,d,l\n1e8,1e9,2.0\n1e8,inf,2.0\n")
    with pytest.raises(ValueError, match="line\\(s\\) 3"):
        run_fit(str(inf_path), "n", "d", "l")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    with pytest.raises(ValueError):
        run_fit(str(binary), "n", "d", "l")
