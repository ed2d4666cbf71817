"""Connections that cannot hold the server hostage: uvicorn's h11 protocol with deadlines.

uvicorn closes a keep-alive connection that sits idle after a response, but nothing
times out a request that never finishes: a socket that sends half its headers (or
none) and waits holds its connection forever, and with uvicorn's ``limit_concurrency``
(which counts sockets) 300 of them turned every real request away with a 503.  Here:

- a request's headers must be complete ``request_timeout_s`` after the connection
  opened (or after the first byte of the next request on a kept-alive one), else the
  server answers 408 and closes;
- its body must be complete ``request_timeout_s`` after the headers, else the
  connection closes (the handler sees the client gone);
- an idle keep-alive connection closes after ``IDLE_CONNECTION_S`` (uvicorn's own timer);
- concurrency is limited per request, by ``middleware.InFlightLimit``, never per socket.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

IDLE_CONNECTION_S = 5  # uvicorn's timeout_keep_alive
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)
Waiting = Literal["headers", "body"]


class DeadlineH11Protocol(H11Protocol):
    """One HTTP/1.1 connection; see the module's docstring for the deadlines."""

    request_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting: Waiting | None = None
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._disarm()  # idle now: uvicorn's keep-alive timer takes over
        else:
            self._follow_request()  # a pipelined request, or this one's unread body

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Arm the deadline for what the connection waits for now."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._waiting is None:  # the first bytes of the next request
                self._arm("headers")
        elif state is h11.SEND_BODY:
            if self._waiting != "body":
                self._arm("body")
        else:
            self._disarm()  # the whole request is here (or the connection is ending)

    def _arm(self, waiting: Waiting) -> None:
        self._disarm()
        self._waiting = waiting
        self._deadline = self.loop.call_later(self.request_timeout_s, self._late, waiting)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting = None

    def _late(self, waiting: Waiting) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if waiting == "headers":
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def deadline_protocol(request_timeout_s: float) -> type[DeadlineH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this timeout."""
    return type(
        "DeadlineH11Protocol", (DeadlineH11Protocol,), {"request_timeout_s": request_timeout_s}
    )
