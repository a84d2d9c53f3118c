"""Typed JSON answers of the API, so that they show in the OpenAPI schema (/openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class JobStatus(BaseModel):
    """GET /v1/jobs/{id} (docs/http-api.md)."""

    id: str = Field(description="32 hex digits")
    state: JobState
    progress: float = Field(description="0..1, never decreasing")
    stage: str = Field(description="what the engine is doing, in words")
    elapsed: float = Field(description="seconds since the job started running")
    error: str | None = Field(description="why the job failed or was cancelled")
    degraded: str | None = Field(description="what the out-of-memory fallback changed, if anything")
    results: list[str] = Field(description="result names, once done")
    report: dict[str, Any] | None = Field(description="the run's report, once done")
    queue_position: int | None = Field(description="0 = next, while queued")
