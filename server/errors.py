"""The one exception type handlers raise for a clear 4xx answer: {"detail": message}."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
