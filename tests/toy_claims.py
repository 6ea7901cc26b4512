"""Toy claims for testing the spine (runner, store, report, CLI) without any real experiment.

Loaded through the ``LEARNMECH_CLAIM_MODULES`` plugin hook, so worker processes (local pool, Ray) see them too.
"""

from __future__ import annotations

import os
import time

import numpy as np

from learnmech.claims import Claim, Diverged, Panel, Result, Series, step


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
    return Result(0.0, mean, abs(mean), 4 / np.sqrt(config["samples"]), figure, {"std": float(draws.std())})


def _explode(config: dict, seed: int) -> Result:
    if config["mode"] == "diverge":
        raise Diverged(17)
    if config["mode"] == "crash_process":
        os._exit(3)
    raise RuntimeError("boom in the experiment")


COIN = Claim("toy-coin", "universal", "Gauss (1809)", "theory says the sample mean of N(0,1) is 0 +- 1/sqrt(n)",
             {"samples": 400, "mean": 0.0, "sleep": 0.0}, {"samples": 40000, "mean": 0.0, "sleep": 0.0}, _coin)
EXPLODE = Claim("toy-explode", "universal", "Murphy (1949)", "theory says anything that can go wrong will",
                {"mode": "diverge"}, {"mode": "fail"}, _explode)
CLAIMS = [COIN, EXPLODE]
