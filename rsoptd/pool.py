"""Slots sized in cores, granted to runs round-robin.

A request waits in its run's queue; on every release the runs with waiting
requests are served in turn.  A request larger than the free slots stops the
line until enough are free, so a wide job is never starved by narrow ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Hashable


class SlotPool:
    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._queues: dict[Hashable, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._turns: deque[Hashable] = deque()

    @property
    def busy(self) -> int:
        return self.total - self.free

    def resize(self, total: int) -> None:
        self.free += total - self.total
        self.total = total
        self._grant()

    async def acquire(self, owner: Hashable, count: int = 1) -> None:
        if count > self.total:
            raise ValueError(f"{count} slots requested but the pool has {self.total}")
        if not self._turns and self.free >= count:
            self.free -= count
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(owner, deque())
        queue.append((count, future))
        if owner not in self._turns:
            self._turns.append(owner)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(count)  # granted just as we were cancelled
            else:
                self._forget(owner, future)
            raise

    def release(self, count: int = 1) -> None:
        self.free += count
        self._grant()

    def _grant(self) -> None:
        while self._turns:
            owner = self._turns[0]
            queue = self._queues[owner]
            count, future = queue[0]
            if count > self.free and not future.done():
                return
            queue.popleft()
            self._turns.popleft()
            if queue:
                self._turns.append(owner)  # to the back of the line: round-robin
            else:
                del self._queues[owner]
            if not future.done():  # a cancelled waiter takes nothing
                self.free -= count
                future.set_result(None)

    def _forget(self, owner: Hashable, future: asyncio.Future[None]) -> None:
        queue = self._queues.get(owner)
        if queue is None:
            return
        for item in list(queue):
            if item[1] is future:
                queue.remove(item)
        if not queue:
            del self._queues[owner]
            self._turns.remove(owner)
        self._grant()
