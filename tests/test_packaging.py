"""Issue 13 item 1: the package is self-contained. The Chinchilla CSV ships in the wheel and is found from any
directory with no ``../shared`` and no ``LEARNMECH_DATA``; nothing in ``src/`` refers to ``shared/``."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSV = "learnmech/laws/published/chinchilla_svg_extracted.csv"
#: SHA-256 of Epoch AI's data/svg_extracted_data.csv at commit 9225883 (see PROVENANCE.md).
EPOCH_SHA256 = "193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # offline build with the venv's own setuptools (Python >= 3.12 venvs have none: then the static test below
    # still checks that pyproject's package-data covers the data files)
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, cwd=out)
    wheels = list(out.glob("learnmech-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_ships_the_chinchilla_csv_and_its_provenance(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert CSV in names
        assert "learnmech/laws/published/PROVENANCE.md" in names
        assert hashlib.sha256(archive.read(CSV)).hexdigest() == EPOCH_SHA256


def test_installed_copy_loads_the_data_from_any_directory_without_shared(wheel, tmp_path):
    """Unpack the wheel (what pip install puts in site-packages) and load the data from an unrelated cwd."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LEARNMECH_DATA"}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install in the venv
    code = ("import learnmech; from learnmech.laws import find_data_file, load_chinchilla\n"
            "N, D, loss = load_chinchilla(exclude_highest=0)\n"
            "print(learnmech.__file__); print(find_data_file()); print(N.size)")
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    module, data, count = done.stdout.split("\n")[:3]
    assert Path(module).is_relative_to(site) and Path(data).is_relative_to(site)
    assert count == "245"


def test_data_override_still_wins(tmp_path, monkeypatch):
    from learnmech.laws import find_data_file

    (tmp_path / "chinchilla_svg_extracted.csv").write_text("x\n1\n")
    monkeypatch.setenv("LEARNMECH_DATA", str(tmp_path))
    assert find_data_file() == tmp_path / "chinchilla_svg_extracted.csv"
    monkeypatch.delenv("LEARNMECH_DATA")
    assert find_data_file().as_posix().endswith(CSV)


def test_no_source_file_refers_to_a_shared_folder_beside_the_repository():
    pattern = re.compile(r"""(\.\./shared|["'/]shared/data|["']shared["'])""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_package_data_in_pyproject_covers_every_data_file():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["learnmech"]
    package = ROOT / "src" / "learnmech"
    data_files = [p.relative_to(package).as_posix() for p in (package / "laws" / "published").iterdir()
                  if p.is_file()]
    assert "laws/published/chinchilla_svg_extracted.csv" in data_files
    uncovered = [f for f in data_files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert uncovered == []
