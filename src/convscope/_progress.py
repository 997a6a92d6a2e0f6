"""Progress of a long loop, one way for every part of convscope: a callback, a bar, or nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_ticks(
    progress: bool | Callable[[int, int], None] | None, total: int, what: str, *, unit: str = "", auto_from: int | None = None
) -> Iterator[Callable[[int], None]]:
    """A ``tick(done)`` for a loop of ``total`` steps: ``progress`` called with ``(done, total)``
    if it is a callable, a rich bar on stderr if it is true (or, if ``None``, from ``auto_from``
    steps on), else nothing.

    Example:
        >>> seen = []
        >>> with progress_ticks(lambda done, total: seen.append((done, total)), 2, "work") as tick:
        ...     tick(1); tick(2)
        >>> seen
        [(0, 2), (1, 2), (2, 2)]
    """
    if callable(progress):
        report = progress
        report(0, total)
        yield lambda done: report(done, total)
        return
    if not (progress or (progress is None and auto_from is not None and total >= auto_from)):
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), *((TextColumn(unit),) if unit else ()), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)
