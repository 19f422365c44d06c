"""A rich progress bar on stderr, imported only when stderr is a terminal."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)


class RichProgress:
    """Implements :class:`crossfetch.client.Progress`."""

    def __init__(self) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), console=Console(stderr=True),
                             transient=True)
        self._started = False

    def start(self, description: str, total: int) -> Callable[[int], None]:
        if not self._started:
            self._bar.start()
            self._started = True
        task = self._bar.add_task(description, total=total)
        return lambda n: self._bar.advance(task, n)

    def finish(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False
