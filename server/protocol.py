"""uvicorn's h11 protocol with the guards it lacks: a header timeout, a connection cap, JSON errors.

uvicorn closes a connection that stays idle *between* requests (`timeout_keep_alive`), but one
that has sent half a request line is kept forever, and it accepts connections until the process
runs out of file descriptors. So, per connection:

- the request line and headers must be complete within `header_timeout` seconds of the
  connection opening (or of the previous response); otherwise the server answers 408 (if
  anything was received) and closes it;
- at most `max_connections` connections are open at once. A new one beyond the cap closes the
  connection that has waited longest without a complete request; when every open connection is
  inside a request, the new one gets 503 and is closed. So half-open connections can never lock
  out `/v1/health`;
- the 400 that h11 answers for a malformed request is the API's JSON, like every other error.

The request body is not this module's business: `app.py` reads it against its own deadline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def raw_json_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for answers outside any request."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    max_connections: int = 64
    _last_limit_log = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_since = time.monotonic()  # when it began waiting for a request's headers

    @classmethod
    def configured(cls, header_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
        return type(
            "GuardedH11Protocol",
            (cls,),
            {"header_timeout": header_timeout, "max_connections": max_connections},
        )

    # ---- connection cap ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()
        # Closed transports stay in `connections` until the loop runs connection_lost.
        open_ = [c for c in self.connections if c.transport is not None and not c.transport.is_closing()]
        if len(open_) <= self.max_connections:
            return
        waiting = [
            c for c in open_ if c is not self and isinstance(c, GuardedH11Protocol) and c.waiting_for_request
        ]
        if waiting:
            min(waiting, key=lambda c: c._waiting_since)._close(None)
            self._log_limit("closed the connection that waited longest without a request")
        else:
            self._log_limit("refused a connection")
            self._close(
                raw_json_response(
                    503,
                    "Service Unavailable",
                    f"too many connections (at most {self.max_connections}); try again shortly",
                )
            )

    def _log_limit(self, what: str) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._last_limit_log >= 5.0:  # one line per burst, not per connection
            GuardedH11Protocol._last_limit_log = now
            self.logger.warning("connection limit (%d) reached: %s", self.max_connections, what)

    @property
    def waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    # ---- header timeout ----------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._waiting_since = time.monotonic()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self.waiting_for_request:
            return
        partial = bool(self.conn.trailing_data[0])
        self.logger.debug("closing a connection that sent no complete request in %g s", self.header_timeout)
        self._close(
            raw_json_response(
                408,
                "Request Timeout",
                f"the request line and headers did not arrive within {self.header_timeout:g} s",
            )
            if partial
            else None
        )

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and not self.waiting_for_request:
            self._cancel_header_timer()  # a request started: its headers are complete

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request
        if not self.transport.is_closing() and self.waiting_for_request:
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _close(self, answer: bytes | None) -> None:
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        if answer is not None:
            self.transport.write(answer)
        self.transport.close()

    # ---- h11's own 400 -----------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """Replaces uvicorn's plain-text 400 for requests h11 cannot parse."""
        self._cancel_header_timer()
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # an answer is already on its way: nothing else can be said
            return
        # Called from inside h11's `except RemoteProtocolError`, which carries a status hint.
        error = sys.exc_info()[1]
        status = error.error_status_hint if isinstance(error, h11.RemoteProtocolError) else 400
        status = status if status in (400, 413, 414, 431) else 400
        reasons = {
            400: "Bad Request",
            413: "Content Too Large",
            414: "URI Too Long",
            431: "Request Header Fields Too Large",
        }
        detail = "malformed HTTP request" if status == 400 else "request line or headers too large"
        if self.cycle is not None:
            self.cycle.disconnected = True  # the handler reading the body sees a disconnect
            self.cycle.message_event.set()
        self._close(raw_json_response(status, reasons[status], detail))
