"""An observer that attaches to any PyTorch training loop in two lines and keeps a tidy time series.

    obs = Observer(model, every=50, measure=["loss", "sharpness", "esd_alpha"], loss_fn=torch.nn.MSELoss())
    for batch in data:  # ... zero_grad, forward, backward ...
        obs.step(loss, batch)   # after backward (grad_norm reads .grad), before the next zero_grad
        # ... optimizer.step() ...
    obs.to_frame()      # pandas DataFrame: step, metric, layer, value, error, data

Measurements never raise mid-training: a failure (a NaN loss, a singular batch, a missing gradient, a layer too
small for a spectral fit) is stored as a row with ``value`` NaN and the reason in ``error``, and training goes on.
The ``data`` column says what each measurement used: ``"batch"`` (the batch passed to :meth:`Observer.step`),
``"probe"`` (the Observer's fixed probe batch, which replaces the training batch for every batch-based measure)
or ``""`` (the weights alone).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._checks import positive_int
from ._torch import LossFn, check_batch, trainable_parameters
from .esd import layer_alphas
from .gradients import gradient_noise_scale
from .hessian import SharpnessTracker, block_hessian, hessian_trace, sharpness
from .norms import snapshot, update_norms, weight_norms
from .similarity import ntk_drift

__all__ = ["Observer", "BUILTIN_MEASURES", "read_observations"]

COLUMNS = ["step", "metric", "layer", "value", "error", "data"]
_TABLE = "observations"

Measure = Callable[[torch.nn.Module, Any], Any]

BUILTIN_MEASURES = {
    "loss": "the training loss passed to step()",
    "grad_norm": "L2 norm of the parameters' .grad (after backward)",
    "sharpness": "top Hessian eigenvalue on the batch, warm-started from the previous measurement (needs loss_fn)",
    "adam_sharpness": "Adam's preconditioned sharpness, top eigenvalue of P^-1/2 H P^-1/2, P = sqrt(v_hat) + eps "
    "(Cohen et al. 2022; stable below 38/lr at beta1 = 0.9); needs loss_fn and options {'adam_sharpness': "
    "{'optimizer': adam}}",
    "block_sharpness": "top eigenvalue of each layer's diagonal Hessian block (layer column; needs loss_fn)",
    "block_trace": "Hutchinson trace of each layer's diagonal Hessian block (layer column; needs loss_fn)",
    "hessian_trace": "Hutchinson estimate of Tr(H) (needs loss_fn)",
    "grad_noise": "McCandlish et al. (2018) simple noise scale B_simple (needs loss_fn)",
    "weight_norm": "Frobenius norm per parameter (layer column)",
    "update_norm": "relative change per parameter since the previous measurement (layer column)",
    "esd_alpha": "power-law exponent of each weight matrix's ESD (layer column)",
    "ntk_drift": "relative change of the empirical NTK on the probe inputs since the first measurement",
}
_NEEDS_LOSS_FN = {"sharpness", "hessian_trace", "grad_noise", "adam_sharpness", "block_sharpness", "block_trace"}
#: measures of the weights alone (no data); "loss" and "grad_norm" always come from the training step's batch
_WEIGHTS_ONLY = {"weight_norm", "update_norm", "esd_alpha"}
_STEP_BATCH = {"loss", "grad_norm"}


class _Failed:
    """A per-layer measurement that could not be taken: stored as a NaN row with ``reason`` in ``error``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Observer:
    """Measure ``model`` every ``every`` calls of :meth:`step` and keep the results as tidy rows.

    measure: names from :data:`BUILTIN_MEASURES` and/or callables ``f(model, batch) -> float | dict[str, float]``
        (a dict gives one row per key, in the ``layer`` column); a mapping ``{name: callable}`` names them.
    loss_fn: ``(outputs, targets) -> scalar``, required by the curvature and noise measures.
    probe: a fixed ``(inputs, targets)`` batch used instead of the training batch for the batch-based measures
        (e.g. the full training set for sharpness); ``ntk_drift`` always needs it (its NTK is on probe inputs).
    sqlite: a path; rows are also appended to its ``observations`` table, tagged with ``run``.
    options: keyword arguments per measure, e.g. ``{"sharpness": {"rtol": 1e-4}, "grad_noise": {"n_groups": 8}}``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        every: int = 50,
        measure: Iterable[str | Measure] | Mapping[str, str | Measure] = ("loss",),
        *,
        loss_fn: LossFn | None = None,
        probe: Any = None,
        sqlite: str | Path | None = None,
        run: str = "run",
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        trainable_parameters(model)
        self.model = model
        self.every = positive_int(every, "every")
        self.loss_fn = loss_fn
        self.probe = None if probe is None else check_batch(probe, "probe")
        self.sqlite = None if sqlite is None else Path(sqlite)
        self.run = str(run)
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.measures = self._resolve(measure)
        if loss_fn is not None and not callable(loss_fn):
            raise ValueError(f"loss_fn must be callable (outputs, targets) -> scalar, got {type(loss_fn).__name__}")
        needing = sorted(_NEEDS_LOSS_FN & set(self.measures))
        if needing and loss_fn is None:
            raise ValueError(f"loss_fn is required for the measures {needing}")
        if "ntk_drift" in self.measures and self.probe is None:
            raise ValueError("probe=(inputs, targets) is required for the 'ntk_drift' measure")
        unknown = set(self.options) - set(self.measures)
        if unknown:
            raise ValueError(f"options given for measures not in measure: {sorted(unknown)}")
        self.iteration = 0
        self.rows: list[dict[str, Any]] = []
        self._previous: dict[str, torch.Tensor] | None = None
        self._initial_ntk: np.ndarray | None = None
        self._trackers: dict[str, SharpnessTracker] = {}  # warm starts of repeated (preconditioned) sharpness

    @staticmethod
    def _resolve(measure: Any) -> dict[str, str | Measure]:
        items = measure.items() if isinstance(measure, Mapping) else [(None, m) for m in measure]
        resolved: dict[str, str | Measure] = {}
        for name, m in items:
            if isinstance(m, str):
                if m not in BUILTIN_MEASURES:
                    raise ValueError(f"measure {m!r} is unknown; built-in measures: {', '.join(BUILTIN_MEASURES)}")
                resolved[name or m] = m
            elif callable(m):
                resolved[name or getattr(m, "__name__", f"measure_{len(resolved)}")] = m
            else:
                raise ValueError(f"measure entries must be names or callables(model, batch), got {m!r}")
        if not resolved:
            raise ValueError("measure must name at least one measurement")
        return resolved

    # -- recording ---------------------------------------------------------------------------------------------

    def step(self, loss: Any = None, batch: Any = None, *, step: int | None = None) -> bool:
        """Call once per training iteration, after ``loss.backward()`` and before the next ``zero_grad()`` (so
        ``grad_norm`` sees this step's gradients; before or after ``optimizer.step()``, consistently). Measures when
        the iteration count (or the explicit ``step``) is a multiple of ``every``; returns whether it did."""
        current = self.iteration if step is None else int(step)
        self.iteration = current + 1
        if current % self.every != 0:
            return False
        self.measure_now(current, loss, batch)
        return True

    def measure_now(self, step: int, loss: Any = None, batch: Any = None) -> list[dict[str, Any]]:
        """Take every measurement now, tagged with ``step``; returns (and stores) the new rows."""
        new: list[dict[str, Any]] = []
        for name, how in self.measures.items():
            data = self._data_used(how, batch)
            try:
                value = self._measure(how, loss, batch, **self.options.get(name, {}))
                if value is None:
                    continue
                if isinstance(value, Mapping):
                    for layer, v in value.items():
                        if isinstance(v, _Failed):
                            new.append(self._row(step, name, str(layer), float("nan"), v.reason, data))
                        else:
                            new.append(self._row(step, name, str(layer), v, data=data))
                else:
                    new.append(self._row(step, name, "", value, data=data))
            except Exception as exc:  # measurements must never stop training: record why instead
                new.append(self._row(step, name, "", float("nan"), f"{type(exc).__name__}: {exc}", data))
        self._previous = snapshot(self.model)
        self.rows.extend(new)
        if self.sqlite is not None and new:
            self._write_sqlite(new)
        return new

    @staticmethod
    def _row(step: int, metric: str, layer: str, value: Any, error: str = "", data: str = "") -> dict[str, Any]:
        number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not error and not math.isfinite(number):
            error = "value is not finite"
        return {"step": int(step), "metric": metric, "layer": layer, "value": number, "error": error, "data": data}

    def _data_used(self, how: str | Measure, batch: Any) -> str:
        """Which data a measure reads: "batch" (step's), "probe" (the Observer's), or "" (weights only)."""
        if isinstance(how, str) and how in _WEIGHTS_ONLY:
            return ""
        if isinstance(how, str) and how in _STEP_BATCH:
            return "batch"
        if self.probe is not None:
            return "probe"
        return "batch" if batch is not None else ""

    def _batch(self, batch: Any) -> Any:
        if self.probe is not None:
            return self.probe
        if batch is None:
            raise ValueError("this measure needs a batch: pass step(loss, batch) or give the Observer a probe")
        return batch

    def _measure(self, how: str | Measure, loss: Any, batch: Any, **kwargs: Any) -> Any:
        if callable(how):
            return how(self.model, self._batch(batch) if (batch is not None or self.probe is not None) else None)
        if how == "loss":
            if loss is None:
                return None
            return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if how == "grad_norm":
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if not grads:
                raise ValueError("no parameter has a .grad; call step() after loss.backward()")
            return float(torch.sqrt(sum((g.detach().double() ** 2).sum() for g in grads)))
        if how in ("sharpness", "adam_sharpness"):
            return self._sharpness(how, batch, **kwargs)
        if how == "block_sharpness":
            kwargs.setdefault("n_trace", 0)
            result = block_hessian(self.model, self.loss_fn, self._batch(batch), **kwargs)
            return {block: float(result.eigenvalues[block][0]) for block in result.blocks}
        if how == "block_trace":
            result = block_hessian(self.model, self.loss_fn, self._batch(batch), eigenvalues=False, **kwargs)
            return result.trace
        if how == "hessian_trace":
            return hessian_trace(self.model, self.loss_fn, self._batch(batch), **kwargs).value
        if how == "grad_noise":
            noise = gradient_noise_scale(self.model, self.loss_fn, self._batch(batch), **kwargs)
            if not math.isfinite(noise.b_simple):
                # McCandlish et al. (2018, app. A.1): the |G|^2 estimate is a difference of two noisy terms and
                # comes out <= 0 when the gradient noise swamps the mean gradient (near a minimum, small batches).
                raise ValueError(
                    f"B_simple is undefined: the estimate of |G|^2 is {noise.gradient_norm_sq:.3g} <= 0 (gradient "
                    f"noise swamps the mean gradient on {noise.big_batch} examples in groups of {noise.small_batch}); "
                    "use a larger batch or probe"
                )
            return noise.b_simple
        if how == "weight_norm":
            return weight_norms(self.model)
        if how == "update_norm":
            return None if self._previous is None else update_norms(self.model, self._previous, **kwargs)
        if how == "esd_alpha":
            return self._esd_alphas(**kwargs)
        if how == "ntk_drift":
            from ..kernels import empirical_ntk  # late import: kernels is a sibling strand

            kernel = empirical_ntk(self.model, self.probe[0], **kwargs)
            kernel = np.asarray(kernel.detach() if isinstance(kernel, torch.Tensor) else kernel, dtype=float)
            if self._initial_ntk is None:
                self._initial_ntk = kernel
            return ntk_drift(self._initial_ntk, kernel)
        raise AssertionError(how)  # unreachable: names are validated in __init__

    def _esd_alphas(self, min_eigenvalues: int = 20, **kwargs: Any) -> dict[str, float | _Failed]:
        """``layer_alphas`` plus a NaN row, with the reason, for each weight matrix too small to fit."""
        alphas: dict[str, float | _Failed] = dict(layer_alphas(self.model, min_eigenvalues=min_eigenvalues, **kwargs))
        for name, param in self.model.named_parameters():
            if param.ndim >= 2 and name.endswith("weight") and name not in alphas:
                rank = min(param.shape[0], int(np.prod(param.shape[1:])))
                alphas[name] = _Failed(
                    f"too small for a power-law fit: at most {rank} nonzero eigenvalues, fewer than "
                    f"min_eigenvalues={min_eigenvalues} (options={{'esd_alpha': {{'min_eigenvalues': k}}}})"
                )
        return alphas

    def _sharpness(self, how: str, batch: Any, *, warm: bool = True, optimizer: Any = None, **kwargs: Any) -> float:
        """(Preconditioned) sharpness, by default warm-started from this Observer's previous measurement of it
        (:class:`SharpnessTracker`; ``warm=False`` starts fresh each time; ``stop``, ``keep``, ``refresh``, ``rtol``,
        ``max_iter``, ``seed`` are the tracker's options)."""
        if how == "adam_sharpness" and optimizer is None:
            raise ValueError("adam_sharpness needs options={'adam_sharpness': {'optimizer': your_adam}}")
        if not warm:
            if how == "sharpness":
                return sharpness(self.model, self.loss_fn, self._batch(batch), **kwargs)
            return SharpnessTracker(**kwargs)(self.model, self.loss_fn, self._batch(batch),
                                              preconditioner=optimizer).eigenvalues[0]
        tracker = self._trackers.get(how)
        if tracker is None:
            tracker = self._trackers[how] = SharpnessTracker(**kwargs)
        return float(tracker(self.model, self.loss_fn, self._batch(batch), preconditioner=optimizer).eigenvalues[0])

    # -- reading -----------------------------------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """All rows as a tidy DataFrame with columns step, metric, layer ("" for whole-model metrics), value,
        error ("" when the measurement succeeded)."""
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def series(self, metric: str, layer: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric (and layer), in recording order; failures appear as NaN."""
        known = {r["metric"] for r in self.rows} | set(self.measures)
        if metric not in known:
            raise ValueError(f"metric must be one of {sorted(known)}, got {metric!r}")
        picked = [(r["step"], r["value"]) for r in self.rows if r["metric"] == metric and r["layer"] == layer]
        steps = np.array([s for s, _ in picked], dtype=np.int64)
        return steps, np.array([v for _, v in picked], dtype=float)

    def _write_sqlite(self, rows: list[dict[str, Any]]) -> None:
        with closing(sqlite3.connect(self.sqlite)) as connection, connection:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} (run TEXT, step INTEGER, metric TEXT, layer TEXT, "
                "value REAL, error TEXT, data TEXT)"
            )
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({_TABLE})")}
            if "data" not in columns:  # a file written before the data column existed
                connection.execute(f"ALTER TABLE {_TABLE} ADD COLUMN data TEXT")
            connection.executemany(
                f"INSERT INTO {_TABLE} (run, step, metric, layer, value, error, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.run, r["step"], r["metric"], r["layer"], r["value"] if math.isfinite(r["value"]) else None,
                     r["error"], r["data"])
                    for r in rows
                ],
            )


def read_observations(path: str | Path, run: str | None = None) -> pd.DataFrame:
    """The ``observations`` table of an Observer's SQLite file as a DataFrame (columns run + the Observer's),
    optionally only one ``run``; missing values (failed measurements) read back as NaN."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path must be an existing SQLite file written by an Observer, got {path}")
    with closing(sqlite3.connect(path)) as connection:
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({_TABLE})")}
        data = "data" if "data" in columns else "'' AS data"  # files from before the data column
        query = f"SELECT run, step, metric, layer, value, error, {data} FROM {_TABLE}"
        if run is None:
            frame = pd.read_sql_query(query, connection)
        else:
            frame = pd.read_sql_query(query + " WHERE run = ?", connection, params=(run,))
    frame["value"] = frame["value"].astype(float)
    return frame
