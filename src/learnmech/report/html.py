"""The static HTML report: one self-contained page (figures embedded as base64 PNG) that opens from disk.

It is built from the SQLite store alone, so it can be regenerated at any time (``learnmech report``) and always
shows exactly what was measured.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .. import __version__
from ..claims import Claim, Panel, Series, registry
from ..run.store import Row, Store
from .figures import render_png

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.88rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto} td.num,#verdicts td:nth-child(-n+2){white-space:nowrap}
#verdicts td:nth-child(3){min-width:9rem;max-width:14rem}
#verdicts td:nth-child(4),#verdicts td:nth-child(5){max-width:17rem;overflow-wrap:anywhere}
#verdicts td:last-child{min-width:8rem;font-size:.8rem;color:#555}
.agrees{color:#0a7d32;font-weight:600} .disagrees{color:#b3261e;font-weight:600}
.inconclusive{color:#8a6d00;font-weight:600}
.failed,.diverged{color:#8a5300;font-weight:600}
section.claim{border-top:2px solid #eee;margin-top:2rem;padding-top:.5rem}
section.claim img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6rem;overflow:auto;font-size:.8rem}
.pill{display:inline-block;padding:.1rem .5rem;border-radius:1rem;background:#eef;margin-right:.4rem;font-size:.8rem}
"""


def _fmt(value: Any) -> str:
    """Short human form of a prediction/measurement (float, dict of floats, list...)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        shown = ", ".join(_fmt(v) for v in value[:6])
        return f"[{shown}{', …' if len(value) > 6 else ''}]"
    return str(value)


def _brief(value: Any, items: int = 6) -> str:
    """Like :func:`_fmt` but a long dict shows its first ``items`` entries (the claim's section has them all)."""
    if isinstance(value, dict) and len(value) > items:
        head = dict(list(value.items())[:items])
        return f"{_fmt(head)}, … (+{len(value) - items} more)"
    return _fmt(value)


def _outcome(row: Row) -> str:
    return (row.verdict or "disagrees") if row.status == "ok" else row.status


def _img(panels: Sequence[Panel], alt: str) -> str:
    data = base64.b64encode(render_png(panels)).decode()
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _latest_claim_rows(rows: list[Row]) -> dict[str, Row]:
    """The most recent reproduce (quick or full) row per claim."""
    latest: dict[str, Row] = {}
    for row in rows:
        if row.kind in ("quick", "full"):
            latest[row.claim] = row  # rows come oldest first
    return latest


def _claim_section(name: str, claim: Claim | None, row: Row) -> str:
    out = [f'<section class="claim" id="claim-{html.escape(name)}" data-claim="{html.escape(name)}">']
    out.append(f"<h3>{html.escape(name)} <span class='{_outcome(row)}'>{_outcome(row)}</span></h3>")
    if claim is not None:
        out.append(f"<p><span class='pill'>{claim.strand}</span><em>{html.escape(claim.reference)}</em></p>")
        out.append(f"<p>{html.escape(claim.statement)}</p>")
    out.append(
        f"<p>prediction: <b>{html.escape(_fmt(row.prediction))}</b> · measurement: "
        f"<b>{html.escape(_fmt(row.measurement))}</b> · error {_fmt(row.error)} vs tolerance {_fmt(row.tolerance)}"
        f" · {row.kind} config, seed {row.seed}, {row.duration_s:.1f} s</p>"
    )
    result = row.result or {}
    panels = [Panel.from_dict(p) for p in result.get("figure", [])]
    if panels:
        out.append(_img(panels, f"figure for {name}"))
    elif row.status == "ok":
        out.append("<p><em>(this claim returned no figure data)</em></p>")
    if result.get("note"):
        out.append(f"<p>{html.escape(result['note'])}</p>")
    if row.traceback:
        out.append(f"<details open><summary>{row.status}</summary><pre>{html.escape(row.traceback)}</pre></details>")
    details = {"config": row.config, "metrics": result.get("metrics", {})}
    out.append("<details><summary>config and metrics</summary><pre>"
               f"{html.escape(json.dumps(details, indent=1, default=str)[:20000])}</pre></details>")
    out.append("</section>")
    return "\n".join(out)


def _interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 half-width for a single value)."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    if arr.size == 1:
        return float(arr[0]), 0.0
    half = stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size)
    return float(arr.mean()), float(half)


def sweep_aggregates(rows: list[Row]) -> list[dict[str, Any]]:
    """Per sweep and config: seeds run, outcome counts, and mean error with its 95% interval over seeds."""
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if row.kind == "sweep":
            groups[(row.claim, row.sweep or "", row.config_hash)].append(row)
    out = []
    for (claim, sweep_id, _), members in groups.items():
        mean, half = _interval([m.error for m in members if m.status == "ok"])
        counts: dict[str, int] = defaultdict(int)
        for m in members:
            counts[_outcome(m)] += 1
        out.append({"claim": claim, "sweep": sweep_id, "config": members[0].config, "seeds": len(members),
                    "counts": dict(counts), "error_mean": mean, "error_ci95": half,
                    "tolerance": members[0].tolerance})
    return out


