"""Streaming multipart/form-data reader with hard limits, for POST /v1/jobs.

Starlette's own form parser turns non-file parts into text (so raw pixel bytes sent without a
filename would be mangled) and spools files to disk; this one keeps every part as bytes, accepts
only the expected field names, and counts body bytes as they arrive rather than trusting
Content-Length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

try:
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # python-multipart < 0.0.13 ships the same parser as `multipart`
    from multipart.exceptions import MultipartParseError  # type: ignore[no-redef]
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

from .errors import ApiError

SMALL_FIELD_LIMIT = 64 * 1024  # params JSON, widths, heights
MAX_PARTS = 16
IMAGE_FIELDS = ("a", "b_prime")


@dataclass
class Part:
    name: str
    content_type: str  # lower-case, parameters dropped; "" when the part has none
    filename: str | None
    data: bytearray = field(default_factory=bytearray)


class FormReader:
    def __init__(
        self,
        content_type: str,
        allowed: frozenset[str],
        max_body: int,
        images: frozenset[str] = frozenset(IMAGE_FIELDS),
        max_parts: int = MAX_PARTS,
        explain: Callable[[str], str | None] | None = None,
    ) -> None:
        ctype, options = parse_options_header(content_type)
        if ctype != b"multipart/form-data":
            raise ApiError(415, "the body must be multipart/form-data (see API.md)")
        boundary = options.get(b"boundary")
        if not boundary or len(boundary) > 200:
            raise ApiError(400, "multipart/form-data without a usable boundary")
        self.allowed = allowed
        self.images = images  # parts exempt from the small-field limit
        self.max_parts = max_parts
        # A route's own reason for refusing a field it does not take (a reference past the
        # limit), rather than only the list of names it does.
        self.explain = explain
        self.max_body = max_body
        self.received = 0
        self.parts: dict[str, Part] = {}
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._name = bytearray()
        self._value = bytearray()
        self._current: Part | None = None
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda d, s, e: self._name.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_end": self._on_end,
            },
        )

    async def read(self, chunks: AsyncIterator[bytes]) -> dict[str, Part]:
        async for chunk in chunks:
            self.feed(chunk)
        return self.finish()

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_body:
            raise ApiError(413, f"request body is larger than the limit of {self.max_body} bytes")
        if self.ended:
            return  # epilogue after the closing boundary carries nothing
        try:
            self._parser.write(chunk)
        except MultipartParseError as error:
            raise ApiError(400, f"malformed multipart body: {error}") from None

    def finish(self) -> dict[str, Part]:
        if not self.ended:
            raise ApiError(400, "the multipart body ended before its closing boundary (truncated upload?)")
        return self.parts

    def _on_part_begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise ApiError(400, f"too many form parts (at most {self.max_parts})")
        self._headers = {}

    def _on_header_end(self) -> None:
        self._headers[bytes(self._name).strip().lower()] = bytes(self._value).strip()
        self._name.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise ApiError(400, "every form part needs Content-Disposition: form-data; name=...")
        name = options[b"name"].decode("latin-1")
        if name not in self.allowed:
            reason = self.explain(name) if self.explain is not None else None
            expected = describe(self.allowed)
            raise ApiError(400, reason or f"unknown form field {name[:64]!r}; expected: {expected}")
        if name in self.parts:
            raise ApiError(400, f"form field {name!r} appears more than once")
        ctype, _ = parse_options_header(self._headers.get(b"content-type", b""))
        filename = options.get(b"filename")
        self._current = Part(
            name=name,
            content_type=ctype.decode("latin-1"),
            filename=filename.decode("latin-1") if filename is not None else None,
        )
        self.parts[name] = self._current

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        if part is None:
            return
        part.data.extend(data[start:end])
        if part.name not in self.images and len(part.data) > SMALL_FIELD_LIMIT:
            raise ApiError(413, f"form field {part.name!r} is larger than {SMALL_FIELD_LIMIT} bytes")

    def _on_end(self) -> None:
        self.ended = True
        self._current = None


def describe(names: frozenset[str]) -> str:
    """The expected field names, with an animation's numbered frames shown as a range and the
    raw-size fields of the other images as one note (a guided job has a dozen images)."""
    frames = {n for n in names if n.startswith("frame_")}
    images = {n for n in names - frames if f"{n}_width" in names and f"{n}_height" in names}
    sizes = {f"{n}{suffix}" for n in images for suffix in ("_width", "_height")}
    plain = sorted(names - frames - sizes)
    if frames:
        plain.append("frame_1, frame_2, … (with frame_K_width, frame_K_height for raw RGBA)")
    if images:
        plain.append("and NAME_width, NAME_height beside an image part NAME sent as raw RGBA")
    return ", ".join(plain)
