"""Run the app on uvicorn with the server's connection limits.

uvicorn's h11 protocol, with ``h11_max_incomplete_event_size`` bounding the request line and
headers (``max_header_bytes``; larger gets 400 and the connection closed), and one addition: a
connection must deliver a request's complete headers within ``read_timeout`` seconds of opening
(or of the previous response), else it is closed. uvicorn's own keep-alive timer restarts on every
byte, so a client trickling a header would otherwise hold its connection forever. The body has
the same deadline from the end of the headers (:class:`deepatlas.serving.app.BodySizeLimit`).
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from deepatlas.serving.limits import MAX_HEADER_BYTES, READ_TIMEOUT_S


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request headers do not arrive in time."""

    header_timeout: float = READ_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the body has its own deadline
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # for the next request's headers (a pipelined one disarms it at once)
        super().on_response_complete()


def run_server(
    app,
    host: str,
    port: int,
    *,
    read_timeout: float = READ_TIMEOUT_S,
    max_header_bytes: int = MAX_HEADER_BYTES,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    protocol = type("HeaderDeadlineH11", (HeaderDeadlineH11,), {"header_timeout": float(read_timeout)})
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=protocol,
        h11_max_incomplete_event_size=int(max_header_bytes),
        log_level=log_level,
        access_log=access_log,
    )
