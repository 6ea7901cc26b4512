"""The ``learnmech`` command: list, reproduce, sweep, fit, report, results.

Exit codes (DESIGN.md): 0 when the run completed, whatever the verdicts; 2 on bad arguments (one-line message);
1 on an internal failure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_OUT = "learnmech-out"


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of argparse's usage dump
        raise UsageError(f"{self.prog}: {message}")


def _claim_names(text: str | None, flag: str = "--claims") -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{flag}: expected a comma-separated list of claim names")
    from .claims import registry

    known = registry()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"{flag}: unknown claim(s) {', '.join(unknown)}; run `learnmech list` for the names")
    return names


def _writable_dir(path: str, flag: str) -> Path:
    """Create ``path`` if needed and prove it is writable before any long work starts."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".learnmech-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: not a writable directory ({exc.strerror or exc})") from None
    return out


def _db_path(args: argparse.Namespace, *, must_exist: bool = False) -> str:
    db = args.db or os.path.join(args.out if getattr(args, "out", None) else DEFAULT_OUT, "results.db")
    if must_exist and not Path(db).is_file():
        raise UsageError(f"--db {db}: no such results database (run `learnmech reproduce` first)")
    return db


def _parse_value(text: str, default: Any) -> Any:
    """A grid value typed like the claim's default for that key."""
    if isinstance(default, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer like the default {default!r}, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number like the default {default!r}, got {text!r}") from None
    if isinstance(default, str):
        return text
    return json.loads(text)


def _parse_grid(items: Sequence[str], claim_name: str, quick: bool) -> dict[str, list[Any]]:
    from .claims import get

    base = get(claim_name).config(quick)
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UsageError(f"--grid {item!r}: expected key=v1,v2,...")
        if key not in base:
            raise UsageError(f"--grid {key}: claim {claim_name} has no config key {key!r}; keys: {', '.join(base)}")
        try:
            grid[key] = [_parse_value(v.strip(), base[key]) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise UsageError(f"--grid {key}: {exc}") from None
        bad = [v for v in grid[key] if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise UsageError(f"--grid {key}: expected finite numbers, got {bad[0]}")
        if not grid[key]:
            raise UsageError(f"--grid {item!r}: expected at least one value")
    return grid


def _environment_and_report(db: str, out: str) -> Path:
    from .report import write_report
    from .run.runner import environment

    return write_report(db, out, environment())


def _print_summary(summary: Any, report: Path) -> None:
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.counts.items())) or "nothing new"
    print(f"ran {len(summary.rows)} (skipped {summary.skipped} already stored) -> {counts}")
    print(f"report: {report.resolve()}")


def cmd_list(args: argparse.Namespace) -> int:
    from .claims import registry

    for claim in registry().values():
        print(f"{claim.name:20s} {claim.strand:10s} {claim.reference}")
        if args.verbose:
            print(f"{'':31s}{claim.statement}")
    return 0


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: expected an integer >= 1, got {args.workers}")
    if args.address and args.backend != "ray":
        raise UsageError("--address only applies to --backend ray")
    return {"backend": args.backend, "workers": args.workers, "address": args.address, "force": args.force}


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .run import reproduce

    names = _claim_names(args.claims)
    if args.seed < 0:
        raise UsageError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    options = _run_options(args)  # every argument is checked before anything is created on disk
    out = _writable_dir(args.out, "--out")
    db = _db_path(args)
    summary = reproduce(names, quick=args.quick, seed=args.seed, seeds=args.seeds, db=db, **options)
    _print_summary(summary, _environment_and_report(db, str(out)))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .run import sweep

    _claim_names(args.claim, "CLAIM")
    if args.seeds < 1:
        raise UsageError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    grid = _parse_grid(args.grid, args.claim, not args.full)
    if not grid:
        raise UsageError("--grid: expected at least one KEY=V1,V2,... (a sweep varies some config key)")
    options = _run_options(args)
    out = _writable_dir(args.out, "--out")
    db = _db_path(args)
    summary = sweep(args.claim, grid, args.seeds, quick=not args.full, db=db, **options)
    _print_summary(summary, _environment_and_report(db, str(out)))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .laws.cli import run_fit

    _writable_dir(args.out, "--out")
    try:
        table = run_fit(args.csv, args.n, args.d, args.loss, exclude_highest=args.exclude_highest, out_dir=args.out,
                        n_bootstrap=args.bootstrap, seed=args.seed)
    except ValueError as exc:  # a bad CSV or bad option is the user's input, not our failure
        raise UsageError(f"fit: {exc}") from None
    print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    db = _db_path(args, must_exist=True)
    out = _writable_dir(args.out, "--out")
    print(f"report: {_environment_and_report(db, str(out)).resolve()}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .run import Store

    db = _db_path(args, must_exist=True)
    with Store(db) as store:
        rows = [r.to_dict() for r in store.rows(claim=args.claim)]
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
        return 0
    columns = ["claim", "kind", "seed", "config_hash", "status", "verdict", "error", "tolerance", "prediction",
               "measurement", "diverged_step", "duration_s", "started_at", "finished_at", "version", "backend",
               "config"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([json.dumps(row[c]) if isinstance(row[c], (dict, list)) else row[c] for c in columns])
    sys.stdout.write(buffer.getvalue())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="learnmech", description="Falsifiable predictions of learning mechanics, checked.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list the claims")
    p.add_argument("-v", "--verbose", action="store_true", help="also print each claim's statement")
    p.set_defaults(func=cmd_list)

    def run_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=["local", "ray"], default="local")
        p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto) for --backend ray")
        p.add_argument("--workers", type=int, default=None, help="local processes (default: min(cores, runs))")
        p.add_argument("--db", default=None, help=f"results database (default: OUT/results.db, OUT={DEFAULT_OUT})")
        p.add_argument("--out", default=DEFAULT_OUT, help="directory for the report")
        p.add_argument("--force", action="store_true", help="re-run and overwrite rows already stored")

    p = sub.add_parser("reproduce", help="run the claims and write the report")
    p.add_argument("--quick", action="store_true", help="the small configs (seconds per claim)")
    p.add_argument("--claims", default=None, help="comma-separated claim names (default: all)")
    p.add_argument("--seed", type=int, default=0, help="the (first) seed; each claim's run is deterministic given it")
    p.add_argument("--seeds", type=int, default=None,
                   help="run N consecutive seeds per claim (SEED .. SEED+N-1); the report shows the verdict per seed")
    run_flags(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("sweep", help="run one claim over a config grid and seeds")
    p.add_argument("claim")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="repeatable")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    p.add_argument("--full", action="store_true", help="grid over the full config instead of the quick one")
    run_flags(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("fit", help="fit L(N, D) = E + A/N^alpha + B/D^beta to your runs (CSV)")
    p.add_argument("csv")
    p.add_argument("--n", required=True, help="column with parameter counts N")
    p.add_argument("--d", required=True, help="column with training tokens/examples D")
    p.add_argument("--loss", required=True, help="column with the loss")
    p.add_argument("--exclude-highest", type=int, default=0, help="drop the K highest-loss points")
    p.add_argument("--bootstrap", type=int, default=4000, help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".", help="directory for the figure")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("report", help="(re)write the HTML report from the database")
    p.add_argument("--db", default=None)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="print stored results")
    p.add_argument("--db", default=None)
    p.add_argument("--out", default=DEFAULT_OUT, help=argparse.SUPPRESS)
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--claim", default=None)
    p.set_defaults(func=cmd_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done, 2 bad arguments, 1 internal failure)."""
    from .run.runner import BackendError
    from .run.store import StoreError

    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, BackendError) as exc:  # an unusable --db, --backend or --address: the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("interrupted: finished runs are stored; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("error: internal failure (traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
