"""Progress that also works in a log: a tqdm bar on a terminal, a plain line every few seconds anywhere else.

tqdm draws its bar with carriage returns and, by default, hides or redraws it in place; written to a pipe or a log
file (``make demo | tee log``, CI) that is one very long line, or nothing at all when the bar is disabled for
non-terminals. :func:`progress` picks by the stream: a terminal gets tqdm, anything else gets :class:`LogProgress`,
which writes one complete line per ``interval`` seconds and a last line on close. Both take the same calls
(``update``, ``set_postfix``, ``close``, use as a context manager), so callers need not care which they got.

Example:
    >>> import io
    >>> log = io.StringIO()                       # not a terminal: plain lines
    >>> with progress(3, desc="project", unit="step", file=log) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> log.getvalue().startswith("project: 3/3 step (100%)")
    True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

from tqdm import tqdm

__all__ = ["progress", "LogProgress", "ProgressBar", "is_terminal", "DEFAULT_INTERVAL"]

#: Seconds between two lines of :class:`LogProgress` (and the longest a log stays silent while work goes on).
DEFAULT_INTERVAL = 5.0


class ProgressBar(Protocol):
    """What :func:`progress` returns: the part of tqdm's interface that :class:`LogProgress` also has."""

    n: float

    def update(self, n: float = 1) -> Any: ...

    def set_postfix(
        self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any
    ) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> None: ...


def is_terminal(stream: IO[str] | None) -> bool:
    """True when ``stream`` is an open terminal (closed or odd streams count as not one)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LogProgress:
    """Progress as plain lines: ``desc: n/total unit (pct%), elapsed, left, rate, postfix``.

    A line is written by the first :meth:`update` at least ``interval`` seconds after the previous line (or the
    start), and one more by :meth:`close` with the final count unless the last line already showed it; nothing
    else, so a log gets whole lines that say how far a long job is. ``clock`` is injectable for tests (default
    :func:`time.monotonic`).
    """

    def __init__(
        self,
        total: float | None = None,
        *,
        desc: str = "",
        unit: str = "it",
        file: IO[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.n: float = 0
        self.postfix = ""
        self.start = self.last = clock()
        self.closed = False
        self.written: float | None = None  # the count the last line showed

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def line(self, now: float | None = None) -> str:
        """The line that would be written now."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 0.0)
        count = f"{self.n:g}"
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            parts.append(f"{count}/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f}%)")
        else:
            parts.append(f"{count} {self.unit}")
        parts.append(f", {tqdm.format_interval(elapsed)} elapsed")
        if elapsed > 0 and self.n > 0:
            rate = self.n / elapsed
            if self.total and self.n < self.total:
                parts.append(f", {tqdm.format_interval((self.total - self.n) / rate)} left")
            parts.append(f", {rate:.3g} {self.unit}/s")
        if self.postfix:
            parts.append(f", {self.postfix}")
        return "".join(parts)

    def _write(self, now: float) -> None:
        self.written = self.n
        try:
            self.file.write(self.line(now) + "\n")
            self.file.flush()
        except (ValueError, OSError):  # the stream went away (closed pipe): progress is not worth an error
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.written != self.n:
                self._write(self.clock())

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(LogProgress):
    """A disabled bar: counts, writes nothing."""

    def _write(self, now: float) -> None:
        pass


def progress(
    total: float | None = None,
    *,
    desc: str = "",
    unit: str = "it",
    file: IO[str] | None = None,
    interval: float = DEFAULT_INTERVAL,
    disable: bool = False,
    leave: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressBar:
    """A progress bar for ``file`` (default: ``sys.stderr`` at call time): tqdm on a terminal, else LogProgress.

    Args:
        total: Expected count (None: unknown; the lines then show the count and the rate only).
        desc: Prefix of the bar / of every line.
        unit: What is counted ("step", "img").
        file: The stream; whether it is a terminal decides the kind.
        interval: Seconds between lines when ``file`` is not a terminal.
        disable: Show nothing (the returned object still takes every call).
        leave: Keep tqdm's bar on screen after close (terminal only; the log always gets its last line).
        clock: Time source of the log lines (tests pass a fake one).

    Returns:
        A :class:`ProgressBar`: ``update(n)``, ``set_postfix(dict)``, ``close()``, a context manager.
    """
    stream = file if file is not None else sys.stderr
    if disable:
        return _Silent(total, desc=desc, unit=unit, file=stream, interval=interval, clock=clock)
    if is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=leave, dynamic_ncols=True)
    return LogProgress(total, desc=desc, unit=unit, file=stream, interval=interval, clock=clock)
