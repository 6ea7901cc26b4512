"""Per-step progress from inside a claim, shown by the runner (works across worker processes)."""

from __future__ import annotations

from collections.abc import Callable

_sink: Callable[[str, int, int, str], None] | None = None
_current: str = ""


def set_sink(sink: Callable[[str, int, int, str], None] | None, claim: str = "") -> None:
    """Install where progress goes (the runner does this in each worker); ``None`` silences it."""
    global _sink, _current
    _sink, _current = sink, claim


def step(done: int, total: int, message: str = "") -> None:
    """Report that ``done`` of ``total`` steps of the running claim are finished. Cheap when nobody listens."""
    if _sink is not None:
        try:
            _sink(_current, int(done), int(total), message)
        except Exception:  # progress must never break an experiment
            pass
