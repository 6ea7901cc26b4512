"""Shared fixtures: the toy claims plugin is visible to every test (and to worker processes via the env)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from learnmech._threads import single_threaded

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("LEARNMECH_CLAIM_MODULES", "toy_claims")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small tensors on 2 shared CI cores: one intra-op thread is faster (see learnmech._threads)."""
    with single_threaded():
        yield
