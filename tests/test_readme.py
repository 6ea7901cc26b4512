"""The README is runnable and generated: its code examples run as printed (issue 13 item 12), and its claims table
is what ``tools/readme_tables.py`` prints for a results database, never typed by hand (item 13)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from learnmech.run import reproduce

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(name: str) -> str:
    """The python code between <!-- NAME:start --> and <!-- NAME:end --> in the README."""
    text = README.read_text()
    section = text[text.index(f"<!-- {name}:start -->"):text.index(f"<!-- {name}:end -->")]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(code) == 1, f"expected one python block in the {name} section"
    return code[0]


@pytest.mark.parametrize("name, expected", [
    ("observe", r"sharpness < 2/lr = 40"),
    ("example", r"relative error at width 4096: 0\.\d+"),
    ("stax", r"width 1024: relative error 0\.0\d+"),
])
def test_readme_code_runs_as_printed(tmp_path, name, expected):
    """Each README example runs in a fresh interpreter outside the repository and prints what it says."""
    code = _block(name)
    assert len(code.strip().splitlines()) <= 20, "the README promises a short example"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(expected, done.stdout), done.stdout
    if name == "observe":
        assert "grad_norm" in done.stdout and "nan" not in done.stdout.lower()


def test_observe_example_is_in_its_own_section():
    text = README.read_text()
    assert "## Observe your own training loop" in text
    assert text.index("## Observe your own training loop") < text.index("<!-- observe:start -->")


@pytest.fixture(scope="module")
def toy_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("readme") / "results.db"
    reproduce(["toy-coin", "toy-explode"], quick=True, seeds=3, db=db, workers=1, quiet=True)
    reproduce(["toy-coin", "toy-explode"], quick=False, db=db, workers=1, quiet=True)
    return db


def test_the_written_table_is_exactly_what_the_script_prints(toy_db, tmp_path, capsys):
    tables = _tables()
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    assert tables.main(["--db", str(toy_db), "--readme", str(readme), "--write"]) == 0
    capsys.readouterr()
    assert tables.main(["--db", str(toy_db)]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert tables.extract(readme.read_text()) == printed
    # the rest of the README is untouched
    assert readme.read_text().replace(printed, "") == README.read_text().replace(tables.extract(README.read_text()), "")
    assert tables.check(readme.read_text()) is None


def test_the_table_reports_every_column_from_the_database(toy_db):
    from learnmech.run import Store

    block = _tables().render(toy_db)
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in block.splitlines()
            if line.startswith("| `")}
    assert set(rows) == {"toy-coin", "toy-explode"}
    coin = rows["toy-coin"]
    assert coin[1:3] == ["universal", "Gauss (1809)"]
    with Store(toy_db, readonly=True) as store:
        quick = sorted((r for r in store.rows(claim="toy-coin") if r.kind == "quick"), key=lambda r: r.seed)
        full = [r for r in store.rows(claim="toy-coin") if r.kind == "full"]
    verdicts = {r.verdict for r in quick}
    assert coin[3] == (f"{verdicts.pop()} (3 seeds)" if len(verdicts) == 1 else coin[3])
    assert coin[4].startswith(f"{quick[0].error:.3g} / {quick[0].tolerance:.3g}")  # seed 0's numbers, from the DB
    assert "over seeds" in coin[4]
    assert coin[5] == "1/1"  # its one negative control rejected
    assert coin[7].startswith(f"{full[0].error:.3g} / {full[0].tolerance:.3g}")
    assert "**diverged** (3 seeds)" in rows["toy-explode"][3] and "failed: RuntimeError" in rows["toy-explode"][7]
    assert "`quick`: 2 claims x 3 seed(s)" in block and "`full`: 2 claims x 1 seed(s)" in block


def test_a_hand_edit_of_the_table_is_caught(toy_db):
    tables = _tables()
    block = tables.render(toy_db)
    edited = block.replace("1/1", "2/2", 1)
    assert tables.check(f"intro\n{block}\nend") is None
    assert "by hand" in tables.check(f"intro\n{edited}\nend")


def test_the_committed_readme_table_is_generated_and_unedited():
    assert _tables().check(README.read_text()) is None
