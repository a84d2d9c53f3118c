"""The engine's HTTP API (docs/http-api.md) for the plug-in: `Engine`, the raw image types and
the user-facing messages for refusals and failures. Standard library only, no GIMP import.

Every failure becomes `EngineError` whose message says what happened and what to do: the
plug-in shows it as is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """A failure explained for the user: cause and what to do."""


@dataclass(frozen=True)
class RawImage:
    """8-bit RGBA rows, top to bottom."""

    width: int
    height: int
    rgba: bytes


@dataclass(frozen=True)
class RawResult:
    """8-bit rows as the engine sends them: 3 channels (RGB) or 1 (a mask)."""

    width: int
    height: int
    channels: int
    data: bytes

    def rgba(self, alpha: bytes | None = None) -> bytes:
        """RGBA rows from an RGB result, with `alpha` (one byte a pixel) or opaque. Slices, not a
        loop over pixels: GIMP's Python has no numpy, and a 12-megapixel layer must stay quick."""
        if self.channels != 3:
            raise ValueError(f"an RGB result is needed, this one has {self.channels} channels")
        pixels = self.width * self.height
        out = bytearray(pixels * 4)
        for channel in range(3):
            out[channel::4] = self.data[channel::3]
        out[3::4] = alpha if alpha is not None else b"\xff" * pixels
        return bytes(out)

    def image(self) -> RawImage:
        """This result as an input of another job (A′ painted with strokes)."""
        return RawImage(self.width, self.height, self.rgba())


class Engine:
    """One engine at `url` (http://127.0.0.1:PORT), authenticated with its launch token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # Never through a proxy: http_proxy in GIMP's environment must not capture loopback
        # traffic (and the token with it).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body; 4xx answers are returned, connection problems raise OSError."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("X-DIA-Token", self.token)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _headers, body = self.request(method, path, **kwargs)
        try:
            return status, json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            return status, {"detail": body[:200].decode("utf-8", "replace")}

    def health(self, timeout: float = 3.0) -> dict[str, Any] | None:
        """The health record, or None when nothing (or something else) answers."""
        try:
            status, info = self.json("GET", "/v1/health", timeout=timeout)
        except OSError:
            return None
        return info if status == 200 and isinstance(info, dict) else None

    def submit(self, a: RawImage, b_prime: RawImage, params: dict[str, Any]) -> str:
        """An analogy job (POST /v1/jobs); see `submit_to` for the other kinds."""
        return self.submit_to("/v1/jobs", [("a", a), ("b_prime", b_prime)], params)

    def submit_to(self, route: str, images: Iterable[tuple[str, RawImage]], params: dict[str, Any]) -> str:
        """POST images (form part name, raw RGBA; sizes in NAME_width/NAME_height parts) and params
        as JSON to `route` (/v1/jobs, /v1/paint, /v1/animate); returns the job's id."""
        fields: list[tuple[str, str | None, str, bytes]] = [
            ("params", None, "application/json", json.dumps(params).encode()),
        ]
        for name, image in images:
            fields.append((name, f"{name}.rgba", "application/octet-stream", image.rgba))
            fields.append((f"{name}_width", None, "text/plain", str(image.width).encode()))
            fields.append((f"{name}_height", None, "text/plain", str(image.height).encode()))
        body, content_type = multipart(fields)
        try:
            status, info = self.json("POST", route, body=body, content_type=content_type, timeout=300)
        except OSError as err:
            raise EngineError(f"The engine at {self.url} stopped answering while the images were sent "
                              f"({err}). Nothing was changed; run the filter again.") from err
        if status in (200, 201) and isinstance(info, dict) and info.get("id"):
            return str(info["id"])
        if status in (404, 405) and route != "/v1/jobs":
            # An engine from before painting and animation: say so rather than "Not Found".
            raise EngineError(f"The engine at {self.url} does not know {route}: it is older than "
                              "the plug-in. Quit it and re-run install.sh, then try again.")
        raise EngineError(refusal_message(status, info))

    def status(self, job_id: str) -> dict[str, Any]:
        status, info = self.json("GET", f"/v1/jobs/{job_id}", timeout=15)
        if status == 404:
            raise EngineError("The engine no longer knows this job (was it restarted?). Nothing was "
                              "changed; run the filter again.")
        if status != 200 or not isinstance(info, dict):
            raise EngineError(refusal_message(status, info))
        return info

    def fetch(self, job_id: str, name: str, query: str = "") -> tuple[dict[str, str], bytes]:
        """A result's headers (lower-case names) and body; failures become EngineError."""
        try:
            status, headers, body = self.request("GET", f"/v1/jobs/{job_id}/result/{name}{query}",
                                                 timeout=120)
        except OSError as err:
            raise EngineError(f"The engine stopped while sending the results ({err}). Nothing was "
                              "changed; run the filter again.") from err
        if status != 200:
            try:
                info = json.loads(body.decode("utf-8"))
            except ValueError:
                info = None
            raise EngineError(refusal_message(status, info))
        return {k.lower(): v for k, v in headers.items()}, body

    def result(self, job_id: str, name: str) -> RawResult:
        """An image result as raw 8-bit rows (?format=raw), its size from the X-* headers."""
        headers, body = self.fetch(job_id, name, "?format=raw")
        try:
            width, height = int(headers["x-width"]), int(headers["x-height"])
            channels = int(headers.get("x-channels", "1"))
        except (KeyError, ValueError) as err:
            raise EngineError(f"The engine sent result '{name}' without its size; is the engine "
                              "the same version as the plug-in? Re-run install.sh.") from err
        if len(body) != width * height * channels:
            raise EngineError(f"The engine sent {len(body)} bytes for result '{name}', expected "
                              f"{width}×{height}×{channels}. Nothing was changed; run the filter again.")
        return RawResult(width, height, channels, body)

    def text(self, job_id: str, name: str) -> str:
        """A text result (the painting's strokes.svg) as served."""
        _headers, body = self.fetch(job_id, name)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise EngineError(f"The engine sent result '{name}' as something other than UTF-8 text; "
                              "is the engine the same version as the plug-in? Re-run install.sh.") from err

    def cancel(self, job_id: str) -> None:
        """Best effort: the engine also cancels jobs whose client stops polling."""
        try:
            self.request("DELETE", f"/v1/jobs/{job_id}", timeout=5)
        except OSError:
            pass


def multipart(fields: Iterable[tuple[str, str | None, str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data body from (name, filename or None, content type, bytes)."""
    boundary = "dia-" + uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                      f"Content-Type: {ctype}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def refusal_message(status: int, info: Any) -> str:
    detail = info.get("detail") if isinstance(info, dict) else None
    if not isinstance(detail, str):
        detail = json.dumps(detail) if detail is not None else f"HTTP {status}"
    if status == 401:
        return ("The engine refused the plug-in's token: the engine's runtime file belongs to "
                "another engine. Quit the old engine (or remove the runtime file) and try again.")
    if status == 413:
        return f"The engine refused the images as too large: {detail}. Scale the layers down."
    if status == 429:
        return f"The engine is busy with other jobs ({detail}). Try again when they are done."
    return f"The engine refused the job: {detail}"


def failure_message(error: str | None) -> str:
    text = error or "unknown error"
    low = text.lower()
    if "out of memory" in low or "memoryerror" in low or "oom" in low.split():
        return (f"The engine ran out of memory: {text}. Choose a smaller working size, the "
                "'Fast' preset or the CPU device, and run the filter again. Nothing was changed.")
    return f"The engine failed: {text}. Nothing was changed."
