"""Shared fixtures: the toy claims plugin is visible to every test (and to worker processes via the env)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from learnmech._threads import single_threaded

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("LEARNMECH_CLAIM_MODULES", "toy_claims")

# Deterministic property tests (the same examples every run) with no per-example deadline: CI's 2 cores are shared.
settings.register_profile("learnmech", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("learnmech")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small tensors on 2 shared CI cores: one intra-op thread is faster (see learnmech._threads)."""
    with single_threaded():
        yield
