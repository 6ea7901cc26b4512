"""Toy claims for testing the spine (runner, store, report, CLI) without any real experiment.

Loaded through the ``LEARNMECH_CLAIM_MODULES`` plugin hook, so worker processes (local pool, Ray) see them too.
"""

from __future__ import annotations

import os
import time

import numpy as np

from learnmech.claims import Claim, Control, Diverged, Panel, Result, Series, step
from learnmech.subruns import cached


def _coin(config: dict, seed: int) -> Result:
    """Sample mean of `samples` standard normals vs the true mean 0; tolerance 4 standard errors."""
    rng = np.random.default_rng(seed)
    draws = rng.normal(config["mean"], 1.0, size=config["samples"])
    for i in range(3):
        step(i + 1, 3, "sampling")
    time.sleep(config["sleep"])
    ns = np.array([10, 100, config["samples"]])
    running = [draws[:n].mean() for n in ns]
    figure = [Panel("running mean", "samples", "mean", [
        Series("theory", ns, [0.0, 0.0, 0.0], "prediction", lower=-4 / np.sqrt(ns), upper=4 / np.sqrt(ns)),
        Series("measured", ns, running, "measurement"),
    ], xscale="log")]
    mean = float(draws.mean())
    tolerance = 4 / np.sqrt(config["samples"])
    return Result(0.0, mean, abs(mean), tolerance, figure, {"std": float(draws.std())},
                  controls=[_rival_mean_one(mean, tolerance)])


def _rival_mean_one(mean: float, tolerance: float) -> Control:
    """The negative control: a rival theory that says the mean is 1."""
    return Control("mean-one", "a rival says the mean is 1", 1.0, mean, abs(mean - 1.0), tolerance)


def _explode(config: dict, seed: int) -> Result:
    if config["mode"] == "diverge":
        raise Diverged(17)
    if config["mode"] == "crash_process":
        os._exit(3)
    raise RuntimeError("boom in the experiment")


def _subruns(config: dict, seed: int) -> Result:
    """A claim made of `subruns` slow sub-runs, each kept in the sub-run cache; every computation (not cache hit)
    appends a line to the file `log` so tests can count what was really recomputed after a kill."""

    def compute(index: int) -> float:
        time.sleep(config["sleep"])
        if config["log"]:
            with open(config["log"], "a") as log:
                log.write(f"{seed} {index}\n")
        return float(np.random.default_rng([seed, index]).normal())

    values = []
    for index in range(config["subruns"]):
        values.append(cached("toy-subruns", {"seed": seed, "index": index, "sleep": config["sleep"]},
                             lambda index=index: compute(index)))
        step(index + 1, config["subruns"], "sub-run")
    mean = float(np.mean(values))
    tolerance = 4 / np.sqrt(len(values))
    return Result(0.0, mean, abs(mean), tolerance, metrics={"values": values},
                  controls=[_rival_mean_one(mean, tolerance)])


COIN = Claim("toy-coin", "universal", "Gauss (1809)", "theory says the sample mean of N(0,1) is 0 +- 1/sqrt(n)",
             {"samples": 400, "mean": 0.0, "sleep": 0.0}, {"samples": 40000, "mean": 0.0, "sleep": 0.0}, _coin)
EXPLODE = Claim("toy-explode", "universal", "Murphy (1949)", "theory says anything that can go wrong will",
                {"mode": "diverge"}, {"mode": "fail"}, _explode)
# The quick config can be slowed down from the environment, so a test can SIGKILL `learnmech reproduce` mid-claim.
_SUBRUNS_QUICK = {"subruns": int(os.environ.get("LEARNMECH_TOY_SUBRUNS", "4")),
                  "sleep": float(os.environ.get("LEARNMECH_TOY_SLEEP", "0")),
                  "log": os.environ.get("LEARNMECH_TOY_LOG", "")}
SUBRUNS = Claim("toy-subruns", "universal", "Gauss (1809)", "theory says a mean of n N(0,1) is 0 +- 1/sqrt(n)",
                _SUBRUNS_QUICK, {"subruns": 16, "sleep": 0.0, "log": ""}, _subruns)
CLAIMS = [COIN, EXPLODE, SUBRUNS]