def _sweep_section(claim: str, sweep_id: str, aggregates: list[dict[str, Any]]) -> str:
    configs = [a["config"] for a in aggregates]
    varying = [k for k in configs[0] if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    out = [f'<section class="claim sweep" data-sweep="{html.escape(sweep_id)}">',
           f"<h3>sweep of {html.escape(claim)} over {', '.join(varying) or '(seeds only)'}</h3>",
           "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in varying)
           + "<th>seeds</th><th>outcomes</th><th>error (mean ± 95% CI)</th><th>tolerance</th></tr>"]
    for a in aggregates:
        cells = "".join(f"<td>{html.escape(_fmt(a['config'].get(k)))}</td>" for k in varying)
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(a["counts"].items()))
        out.append(f"<tr>{cells}<td class='num'>{a['seeds']}</td><td>{outcomes}</td>"
                   f"<td class='num'>{_fmt(a['error_mean'])} ± {_fmt(a['error_ci95'])}</td>"
                   f"<td class='num'>{_fmt(a['tolerance'])}</td></tr>")
    out.append("</table>")
    numeric = varying and all(isinstance(a["config"].get(varying[0]), (int, float)) for a in aggregates)
    if numeric:
        key = varying[0]
        ordered = sorted(aggregates, key=lambda a: a["config"][key])
        xs = [a["config"][key] for a in ordered]
        series = [Series("error (mean over seeds)", xs, [a["error_mean"] for a in ordered], "measurement",
                         yerr=[a["error_ci95"] for a in ordered])]
        tolerances = [a["tolerance"] for a in ordered]
        hlines = []
        if len(set(tolerances)) == 1 and tolerances[0] is not None:
            hlines = [(tolerances[0], "tolerance")]
        elif all(t is not None for t in tolerances):  # the tolerance depends on the config (e.g. ~ n^-1/2)
            series.append(Series("tolerance", xs, tolerances, "reference"))
        out.append(_img([Panel(f"{claim}: error vs {key}", key, "error", series, hlines=hlines)],
                        f"sweep figure for {claim}"))
    out.append("</section>")
    return "\n".join(out)


def run_metadata(rows: list[Row]) -> dict[str, str]:
    """What produced the stored rows: counts by kind and status, seeds, backends, hosts, versions, time span."""
    if not rows:
        return {"stored runs": "0"}

    def tally(values: list[Any]) -> str:
        counts: dict[str, int] = defaultdict(int)
        for value in values:
            counts[str(value)] += 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))

    seeds = sorted({row.seed for row in rows})
    shown = ", ".join(map(str, seeds[:12])) + (f", … ({len(seeds)} seeds)" if len(seeds) > 12 else "")
    return {
        "stored runs": str(len(rows)),
        "by kind": tally([row.kind for row in rows]),
        "by status": tally([_outcome(row) for row in rows]),
        "seeds": shown,
        "backends": tally([row.backend for row in rows]),
        "hosts": tally([row.host for row in rows]),
        "learnmech versions": tally([row.version for row in rows]),
        "first started": min(row.started_at for row in rows),
        "last finished": max(row.finished_at for row in rows),
        "compute time": f"{sum(row.duration_s for row in rows):.1f} s",
    }


def _metadata_section(rows: list[Row], environment: dict[str, str]) -> str:
    items = list(run_metadata(rows).items()) + [(f"report host: {k}", v) for k, v in environment.items()]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items)
    return f"<h2>Run metadata</h2><table id='metadata'>{cells}</table>"


def write_report(db: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 environment: dict[str, str] | None = None) -> Path:
    """Write ``out_dir/report.html`` from the results in ``db``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        rows = store.rows()
    claims = registry()
    latest = _latest_claim_rows(rows)
    order = [n for n in claims if n in latest] + sorted(n for n in latest if n not in claims)
    counts: dict[str, int] = defaultdict(int)
    for row in latest.values():
        counts[_outcome(row)] += 1
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    env = environment or {}
    meta = " · ".join(f"{k} {html.escape(str(v))}" for k, v in env.items())
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>learnmech report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>learnmech report</h1>",
        f"<p class='meta'>generated {generated} by learnmech {__version__} from {html.escape(str(db))}"
        f"{' · ' + meta if meta else ''}</p>",
        "<h2>Verdicts</h2>",
        "<p>" + " · ".join(f"<span class='{k}'>{k}: {v}</span>" for k, v in sorted(counts.items())) + "</p>",
        "<div class='scroll'><table id='verdicts'><tr><th>claim</th><th>strand</th><th>reference</th>"
        "<th>prediction</th><th>measurement</th><th>error</th><th>tolerance</th><th>verdict</th><th>run</th></tr>",
    ]
    for name in order:
        row, claim = latest[name], claims.get(name)
        parts.append(
            f"<tr data-claim='{html.escape(name)}'><td><a href='#claim-{html.escape(name)}'>{html.escape(name)}</a>"
            f"</td><td>{claim.strand if claim else '?'}</td><td>{html.escape(claim.reference) if claim else ''}</td>"
            f"<td>{html.escape(_brief(row.prediction))}</td><td>{html.escape(_brief(row.measurement))}</td>"
            f"<td class='num'>{_fmt(row.error)}</td><td class='num'>{_fmt(row.tolerance)}</td>"
            f"<td class='{_outcome(row)}'>{_outcome(row)}</td>"
            f"<td>{row.kind}, seed {row.seed}, {row.finished_at[:19]}, {row.duration_s:.1f}s</td></tr>"
        )
    parts.append("</table></div>")
    if not order:
        parts.append("<p><em>No claim results stored yet: run <code>learnmech reproduce --quick</code>.</em></p>")
    parts.append("<h2>Claims</h2>")
    parts.extend(_claim_section(name, claims.get(name), latest[name]) for name in order)
    aggregates = sweep_aggregates(rows)
    if aggregates:
        parts.append("<h2>Sweeps</h2>")
        by_sweep: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for a in aggregates:
            by_sweep[(a["claim"], a["sweep"])].append(a)
        parts.extend(_sweep_section(c, s, aggs) for (c, s), aggs in by_sweep.items())
    parts.append(_metadata_section(rows, env))
    parts.append("</body></html>")
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)  # never leave a half-written report behind
    return path
