"""Dependencies point one way (docs/architecture.md): every ``learnmech`` import in src/learnmech, read with ``ast``.

- The strands (kernels, solvable, laws, hyper, observe) import nothing from the layers above them (claims, run,
  report, cli, forecast): data flows strands -> claims -> run -> report.
- Claims import no private module (a path part starting with ``_``) and no underscore name from another module:
  what a claim needs from a strand is public. Claims do not import run, report or cli (no claims <-> run cycle).
- The bottom modules (panels, seeding, subruns) import nothing of learnmech except each other.

Function-level (lazy) imports count like top-level ones.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "learnmech"
STRANDS = ("kernels", "solvable", "laws", "hyper", "observe")
ABOVE_STRANDS = ("claims", "run", "report", "cli", "forecast")
BOTTOM = ("panels", "seeding", "subruns")


@dataclass(frozen=True)
class Import:
    """One imported module (and the name taken from it, if any) at a line of a learnmech module."""

    importer: str  # dotted module name, e.g. learnmech.claims.laws.mlp_scaling
    module: str  # dotted name of the imported module
    name: str | None  # the name imported from ``module`` (None for ``import module`` or a submodule import)
    line: int

    def where(self) -> str:
        taken = f" ({self.name})" if self.name else ""
        return f"{self.importer}:{self.line} imports {self.module}{taken}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[Import]:
    importer = _module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, None, node.lineno) for alias in node.names
                      if alias.name.split(".")[0] == "learnmech"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "learnmech":
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if _is_module(submodule):  # ``from learnmech import hyper`` imports the module learnmech.hyper
                    found.append(Import(importer, submodule, None, node.lineno))
                else:
                    found.append(Import(importer, module, alias.name, node.lineno))
    return found


ALL = [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports(path)]


def _layer(dotted: str) -> str:
    """The top-level part of learnmech a module belongs to: ``learnmech.claims.laws.x`` -> ``claims``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_parser_sees_the_imports():
    # Not vacuous: claims compose strands, strands use the bottom modules, and relative imports resolve.
    assert any(_layer(i.importer) == "claims" and _layer(i.module) in STRANDS for i in ALL)
    assert any(_layer(i.importer) in STRANDS and _layer(i.module) in BOTTOM for i in ALL)
    assert any(i.importer == "learnmech.run.runner" and i.module == "learnmech.run.store" for i in ALL)
    assert all(_is_module(i.module) or _layer(i.module) == "" for i in ALL), \
        [i.where() for i in ALL if not _is_module(i.module)]


@pytest.mark.parametrize("strand", STRANDS)
def test_strands_do_not_import_upward(strand):
    bad = [i.where() for i in ALL if _layer(i.importer) == strand and _layer(i.module) in ABOVE_STRANDS]
    assert not bad, bad


def test_claims_import_no_private_modules_or_names():
    bad = []
    for i in ALL:
        if _layer(i.importer) != "claims":
            continue
        outside = _layer(i.module) != "claims"
        if outside and any(_private(part) for part in i.module.split(".")[1:]):
            bad.append(i.where())
        if i.name is not None and _private(i.name) and i.module != i.importer:
            bad.append(i.where())
    assert not bad, bad


def test_claims_do_not_import_the_runner_report_or_cli():
    bad = [i.where() for i in ALL if _layer(i.importer) == "claims" and _layer(i.module) in ("run", "report", "cli")]
    assert not bad, bad


@pytest.mark.parametrize("module", BOTTOM)
def test_bottom_modules_import_only_each_other(module):
    bad = [i.where() for i in ALL if _layer(i.importer) == module and _layer(i.module) not in BOTTOM]
    assert not bad, bad
