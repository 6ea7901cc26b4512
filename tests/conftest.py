"""Shared fixtures: the toy claims plugin is visible to every test (and to worker processes via the env)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("LEARNMECH_CLAIM_MODULES", "toy_claims")
