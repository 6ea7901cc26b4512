"""Run every benchmark side by side with its peer and write BENCHMARKS.md.

    .venv/bin/python benchmarks/run.py            # full (peers installed on first use under benchmarks/.peers/)
    .venv/bin/python benchmarks/run.py --quick    # smaller sizes, for a smoke run
    .venv/bin/python benchmarks/run.py --only kernels_analytic,hessian

Each ``benchmarks/bench_*.py`` module exposes ``run(quick) -> list[dict]`` with keys what, peer, ours_s, peer_s,
ratio, target, met, agreement; peers run in their own throwaway venvs, agreement is checked before timing. The
modules state ``ratio`` in their own sense (ours/peer or peer/ours, or HVP counts); the table shows one uniform
speed-up = peer seconds / our seconds, and each module's own ratio in its notes. Rows also go to
``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

MODULES = ["kernels_analytic", "empirical_ntk", "hessian", "esd", "scaling_fit", "stax", "sharpness_tracking"]


def reproduce_timing(quick: bool) -> dict:
    """Wall time of `learnmech reproduce` (all claims) in a scratch directory; target 3 min quick / 15 min full."""
    out = ROOT / "benchmarks" / ".peers" / ("reproduce-quick" if quick else "reproduce-full")
    shutil.rmtree(out, ignore_errors=True)  # a cold run: no stored rows or cached sub-runs to resume from
    cmd = [str(ROOT / ".venv" / "bin" / "learnmech"), "reproduce", "--out", str(out), "--force"]
    cmd += ["--quick"] if quick else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    target = 180.0 if quick else 900.0
    summary = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else proc.stderr[-300:]
    return {"what": f"learnmech reproduce {'--quick' if quick else '(full)'}", "peer": "-", "ours_s": seconds,
            "peer_s": None, "ratio": None, "target": f"<= {target / 60:.0f} min on 2 cores",
            "met": proc.returncode == 0 and seconds <= target, "agreement": summary}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numpy {numpy.__version__}")


def speedup(row: dict) -> float | None:
    """peer time / our time (> 1: we are faster), when both were measured."""
    ours, peer = row.get("ours_s"), row.get("peer_s")
    if isinstance(ours, (int, float)) and isinstance(peer, (int, float)) and ours > 0 and math.isfinite(peer):
        return peer / ours
    return None


def _notes(row: dict) -> str:
    """The agreement text plus the module's own ratio (its definition is in the module's docstring)."""
    ratio = row.get("ratio")
    has_ratio = isinstance(ratio, (int, float)) and math.isfinite(ratio)
    return str(row["agreement"]) + (f" (module's ratio: {_fmt(ratio)})" if has_ratio else "")


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(MODULES)},reproduce")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--render", action="store_true", help="only rewrite the table from benchmarks/results.json")
    args = parser.parse_args()
    selected = args.only.split(",") if args.only else [*MODULES, "reproduce"]
    if args.render:
        args.only, selected = "render", []
    host = machine()  # before any benchmark changes torch's thread count
    rows: list[dict] = []
    for name in selected:
        print(f"== {name}", flush=True)
        try:
            if name == "reproduce":
                new = [reproduce_timing(quick=True)] + ([] if args.quick else [reproduce_timing(quick=False)])
            else:
                new = importlib.import_module(f"bench_{name}").run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            new = [{"what": name, "peer": "?", "ours_s": None, "peer_s": None, "ratio": None, "target": "?",
                    "met": False, "agreement": "benchmark failed: " + traceback.format_exc().splitlines()[-1]}]
        for row in new:
            row["module"] = name
            print("   " + " | ".join(f"{k}={_fmt(row.get(k))}" for k in ("what", "ours_s", "peer_s", "ratio", "met")))
        rows.extend(new)
    saved = HERE / "results.json"
    saved_before = saved.exists()
    if not args.quick:
        if args.only and saved.exists():  # a partial re-run replaces its modules' rows and keeps the others
            order = [*MODULES, "reproduce"]
            kept = [r for r in json.loads(saved.read_text()) if r.get("module") not in selected]
            rows = sorted(kept + rows, key=lambda r: order.index(r["module"]) if r.get("module") in order else 99)
        saved.write_text(json.dumps(rows, indent=1, default=str))
    header = ("| what | peer | ours (s) | peer (s) | speed-up (peer/ours) | target | met | agreement and notes |\n"
              "|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['what']} | {r['peer']} | {_fmt(r['ours_s'])} | {_fmt(r['peer_s'])} | {_fmt(speedup(r))} | "
             f"{r['target']} | {'yes' if r['met'] else '**no**'} | {_notes(r)} |" for r in rows]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join([header, *lines])
    print(table)
    if args.quick:
        return 0
    text = Path(args.output).read_text() if Path(args.output).exists() else ""
    marker_start, marker_end = "<!-- results:start -->", "<!-- results:end -->"
    if args.only and not args.render and not saved_before:
        # A partial run with no saved rows to merge into: its rows get a block of their own (one per module set),
        # so the other modules' measured rows in the main block are kept as they were.
        tag = "+".join(selected)
        marker_start, marker_end = f"<!-- results:{tag}:start -->", f"<!-- results:{tag}:end -->"
    measured = f"Measured {stamp} on: {host}"
    if args.render and marker_start in text:  # same measurements: keep when and where they were taken
        measured = next((line for line in text.split(marker_start)[1].splitlines() if line.startswith("Measured")),
                        measured)
    block = f"{marker_start}\n{measured}\n\n{table}\n{marker_end}"
    if marker_start in text and marker_end in text:
        text = text.split(marker_start)[0] + block + text.split(marker_end)[1]
    else:
        text = text + "\n" + block + "\n"
    Path(args.output).write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
