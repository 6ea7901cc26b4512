"""The glossary in docs/architecture.md is what the code says: no public parameter uses a word from its "not" column.

Every name in the ``__all__`` of the strands (kernels, solvable, laws, hyper, observe, forecast), and of the
submodules they export, is checked: functions, class constructors and public methods. A renamed parameter may live
on as a deprecated alias only through ``learnmech._aliases.renamed``: then it is keyword-only (absent from the
signature), documented as deprecated, and warns.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

STRANDS = ("kernels", "solvable", "laws", "hyper", "observe", "forecast")
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

# Parameters the glossary names as pending (their module is being revised by another change); remove an entry
# when it is renamed. The glossary's notes say the same. Empty now: hyper.ParamRule's fields were the last ones.
PENDING: set[tuple[str, str]] = set()


def _forbidden() -> dict[str, str]:
    """``{word: concept}`` from the glossary table's "not" column."""
    words: dict[str, str] = {}
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("| concept | the name | not |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            for word in re.findall(r"`([A-Za-z_][A-Za-z_0-9]*)`", cells[2]):
                words[word] = cells[0]
    return words


def _public_callables() -> list[tuple[str, object]]:
    """``(qualified name, callable)`` for every public function, class and public method of the strands."""
    found: list[tuple[str, object]] = []
    seen: set[str] = set()

    def walk(module: types.ModuleType, prefix: str) -> None:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith("learnmech.") and obj.__name__ not in seen:
                    seen.add(obj.__name__)
                    walk(obj, f"{prefix}.{name}")
            elif inspect.isclass(obj):
                found.append((f"{prefix}.{name}", obj))
                found.extend((f"{prefix}.{name}.{attr}", member) for attr, member in vars(obj).items()
                             if inspect.isfunction(member) and not attr.startswith("_"))
            elif inspect.isfunction(obj):
                found.append((f"{prefix}.{name}", obj))

    for strand in STRANDS:
        walk(importlib.import_module(f"learnmech.{strand}"), strand)
    return found


def _parameters(obj: object) -> list[str]:
    try:
        return list(inspect.signature(obj).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return []


def test_the_glossary_table_is_parsed():
    words = _forbidden()
    for word in ("rng", "n_boot", "in_features", "input_dim", "diverged_at", "lr_mult", "num_samples"):
        assert word in words


def test_public_parameters_follow_the_glossary():
    words = _forbidden()
    callables = _public_callables()
    assert len(callables) > 200  # the walk found the strands' surfaces
    offenders = [f"{name}({param}): {words[param]}" for name, obj in callables for param in _parameters(obj)
                 if param in words and (name, param) not in PENDING]
    assert not offenders, "parameters named with a word the glossary rules out:\n" + "\n".join(offenders)


def test_pending_entries_are_still_needed():
    callables = dict(_public_callables())
    for name, param in PENDING:
        assert param in _parameters(callables[name]), f"{name}.{param} was renamed: drop it from PENDING"


def test_deprecated_aliases_are_keyword_only_and_documented():
    checked = 0
    for name, obj in _public_callables():
        aliases = getattr(obj, "__deprecated_aliases__", None)
        if not aliases:
            continue
        params = _parameters(obj)
        doc = inspect.getdoc(obj) or ""
        for old, new in aliases.items():
            assert old not in params, f"{name}: deprecated alias {old!r} must not be in the signature"
            assert new in params, f"{name}: alias {old!r} points to {new!r}, which is not a parameter"
            assert f"``{old}``" in doc and "deprecated" in doc, f"{name}: document {old!r} as deprecated"
            checked += 1
    assert checked >= 10


def test_deprecated_keywords_warn_and_give_the_same_result():
    from learnmech import hyper, kernels, observe, solvable

    with pytest.warns(DeprecationWarning) as record:
        old = kernels.mlp_network(in_features=3, hidden_layers=1, width=8, out_features=2, seed=4)
    assert all(any(f"'{word}'" in str(w.message) for w in record) for word in ("in_features", "out_features"))
    new = kernels.mlp_network(in_dim=3, hidden_layers=1, width=8, out_dim=2, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters(), strict=True))

    with pytest.warns(DeprecationWarning) as record:
        old_points = solvable.uniform_sphere(num_points=5, dim=3, rng=np.random.default_rng(7))
    assert len(record) == 3
    np.testing.assert_array_equal(old_points, solvable.uniform_sphere(5, 3, seed=7))

    with pytest.warns(DeprecationWarning, match="'n'"):
        old_x, _ = hyper.synthetic_regression(n=6, in_dim=2, seed=1)
    assert torch.equal(old_x, hyper.synthetic_regression(n_samples=6, in_dim=2, seed=1)[0])

    samples = np.random.default_rng(0).pareto(2.0, 500) + 1.0
    with pytest.warns(DeprecationWarning, match="fit_tail"):
        assert observe.power_law_fit(samples) == observe.fit_tail(samples)
    assert observe.PowerLawFit is observe.TailFit

    with pytest.raises(TypeError, match="both"):
        solvable.eigenlearning([1.0, 0.5], [1.0, 1.0], n_train=1.0, n=1.0)


# Claim config keys (what users type in `learnmech sweep --grid`) follow the same glossary, token by token: a key is
# split at "_" and must not hold a "not" word's tokens in a row (``rf_input_dim`` holds ``input_dim``,
# ``linear_init_std`` holds ``init_std``). A one-letter word (``n``, ``d``) before further tokens is the glossary's
# own prefix (``n_train``: the number of training samples), so it is ruled out only as the key's last token, where it
# names the quantity itself (``n``, ``linear_n``).


def _ruled_out_in_key(key: str, words: dict[str, str]) -> list[str]:
    """The glossary "not" words that ``key`` contains as whole ``_``-separated tokens."""
    tokens = key.split("_")
    found = []
    for word in words:
        parts = word.split("_")
        for i in range(len(tokens) - len(parts) + 1):
            prefix = len(word) == 1 and i + len(parts) < len(tokens)
            if tokens[i:i + len(parts)] == parts and not prefix:
                found.append(word)
                break
    return found


def test_config_key_tokens_are_matched_as_the_glossary_means():
    words = _forbidden()
    assert _ruled_out_in_key("rf_input_dim", words) == ["input_dim"]
    assert _ruled_out_in_key("linear_init_std", words) == ["init_std"]
    assert _ruled_out_in_key("linear_n", words) == ["n"]
    for key in ("in_dim", "rf_in_dim", "n_train", "n_bootstrap", "n_samples", "linear_init_scale", "W_std",
                "confidence", "lr_fraction", "diverged_step"):
        assert _ruled_out_in_key(key, words) == [], key


def test_claim_config_keys_follow_the_glossary():
    from learnmech.claims import registry

    words = _forbidden()
    claims = registry()
    assert len(claims) >= 30  # the walk found the claims
    offenders = [f"{name}: {key} ({', '.join(f'{w!r} is {words[w]}' for w in bad)})"
                 for name, claim in claims.items() for key in sorted(set(claim.quick) | set(claim.full))
                 if (bad := _ruled_out_in_key(key, words))]
    assert not offenders, "claim config keys named with a word the glossary rules out:\n" + "\n".join(offenders)


def test_a_renamed_config_key_is_refused_with_its_new_name():
    from learnmech.claims import get, registry
    from learnmech.run.jobs import check_config, renamed_keys, sweep_jobs

    assert renamed_keys(get("mlp-scaling")) == {"input_dim": "in_dim", "rf_input_dim": "rf_in_dim"}
    checked = 0
    for name, claim in registry().items():
        for old, new in renamed_keys(claim).items():
            assert old not in claim.quick and new in claim.quick, f"{name}: {old!r} -> {new!r}"
            value = claim.quick[new]
            with pytest.raises(ValueError, match=f"'{old}' is now called '{new}'"):
                check_config(claim, {old: value}, name="config")
            with pytest.raises(ValueError, match=f"grid: claim {name}'s config key '{old}' is now called '{new}'"):
                sweep_jobs(name, {old: [value]})
            checked += 1
    assert checked >= 6
