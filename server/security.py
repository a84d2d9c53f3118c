"""Request gate in front of every route (docs and schema included), as raw ASGI middleware.

Order: Host (DNS rebinding), Origin (any browser-made cross-site request), token, declared body
size. It runs before routing, so a request that fails here reaches no handler at all and no
body byte is read. No CORS headers are ever added: browsers must not be able to read answers.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

TOKEN_HEADER = b"x-dia-token"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def allowed_hosts(port: int) -> frozenset[bytes]:
    return frozenset({f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()})


async def send_error(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        token: str,
        port: int,
        max_body: int,
        on_authenticated: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = allowed_hosts(port)
        self.max_body = max_body
        self.on_authenticated = on_authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope["headers"])
        if refusal is not None:
            await send_error(send, *refusal)
            return
        if self.on_authenticated is not None:
            self.on_authenticated()
        await self.app(scope, receive, send)

    def check(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """(status, message) to refuse with, or None to let the request through."""
        values: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        hosts = values.get(b"host", [])
        if len(hosts) != 1 or hosts[0] not in self.hosts:
            return 400, "Host header must be 127.0.0.1:PORT or localhost:PORT"
        if b"origin" in values:
            return 403, "requests from web pages (with an Origin header) are refused"
        tokens = values.get(TOKEN_HEADER, [])
        # compare_digest on equal-type bytes: the time taken does not reveal how much matched.
        if len(tokens) != 1 or not hmac.compare_digest(tokens[0], self.token):
            return 401, "missing or wrong X-DIA-Token header (the token is in the engine's runtime file)"
        lengths = values.get(b"content-length", [])
        if lengths:
            if len(lengths) != 1 or not lengths[0].isdigit():
                return 400, "invalid Content-Length header"
            if len(lengths[0]) > 18 or int(lengths[0]) > self.max_body:
                return 413, f"request body is larger than the limit of {self.max_body} bytes"
        return None
