"""A text progress bar for the terminal, usable as a job ``ProgressCallback``.

It writes to stderr only, so ``--json`` output on stdout stays parseable. On a terminal it
redraws one line in place (``\\r``) at most ten times a second; when stderr is a file or a pipe
(CI logs, ``2> log``) it prints one plain line per 10 % step instead, so logs stay short and
free of control characters.

Public API: ``TextProgress``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TextProgress:
    """``progress(fraction, message)`` rendered as ``[#####-----]  50%  message  (12.3 s)``.

    Parameters
    ----------
    stream : text stream, optional
        Where to draw (default: ``sys.stderr`` at call time, so pytest's capture works).
    width : int, default 30
        Bar width in characters.
    tty : bool, optional
        Force terminal (redraw) or log (one line per 10 %) mode; default: ``stream.isatty()``.
    min_interval : float, default 0.1
        Seconds between terminal redraws (the final 100 % is always drawn).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = TextProgress(out, tty=False)
    >>> bar(0.0, "start"); bar(0.55, "half"); bar(1.0, "done")
    >>> out.getvalue().splitlines()[-1].startswith("[##############################] 100%")
    True
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        width: int = 30,
        tty: bool | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self._stream = stream
        self.width = width
        self._tty = tty
        self.min_interval = min_interval
        self._start = time.monotonic()
        self._last_draw = -float("inf")
        self._last_decile = -1
        self._line_len = 0
        self._finished = False

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def render(self, fraction: float, message: str) -> str:
        """The text of the bar for ``fraction`` (0-1) and ``message``, without line ending."""
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * self.width))
        elapsed = time.monotonic() - self._start
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {fraction * 100:3.0f}%"
        if message:
            text += f"  {message}"
        return f"{text}  ({elapsed:.1f} s)"

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._finished:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        done = fraction >= 1.0
        if self.is_tty:
            now = time.monotonic()
            if not done and now - self._last_draw < self.min_interval:
                return
            self._last_draw = now
            line = self.render(fraction, message)
            # Pad with spaces to erase the tail of a longer previous line.
            self.stream.write("\r" + line.ljust(self._line_len))
            self._line_len = len(line)
            if done:
                self.stream.write("\n")
        else:
            decile = int(fraction * 10)
            if decile <= self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(self.render(fraction, message) + "\n")
        self.stream.flush()
        self._finished = done

    def close(self) -> None:
        """End an unfinished terminal line (after an error), so the next output starts clean."""
        if self.is_tty and self._line_len and not self._finished:
            self.stream.write("\n")
            self.stream.flush()
        self._finished = True
