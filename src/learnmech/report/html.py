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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1440px;color:#222;
padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.88rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto} td.num,#verdicts td:nth-child(-n+2){white-space:nowrap}
#verdicts td:nth-child(3){min-width:8rem;max-width:12rem;font-size:.8rem}
#verdicts td:nth-child(4),#verdicts td:nth-child(5){max-width:11rem;font-size:.8rem;overflow-wrap:break-word}
#verdicts td:nth-child(6){min-width:7rem;max-width:12rem}
small.units{white-space:normal;display:inline-block;text-align:left;color:#555}
#verdicts td:nth-child(7){min-width:8rem;font-size:.82rem}
#verdicts td:nth-child(9){min-width:10rem;font-size:.8rem}
.chip{display:inline-block;min-width:1.1rem;text-align:center;border-radius:.3rem;margin:1px;font-size:.72rem;
border:1px solid currentColor}
.mixed{color:#6a1b9a;font-weight:600}
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


def _latest_claim_rows(rows: list[Row]) -> dict[str, list[Row]]:
    """Per claim, the rows of its most recent reproduce (quick or full, same config), one per seed, by seed."""
    newest: dict[str, Row] = {}
    for row in rows:
        if row.kind in ("quick", "full"):
            newest[row.claim] = row  # rows come oldest first
    latest: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        head = newest.get(row.claim)
        if head is not None and row.kind == head.kind and row.config_hash == head.config_hash:
            latest[row.claim].append(row)
    return {name: sorted(group, key=lambda r: r.seed) for name, group in latest.items()}


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def _controls(row: Row) -> list[dict[str, Any]]:
    return list((row.result or {}).get("controls") or [])


def _controls_cell(row: Row) -> str:
    """``k/n rejected`` with each control's name and outcome; the verdict has power only when k = n >= 1."""
    controls = _controls(row)
    if row.status != "ok":
        return "–"
    if not controls:
        return "<span class='inconclusive'>none</span>"
    rejected = sum(c.get("verdict") == "disagrees" for c in controls)
    names = "; ".join(f"{c.get('name')}: {'rejected' if c.get('verdict') == 'disagrees' else 'NOT rejected'}"
                      for c in controls)
    css = "agrees" if rejected == len(controls) else "inconclusive"
    return f"<span class='{css}' title='{html.escape(names)}'>{rejected}/{len(controls)} rejected</span>" \
           f"<br><small>{html.escape(names)}</small>"


def _error_cell(row: Row) -> str:
    if row.status == "failed":
        return f"<small>{html.escape(_last_line(row.traceback))}</small>"
    if row.status == "diverged":
        return f"<small>diverged at step {row.diverged_step}</small>"
    units = (row.result or {}).get("units") or ""
    text = f"{_fmt(row.error)} / {_fmt(row.tolerance)}"
    return f"{text}<br><small class='units'>{html.escape(units)}</small>" if units else text


def _seed_range(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _seeds_cell(group: list[Row]) -> str:
    """How many seeds stand behind the verdict, and the verdict of each (all must agree: the protocol)."""
    counts: dict[str, int] = defaultdict(int)
    for row in group:
        counts[_outcome(row)] += 1
    summary = ", ".join(f"<span class='{k}'>{k} {v}</span>" for k, v in sorted(counts.items()))
    label = "seed" if len(group) == 1 else "seeds"
    chips = "".join(f"<span class='chip {_outcome(r)}' title='seed {r.seed}: {_outcome(r)}'>{r.seed}</span>"
                    for r in group) if len(group) > 1 else ""
    seconds = max(r.duration_s for r in group)
    return (f"{group[0].kind}, {len(group)} {label} ({_seed_range([r.seed for r in group])}): {summary}"
            f"<br>{chips}<br><small>≤ {seconds:.1f} s per seed, {group[-1].finished_at[:16]}</small>")


def _group_outcome(group: list[Row]) -> str:
    """The claim's verdict across seeds: the common one, or ``mixed`` when seeds disagree."""
    outcomes = {_outcome(r) for r in group}
    return outcomes.pop() if len(outcomes) == 1 else "mixed"


def _claim_section(name: str, claim: Claim | None, group: list[Row]) -> str:
    row = group[0]
    outcome = _group_outcome(group)
    out = [f'<section class="claim" id="claim-{html.escape(name)}" data-claim="{html.escape(name)}">']
    out.append(f"<h3>{html.escape(name)} <span class='{outcome}'>{outcome}</span></h3>")
    if claim is not None:
        out.append(f"<p><span class='pill'>{claim.strand}</span><em>{html.escape(claim.reference)}</em></p>")
        out.append(f"<p>{html.escape(claim.statement)}</p>")
    units = (row.result or {}).get("units") or ""
    out.append(
        f"<p>prediction: <b>{html.escape(_brief(row.prediction))}</b> · measurement: "
        f"<b>{html.escape(_brief(row.measurement))}</b> · error {_fmt(row.error)} vs tolerance {_fmt(row.tolerance)}"
        f"{' (' + html.escape(units) + ')' if units else ''} · {row.kind} config, seed {row.seed}, "
        f"{row.duration_s:.1f} s</p>"
    )
    controls = _controls(row)
    if controls:
        out.append("<table class='controls'><tr><th>negative control</th><th>rival statement</th><th>prediction</th>"
                   "<th>measurement</th><th>error / tolerance</th><th>outcome</th></tr>")
        for c in controls:
            rejected = c.get("verdict") == "disagrees"
            out.append(
                f"<tr><td>{html.escape(str(c.get('name')))}</td><td>{html.escape(str(c.get('statement')))}</td>"
                f"<td>{html.escape(_brief(c.get('prediction')))}</td><td>{html.escape(_brief(c.get('measurement')))}"
                f"</td><td class='num'>{_fmt(c.get('error'))} / {_fmt(c.get('tolerance'))}</td>"
                f"<td class='{'agrees' if rejected else 'inconclusive'}'>{'rejected' if rejected else 'NOT rejected'}"
                "</td></tr>")
        out.append("</table>")
    elif row.status == "ok":
        out.append("<p class='inconclusive'>No negative control: the verdict is inconclusive (the experiment has not "
                   "shown it could reject a rival).</p>")
    if len(group) > 1:
        out.append("<table class='seeds'><tr><th>seed</th><th>verdict</th><th>error / tolerance</th>"
                   "<th>controls</th><th>time</th></tr>")
        for r in group:
            out.append(f"<tr><td class='num'>{r.seed}</td><td class='{_outcome(r)}'>{_outcome(r)}</td>"
                       f"<td class='num'>{_error_cell(r)}</td><td>{_controls_cell(r)}</td>"
                       f"<td class='num'>{r.duration_s:.1f} s</td></tr>")
        out.append("</table>")
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
    with Store(db, readonly=True) as store:  # the report only reads: never a schema written into the file
        rows = store.rows()
        sweep_rows = store.sweep_rows()  # with each grid point's seeds found stored by an earlier run
    claims = registry()
    latest = _latest_claim_rows(rows)
    order = [n for n in claims if n in latest] + sorted(n for n in latest if n not in claims)
    counts: dict[str, int] = defaultdict(int)
    for group in latest.values():
        counts[_group_outcome(group)] += 1
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
        "<th>prediction</th><th>measurement</th><th>error / tolerance</th><th>negative controls</th><th>verdict</th>"
        "<th>config and seeds</th></tr>",
    ]
    for name in order:
        group, claim = latest[name], claims.get(name)
        row, outcome = group[0], _group_outcome(group)
        parts.append(
            f"<tr data-claim='{html.escape(name)}'><td><a href='#claim-{html.escape(name)}'>{html.escape(name)}</a>"
            f"</td><td>{claim.strand if claim else '?'}</td><td>{html.escape(claim.reference) if claim else ''}</td>"
            f"<td>{html.escape(_brief(row.prediction, 3))}</td><td>{html.escape(_brief(row.measurement, 3))}</td>"
            f"<td class='num'>{_error_cell(row)}</td><td>{_controls_cell(row)}</td>"
            f"<td class='{outcome}'>{outcome}</td><td>{_seeds_cell(group)}</td></tr>"
        )
    parts.append("</table></div>")
    if not order:
        parts.append("<p><em>No claim results stored yet: run <code>learnmech reproduce --quick</code>.</em></p>")
    parts.append("<h2>Claims</h2>")
    parts.extend(_claim_section(name, claims.get(name), latest[name]) for name in order)
    aggregates = sweep_aggregates(sweep_rows)
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
