"""``learnmech forecast --script train.py [--run] [--out DIR]``: print the forecasts for a training script and,
with ``--run``, train it with Observers, score the forecasts and write the report card (DIR/forecast.html, plus
observations.csv and scores.csv). Exit 0 when done (whatever the verdicts), 2 on bad arguments or a script that
breaks the contract (one line), 1 on an internal failure."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["add_parser", "main"]

_T = TypeVar("_T")

HELP = """The script is a Python file defining:
  model(width=None) -> torch.nn.Module   a fresh model (the width argument only if `widths` is set)
  loss_fn(outputs, targets) -> scalar     e.g. torch.nn.CrossEntropyLoss()
  data() -> (x, y) or {"train": (x, y), "test": (x, y)}
  optimizer = {"name": "gd"|"momentum"|"adam", "lr": 0.1, "steps": 300, "momentum": 0.9,
               "betas": (0.9, 0.999), "eps": 1e-8, "batch_size": None (full batch), "every": 10, "seed": 0}
optional: runs (list of dicts, CSV path, or a function returning them) and target (e.g. {"D": 1400}) for the loss
forecast; widths (e.g. [8, 16, 32]: proxy first, target last) for the muP width transfer."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``forecast`` subcommand on ``subparsers``; its handler is :func:`main`."""
    p = subparsers.add_parser("forecast", help="forecast a training script's run, optionally train and score it",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--script", required=True, help="path to the training script (contract below)")
    p.add_argument("--run", action="store_true", help="train with Observers, score the forecasts, write the card")
    p.add_argument("--out", default="learnmech-out", help="directory for the report card (with --run)")
    p.set_defaults(func=main)
    return p


def _guarded(step: Callable[[], _T]) -> tuple[_T | None, int | None]:
    """Run one stage of the subcommand: ``(its result, None)``, or ``(None, exit code)`` after reporting a failure:
    a ValueError (bad arguments, a script that breaks the contract) as one line and 2, anything else (a bug in
    learnmech) with its traceback and 1."""
    try:
        return step(), None
    except ValueError as exc:
        print(f"error: forecast: {exc}".splitlines()[0], file=sys.stderr)
        return None, 2
    except Exception:
        traceback.print_exc()
        return None, 1


def main(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (0 done, 2 bad input, 1 internal failure)."""
    from .card import Forecast  # noqa: F401  (import errors count as internal failures below)
    from .script import forecast_script, load_script, train_script

    def prepare() -> tuple[Path, float, Any, Any]:
        out = Path(args.out)
        if not Path(args.script).is_file():  # before creating --out: a bad call leaves nothing on disk
            raise ValueError(f"script must be an existing Python file, got {args.script}")
        if args.run:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"--out {args.out}: not a writable directory ({exc.strerror or exc})") from None
        started = time.perf_counter()
        script = load_script(args.script)
        return out, started, script, forecast_script(script)

    prepared, code = _guarded(prepare)
    if code is not None:
        return code
    out, started, script, forecast = prepared
    print(forecast.summary())
    print(f"(forecast took {time.perf_counter() - started:.1f} s)")
    if not args.run:
        return 0

    def train_and_score() -> tuple[Any, Path]:
        observations = train_script(script)
        card = forecast.score(observations)
        observations.to_csv(out / "observations.csv", index=False)
        card.table().to_csv(out / "scores.csv", index=False)
        return card, card.to_html(out / "forecast.html", title=f"forecast report card: {script.path.name}")

    scored, code = _guarded(train_and_score)
    if code is not None:
        return code
    card, path = scored
    print("scores:")
    print(card.summary())
    print(f"report card: {path} (total {time.perf_counter() - started:.1f} s)")
    return 0
