"""Terminal progress of a run: done/total, failures and ETA.

On a terminal it is one live bar redrawn in place (``\\r``); finished runs scroll above it. Anywhere else (CI logs,
pipes, files) it is plain lines, one per finished run.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from .store import Row


class Progress:
    """Prints progress to ``stream`` (stderr).

    live: redraw one status line in place with ``\r`` (default: when ``stream`` is a terminal). Otherwise one line
    per finished job and rate-limited per-step lines, so logs stay readable.
    """

    def __init__(self, total: int, stream: Any = None, quiet: bool = False, live: bool | None = None,
                 labels: Mapping[tuple[str, str, int], str] | None = None) -> None:
        self.total, self.done, self.failed, self.quiet = total, 0, 0, quiet
        self.labels = dict(labels or {})  # job key -> grid point, shown in each finished run's line
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live
        self.t0 = time.perf_counter()
        self._last_step = 0.0
        self._status = ""  # the latest step message, shown after the bar in live mode
        self._lock = threading.Lock()

    def _eta(self) -> str:
        if self.done == 0:
            return "?"
        remaining = (time.perf_counter() - self.t0) / self.done * (self.total - self.done)
        return f"{remaining:.0f}s"

    def bar(self) -> str:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        return f"[{bar}] {self.done}/{self.total} failed={self.failed} eta={self._eta()}"

    def _redraw(self) -> None:
        """Live mode: overwrite the current terminal line with the bar and the latest step message."""
        line = f"{self.bar()}  {self._status}"
        columns = shutil.get_terminal_size((120, 24)).columns
        self.stream.write("\r\033[K" + line[: max(columns - 1, 20)])
        self.stream.flush()

    def _line(self, text: str) -> None:
        """A permanent line; in live mode it is printed above the bar, which is then redrawn."""
        if self.live:
            self.stream.write("\r\033[K" + text + "\n")
            self._redraw()
        else:
            print(text, file=self.stream, flush=True)

    def job_done(self, row: Row) -> None:
        with self._lock:
            self.done += 1
            self.failed += row.status == "failed"
            if self.quiet:
                return
            outcome = row.verdict if row.status == "ok" else row.status.upper()
            label = self.labels.get((row.claim, row.config_hash, int(row.seed)), "")
            text = f"{row.claim}{' ' + label if label else ''} seed={row.seed}: {outcome} ({row.duration_s:.1f}s)"
            if not self.live:
                text = f"{self.bar()}  {text}"
            if row.status == "failed" and row.traceback:
                text += "\n    " + row.traceback.strip().splitlines()[-1]
            self._status = ""
            self._line(text)

    def step(self, claim: str, done: int, total: int, message: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.live:  # cheap: a redraw of one line, still rate-limited for slow terminals
                self._status = f"{claim}: step {done}/{total} {message}".rstrip()
                now = time.perf_counter()
                if now - self._last_step >= 0.1 or done >= total:
                    self._last_step = now
                    self._redraw()
                return
            now = time.perf_counter()
            if now - self._last_step < 0.5 and done < total:
                return
            self._last_step = now
            print(f"    {claim}: step {done}/{total} {message}", file=self.stream, flush=True)

    def close(self) -> None:
        """End the live line so what follows starts on a fresh line."""
        if self.live and not self.quiet and self.total:
            with self._lock:
                self._status = ""
                self._redraw()
                self.stream.write("\n")
                self.stream.flush()
