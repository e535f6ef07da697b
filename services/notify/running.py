"""Work that runs on its own tasks (a chain's sends, an escalation step's pages): kept until it
ends (the event loop holds tasks only weakly), counted, and drained on stop."""

import asyncio
from collections.abc import Coroutine
from typing import Any


class Running:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, within_s: float) -> None:
        """On stop: let what is in flight finish (for up to `within_s`), then cancel the rest."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within_s)
        for task in list(self._tasks):
            task.cancel()
