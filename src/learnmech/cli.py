"""The ``learnmech`` command: list, reproduce, sweep, fit, report, results.

Exit codes: 0 when the run completed, whatever the verdicts; 2 on bad arguments (one-line message);
1 on an internal failure; 130 on Ctrl-C and 143 on SIGTERM (finished runs stay stored; the same command resumes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_OUT = "learnmech-out"


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it unwinds like Ctrl-C: stored rows kept, workers stopped."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


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


def _split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` on the commas outside brackets and quotes, so JSON lists stay whole:
    ``[64,128],[32,64]`` -> ``["[64,128]", "[32,64]"]``. ValueError for unbalanced brackets."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {text!r}")
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth or quote:
        raise ValueError(f"unbalanced brackets or quotes in {text!r}")
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _parse_value(text: str, default: Any) -> Any:
    """A grid value typed like the claim's default for that key (a JSON list for a list-valued key)."""
    if isinstance(default, (list, tuple)):
        example = json.dumps(list(default)[:2], separators=(",", ":"))
        if not text.startswith("["):
            raise ValueError(f"expected JSON lists like {example} (quote the flag: --grid 'KEY={example}'), "
                             f"got {text!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON list like {example}, got {text!r} ({exc.msg})") from None
        return value
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
    """``--grid KEY=V1,V2`` flags -> {key: values}, every value checked against the claim's defaults
    (:func:`learnmech.run.runner.check_config`) before anything runs; UsageError naming the flag otherwise."""
    from .claims import get
    from .run.jobs import check_key
    from .run.runner import check_config

    claim = get(claim_name)
    base = claim.config(quick)
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UsageError(f"--grid {item!r}: expected KEY=V1,V2,...")
        try:
            check_key(claim, key, name=f"--grid {key}")
        except ValueError as exc:
            raise UsageError(f"{exc} (see `learnmech sweep {claim_name} --help`)") from None
        if key in grid:
            raise UsageError(f"--grid {key}: given twice; put all its values in one flag: --grid {key}=V1,V2,...")
        try:
            grid[key] = [_parse_value(v, base[key]) for v in _split_values(values)]
            for value in grid[key]:
                check_config(claim, {key: value}, name="--grid")
        except ValueError as exc:
            message = str(exc)
            raise UsageError(message if message.startswith("--grid") else f"--grid {key}: {message}") from None
        bad = [v for v in grid[key] if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise UsageError(f"--grid {key}: expected finite numbers, got {bad[0]}")
        if not grid[key]:
            raise UsageError(f"--grid {item!r}: expected at least one value")
    return grid


def _config_keys_epilog(claim_name: str) -> str:
    """The sweep help's list of a claim's config keys with their quick and full defaults."""
    from .claims import registry

    claims = registry()
    if claim_name not in claims:
        return f"unknown claim {claim_name!r}; run `learnmech list` for the names"
    claim = claims[claim_name]

    def text(value: Any) -> str:
        return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value

    width = max(len(k) for k in claim.quick) if claim.quick else 3
    lines = [f"config keys of {claim_name} (for --grid KEY=V1,V2,...; default quick | full):"]
    lines += [f"  {key:<{width}}  {text(claim.quick[key])} | {text(claim.full[key])}" for key in claim.quick]
    lines.append("list-valued keys take JSON lists, e.g. --grid 'KEY=[1,2],[3,4]' (two grid values)")
    return "\n".join(lines)


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
    if args.seed < 0:
        raise UsageError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.seeds < 1:
        raise UsageError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    grid = _parse_grid(args.grid, args.claim, not args.full)
    if not grid:
        raise UsageError("--grid: expected at least one KEY=V1,V2,... (a sweep varies some config key)")
    options = _run_options(args)
    out = _writable_dir(args.out, "--out")
    db = _db_path(args)
    summary = sweep(args.claim, grid, args.seeds, quick=not args.full, seed=args.seed, db=db, **options)
    _print_summary(summary, _environment_and_report(db, str(out)))
    return 0


def run_fit(csv_path: str, n_col: str, d_col: str, loss_col: str, exclude_highest: int = 0, out_dir: str = ".",
            n_bootstrap: int = 4000, seed: int = 0) -> str:
    """Fit the Chinchilla law to the runs in ``csv_path`` and write ``scaling_fit.png`` into ``out_dir``.

    The fit is :func:`learnmech.laws.cli.fit_csv` (see it for the arguments); this draws its panel with the report's
    renderer. Returns the printable table: parameters with intervals, the exponents of N_opt(C) and D_opt(C) with
    intervals, and the figure's path. ValueError (one line) for bad input or an unwritable ``out_dir``.
    """
    from .laws.cli import FIGURE_NAME, fit_csv
    from .report import render_png

    result = fit_csv(csv_path, n_col, d_col, loss_col, exclude_highest=exclude_highest, n_bootstrap=n_bootstrap,
                     seed=seed)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        figure_path = out / FIGURE_NAME
        figure_path.write_bytes(render_png([result.panel], dpi=110))
    except OSError as exc:
        raise ValueError(f"cannot write the figure into {out_dir!r}: {exc}") from None
    return result.table(str(figure_path))


def cmd_fit(args: argparse.Namespace) -> int:
    _writable_dir(args.out, "--out")
    try:
        table = run_fit(args.csv, args.n, args.d, args.loss, exclude_highest=args.exclude_highest, out_dir=args.out,
                        n_bootstrap=args.bootstrap, seed=args.seed)
    except ValueError as exc:  # a bad CSV or bad option is the user's input, not our failure
        raise UsageError(f"fit: {exc}") from None
    print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .run import Store

    db = _db_path(args, must_exist=True)
    Store(db, readonly=True).close()  # an unusable --db is refused before --out is created
    out = _writable_dir(args.out, "--out")
    print(f"report: {_environment_and_report(db, str(out)).resolve()}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .claims import registry
    from .run import Store

    db = _db_path(args, must_exist=True)
    with Store(db, readonly=True) as store:  # reading never writes (no schema into an empty or foreign file)
        rows = [r.to_dict() for r in store.rows(claim=args.claim)]
        if args.claim is not None and not rows and args.claim not in registry():
            stored = sorted({r.claim for r in store.rows()})
            raise UsageError(f"--claim {args.claim}: unknown claim with no stored rows; stored claims: "
                             f"{', '.join(stored) or '(none)'}")
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


def build_parser(sweep_claim: str | None = None) -> argparse.ArgumentParser:
    """The ``learnmech`` parser; ``sweep_claim`` adds that claim's config keys to ``sweep --help``."""
    from . import __version__

    parser = _Parser(prog="learnmech", description="Falsifiable predictions of learning mechanics, checked.")
    parser.add_argument("--version", action="version", version=f"learnmech {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("list", help="list the claims")
    p.add_argument("-v", "--verbose", action="store_true", help="also print each claim's statement")
    p.set_defaults(func=cmd_list)

    def run_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="local: a process pool on this machine (default); ray: a Ray cluster")
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

    epilog = (_config_keys_epilog(sweep_claim) if sweep_claim else
              "run `learnmech sweep CLAIM --help` to list CLAIM's config keys and defaults")
    p = sub.add_parser("sweep", help="run one claim over a config grid and seeds", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("claim", metavar="CLAIM", help="the claim to sweep (see `learnmech list`)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="values for one config key of CLAIM (keys below); repeat the flag for more keys; a list-valued"
                        " key takes JSON lists: --grid 'widths=[64,128],[256,512]'")
    p.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds per grid point: SEED .. SEED+N-1")
    p.add_argument("--full", action="store_true", help="grid over the full config instead of the quick one")
    run_flags(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("fit", help="fit L(N, D) = E + A/N^alpha + B/D^beta to your runs (CSV)")
    p.add_argument("csv", help="CSV file with one row per training run")
    p.add_argument("--n", required=True, help="column with parameter counts N")
    p.add_argument("--d", required=True, help="column with training tokens/examples D")
    p.add_argument("--loss", required=True, help="column with the loss")
    p.add_argument("--exclude-highest", type=int, default=0, help="drop the K highest-loss points")
    p.add_argument("--bootstrap", type=int, default=4000, help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    p.add_argument("--out", default=".", help="directory for the figure")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("report", help="(re)write the HTML report from the database")
    p.add_argument("--db", default=None, help=f"results database (default: OUT/results.db, OUT={DEFAULT_OUT})")
    p.add_argument("--out", default=DEFAULT_OUT, help="directory for report.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="print stored results")
    p.add_argument("--db", default=None, help=f"results database (default: {DEFAULT_OUT}/results.db)")
    p.add_argument("--out", default=DEFAULT_OUT, help=argparse.SUPPRESS)
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default csv)")
    p.add_argument("--claim", default=None, help="only this claim's rows")
    p.set_defaults(func=cmd_results)

    from .forecast.cli import add_parser as add_forecast_parser  # `learnmech forecast` lives in the forecast package

    add_forecast_parser(sub)
    return parser


def _help_claim(argv: Sequence[str]) -> str | None:
    """The CLAIM of ``sweep CLAIM ... --help``, so the help can list its config keys."""
    if len(argv) < 2 or argv[0] != "sweep" or not ({"-h", "--help"} & set(argv)):
        return None
    return next((a for a in argv[1:] if not a.startswith("-")), None)


def _check_plugins() -> None:
    """A bad LEARNMECH_CLAIM_MODULES is the user's to fix: one line, exit 2 (not a traceback)."""
    from .claims import PLUGIN_ENV, registry

    try:
        registry()
    except ValueError as exc:
        message = str(exc)
        raise UsageError(message if message.startswith(PLUGIN_ENV) else f"{PLUGIN_ENV}: {message}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 done, 2 bad arguments, 1 internal failure, 130 Ctrl-C, 143 SIGTERM)."""
    from .run.runner import BackendError
    from .run.store import StoreError

    argv = list(sys.argv[1:] if argv is None else argv)
    previous = None
    try:
        # SIGTERM (kill, a scheduler's timeout) unwinds like Ctrl-C: finished rows stay stored, workers stop.
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a worker thread): leave signals alone
        pass
    try:
        if argv and argv[0] not in ("fit", "-h", "--help", "--version"):
            _check_plugins()
        args = build_parser(_help_claim(argv)).parse_args(argv)
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe (`| head`) shows here, inside the handler below
        return code
    except BrokenPipeError:
        # The reader went away (`learnmech results | head -1`): not an error of ours. Point stdout at /dev/null so
        # the interpreter's final flush does not complain again, and exit like a process killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, BackendError) as exc:  # an unusable --db, --backend or --address: the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except Terminated:
        print("terminated: finished runs are stored; re-run the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: finished runs are stored; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("error: internal failure (traceback above)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
