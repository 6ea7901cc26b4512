"""Generate the README's claims table and timings from a results database, so no number in it is typed by hand.

    python tools/readme_tables.py --db learnmech-out/results.db            # print the block
    python tools/readme_tables.py --db learnmech-out/results.db --write    # replace it in README.md
    python tools/readme_tables.py --check                                  # README block unedited since generated?

The block sits between ``<!-- claims:start -->`` and ``<!-- claims:end -->``. Per claim and per config kind
(``quick``/``full``) it reports the rows of the latest config run of that kind (all its seeds, as the HTML report
does): the verdict across seeds, error / tolerance with the claim's units (first seed, plus the range of
error/tolerance over seeds), the negative controls rejected (k/n) and the seeds behind it. Timings are the wall time
from the first start to the last finish of each kind's runs and their summed compute time.

The block ends with a digest of its own text: ``--check`` (and the test suite) recompute it, so a hand edit of any
number in the README is caught.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- claims:start -->", "<!-- claims:end -->"
DIGEST = "<!-- claims:digest {} -->"
KINDS = ("quick", "full")


def _latest(rows: list[Any], kind: str) -> dict[str, list[Any]]:
    """Per claim, the rows of its newest config of ``kind``, one per seed (newest row per seed), by seed."""
    newest: dict[str, Any] = {}
    for row in rows:  # oldest first
        if row.kind == kind:
            newest[row.claim] = row
    groups: dict[str, dict[int, Any]] = defaultdict(dict)
    for row in rows:
        head = newest.get(row.claim)
        if head is not None and row.kind == kind and row.config_hash == head.config_hash:
            groups[row.claim][row.seed] = row
    return {claim: [by_seed[s] for s in sorted(by_seed)] for claim, by_seed in groups.items()}


def _outcome(row: Any) -> str:
    return (row.verdict or "?") if row.status == "ok" else row.status


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3g}"


def _verdict_cell(group: list[Any]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for row in group:
        counts[_outcome(row)] += 1
    seeds = f"{len(group)} seed{'s' if len(group) != 1 else ''}"
    if len(counts) == 1:
        outcome = next(iter(counts))
        shown = f"**{outcome}**" if outcome != "agrees" else outcome
        return f"{shown} ({seeds})"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"**mixed**: {parts} ({seeds})"


def _error_cell(group: list[Any]) -> str:
    first = group[0]
    if first.status != "ok":
        last = (first.traceback or "").strip().splitlines()
        return f"{first.status}: {last[-1][:80] if last else 'no traceback'}".replace("|", "/")
    units = ((first.result or {}).get("units") or "").replace("|", "\\|")
    text = f"{_number(first.error)} / {_number(first.tolerance)}" + (f" {units}" if units else "")
    if len(group) > 1:
        ratios = [r.error / r.tolerance for r in group if r.status == "ok" and r.error is not None
                  and r.tolerance and math.isfinite(r.error)]
        if ratios:
            text += f" (seed {first.seed}; error/tolerance {min(ratios):.2g}–{max(ratios):.2g} over seeds)"
    return text


def _controls_cell(group: list[Any]) -> str:
    tallies = []
    for row in group:
        controls = (row.result or {}).get("controls") or []
        if row.status == "ok":
            rejected = sum(1 for c in controls if c.get("verdict") == "disagrees")
            tallies.append(f"{rejected}/{len(controls)}")
    if not tallies:
        return "–"
    distinct = sorted(set(tallies))
    return distinct[0] if len(distinct) == 1 else " to ".join((distinct[0], distinct[-1])) + " (by seed)"


def _timing(rows: list[Any], kind: str, groups: dict[str, list[Any]]) -> str | None:
    chosen = [row for group in groups.values() for row in group]
    if not chosen:
        return None
    start = min(datetime.fromisoformat(r.started_at) for r in chosen)
    end = max(datetime.fromisoformat(r.finished_at) for r in chosen)
    seeds = sorted({r.seed for r in chosen})
    compute = sum(r.duration_s for r in chosen)
    slowest = max(chosen, key=lambda r: r.duration_s)
    return (f"`{kind}`: {len(groups)} claims x {len(seeds)} seed(s) in {_seconds((end - start).total_seconds())} "
            f"wall time (first start to last finish; {_seconds(compute)} of compute summed over runs; slowest run "
            f"`{slowest.claim}` seed {slowest.seed}, {_seconds(slowest.duration_s)})")


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def render(db: str | Path) -> str:
    """The README block (between and including the markers) for the results in ``db``."""
    from learnmech.claims import registry
    from learnmech.run import Store

    with Store(db, readonly=True) as store:
        rows = store.rows()
    claims = registry()
    by_kind = {kind: _latest(rows, kind) for kind in KINDS}
    names = [n for n in claims if any(n in g for g in by_kind.values())]
    names += sorted({n for g in by_kind.values() for n in g} - set(names))
    versions = ", ".join(sorted({r.version for g in by_kind.values() for group in g.values() for r in group}))
    lines = [
        START,
        f"Generated by `tools/readme_tables.py` from a results database ({len(rows)} stored runs; learnmech "
        f"{versions or '?'}). Do not edit by hand: rerun the script. A disagreement is a finding, not a failure: "
        "each claim's docstring and figure say what was measured.",
        "",
    ]
    lines += [f"- {t}" for t in (_timing(rows, kind, by_kind[kind]) for kind in KINDS) if t]
    lines += [
        "",
        "| claim | strand | reference | quick: verdict | quick: error / tolerance | quick: controls rejected "
        "| full: verdict | full: error / tolerance | full: controls rejected |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        claim = claims.get(name)
        cells = [f"`{name}`", claim.strand if claim else "?", (claim.reference if claim else "?").replace("|", "/")]
        for kind in KINDS:
            group = by_kind[kind].get(name)
            cells += [_verdict_cell(group), _error_cell(group), _controls_cell(group)] if group else ["–"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    body = "\n".join(lines)
    return body + "\n" + DIGEST.format(_digest(body)) + "\n" + END


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def extract(readme: str) -> str:
    """The block of ``readme`` between and including the markers; ValueError when the markers are missing."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"README must hold exactly one {START} ... {END} block")
    return readme[readme.index(START):readme.index(END) + len(END)]


def replace_block(readme: str, block: str) -> str:
    """``readme`` with its claims block replaced by ``block``."""
    return readme.replace(extract(readme), block)


def check(readme: str) -> str | None:
    """None when the README's block is unedited since it was generated, else what is wrong."""
    block = extract(readme)
    lines = block.split("\n")
    if len(lines) < 3 or not lines[-2].startswith("<!-- claims:digest "):
        return "the claims block has no digest line: regenerate it with tools/readme_tables.py --write"
    body = "\n".join(lines[:-2])
    if lines[-2] != DIGEST.format(_digest(body)):
        return "the claims block was edited by hand (its digest does not match): regenerate it"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="learnmech-out/results.db", help="results database of the run to report")
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="README to update or check")
    parser.add_argument("--write", action="store_true", help="replace the block in --readme (else print it)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's block was edited by hand")
    args = parser.parse_args(argv)
    readme = Path(args.readme)
    if args.check:
        problem = check(readme.read_text())
        print(problem or "README claims block: generated, unedited")
        return 1 if problem else 0
    block = render(args.db)
    if args.write:
        readme.write_text(replace_block(readme.read_text(), block))
        print(f"wrote the claims block of {readme}")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
