"""A model's streams, handed out in arrival order: a counting semaphore where a request
takes as many streams as it has choices, and nobody passes an earlier arrival.

``acquire(n)`` returns at once while ``n`` streams are free and nobody waits; otherwise
it waits its turn.  A waiter cancelled before its turn (its client went away) leaves
the queue; one cancelled just as its turn came gives the streams back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(eq=False)
class _Waiter:
    n_streams: int
    granted: asyncio.Future[None]


class StreamSlots:
    """``capacity`` streams of one model (the backend's ``max_streams``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self.busy = 0  # streams handed out and not yet given back
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn."""
        return len(self._waiters)

    async def acquire(self, n_streams: int) -> None:
        """Wait for ``n_streams`` streams (at most ``capacity``), in arrival order."""
        n_streams = min(max(n_streams, 1), self.capacity)
        if not self._waiters and self.busy + n_streams <= self.capacity:
            self.busy += n_streams
            return
        waiter = _Waiter(n_streams, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.release(n_streams)  # its turn came as it was cancelled
            else:
                self._waiters.remove(waiter)
                self._admit()  # a smaller request behind it may fit now
            raise

    def release(self, n_streams: int) -> None:
        """Give back what ``acquire(n_streams)`` took."""
        self.busy -= min(max(n_streams, 1), self.capacity)
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.busy + self._waiters[0].n_streams <= self.capacity:
            waiter = self._waiters.popleft()
            self.busy += waiter.n_streams
            waiter.granted.set_result(None)
