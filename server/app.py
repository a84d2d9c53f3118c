"""The FastAPI application: routes of API.md over a JobManager, behind SecurityMiddleware."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from analogy_engine import AnalogyParams, ParamsError

from . import __version__
from .config import BODY_MIN_RATE, ServerConfig
from .engines import resolve_device
from .errors import ApiError
from .images import clean_message, confidence_to_mask, decode_part, encode_npy, encode_png
from .jobs import RESULT_NAMES, JobManager, QueueFull, UnknownJob
from .models import JobStatus
from .security import SecurityMiddleware, send_error
from .test_hooks import NAMES as TEST_HOOKS
from .uploads import FormReader, Part

JOB_ID = re.compile(r"[0-9a-f]{32}")
FORM_FIELDS = frozenset({"params", "a", "b_prime", "a_width", "a_height", "b_prime_width", "b_prime_height"})
TEST_HOOK_FIELD = "_test_hook"

SUBMIT_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["a", "b_prime"],
                    "properties": {
                        "params": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": AnalogyParams.json_schema(),
                            "description": "JSON object of AnalogyParams fields (GET /v1/params)",
                        },
                        "a": {"type": "string", "format": "binary"},
                        "b_prime": {"type": "string", "format": "binary"},
                        "a_width": {"type": "integer"},
                        "a_height": {"type": "integer"},
                        "b_prime_width": {"type": "integer"},
                        "b_prime_height": {"type": "integer"},
                    },
                }
            }
        },
    }
}


def create_app(
    config: ServerConfig,
    manager: JobManager,
    token: str,
    port: int,
    device: str,
    stopping: threading.Event | None = None,
) -> Any:
    stopping = stopping or threading.Event()
    app = FastAPI(
        title="Deep Image Analogy engine",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    allowed = FORM_FIELDS | ({TEST_HOOK_FIELD} if config.test_hooks else frozenset())

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": clean_message(error.detail)}, status_code=error.status, headers=error.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": clean_message(str(error.detail))}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in error.errors()]
        return JSONResponse({"detail": clean_message("; ".join(parts)) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        # Never expected (every bad input has its own 4xx); keep the answer JSON all the same.
        return JSONResponse({"detail": f"internal error: {type(error).__name__}"}, status_code=500)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"version": __version__, "device": device, **manager.health()}

    @app.get("/v1/params")
    def params_schema() -> dict[str, Any]:
        return AnalogyParams.schema()

    @app.post("/v1/jobs", status_code=201, openapi_extra=SUBMIT_SCHEMA)
    async def submit(request: Request) -> JSONResponse:
        reader = FormReader(request.headers.get("content-type", ""), allowed, config.max_body)
        try:
            reservation = manager.reserve()
        except QueueFull as full:
            raise ApiError(
                429, "the job queue is full; try again later", {"Retry-After": str(full.retry_after)}
            ) from None
        with reservation:
            try:
                parts = await read_body(request, reader, config.body_timeout, stopping)
            except ClientDisconnect:
                return JSONResponse({"detail": "client disconnected"}, status_code=400)
            params = parse_params(parts.get("params"))
            job_device = device_for(params, device)
            hook = parse_hook(parts.get(TEST_HOOK_FIELD))
            a = await run_in_threadpool(decode_image, parts, "a")
            b_prime = await run_in_threadpool(decode_image, parts, "b_prime")
            job = manager.submit(reservation, a, b_prime, params, job_device, hook)
        # "queued" as API.md promises, even if the worker has picked it up a moment ago.
        return JSONResponse({"id": job.id, "state": "queued"}, status_code=201)

    def find_job(job_id: str, heartbeat: bool = True) -> Any:
        if not JOB_ID.fullmatch(job_id):
            raise ApiError(404, f"no job with id {job_id[:64]!r}")
        try:
            return manager.get(job_id, heartbeat)
        except UnknownJob:
            raise ApiError(404, f"no job with id {job_id!r} (unknown, or finished and freed)") from None

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus)
    def job_status(job_id: str) -> dict[str, Any]:
        return manager.status(find_job(job_id))

    @app.delete("/v1/jobs/{job_id}")
    def cancel_job(job_id: str) -> dict[str, Any]:
        job = find_job(job_id)
        try:
            manager.cancel(job_id)
        except UnknownJob:
            raise ApiError(404, f"no job with id {job_id!r}") from None
        job.stopped.wait(1.5)  # answer once the worker has let go, when that is quick
        return {"id": job.id, "state": job.state}

    @app.get("/v1/jobs/{job_id}/result/{name}")
    def job_result(job_id: str, name: str, fmt: str | None = Query(None, alias="format")) -> Response:
        if name not in RESULT_NAMES:
            raise ApiError(404, f"no result named {name[:64]!r}; names: {', '.join(RESULT_NAMES)}")
        job = find_job(job_id)
        result = job.result
        if job.state != "done" or result is None:
            raise ApiError(409, f"job {job.id} is {job.state}, results exist only when it is done")
        return result_response(result, name, fmt)

    return JsonErrors(
        SecurityMiddleware(
            app, token=token, port=port, max_body=config.max_body, on_authenticated=manager.touch
        )
    )


async def read_body(
    request: Request, reader: FormReader, timeout: float, stopping: threading.Event
) -> dict[str, Part]:
    """Feed the request body to `reader`, refusing an upload that is too slow (408) and
    answering at once when the engine begins to shut down (503).

    An upload may pause at most `timeout` seconds at a time, and after `t` seconds it must have
    delivered at least (t - timeout) · BODY_MIN_RATE bytes: a client trickling bytes cannot
    hold a queue slot for longer than that.
    """
    started = time.monotonic()
    slow = ApiError(
        408,
        f"the upload was too slow (a pause over {timeout:g} s, or under {BODY_MIN_RATE >> 20} MiB/s); "
        "nothing was queued",
        {"Connection": "close"},
    )
    while True:
        chunk_wait = asyncio.ensure_future(request.receive())
        waited_from = time.monotonic()
        try:
            while not chunk_wait.done():
                if stopping.is_set():
                    raise ApiError(
                        503, "the engine is shutting down; nothing was queued", {"Connection": "close"}
                    )
                now = time.monotonic()
                deadline = min(waited_from + timeout, started + timeout + reader.received / BODY_MIN_RATE)
                if now >= deadline:
                    raise slow
                await asyncio.wait({chunk_wait}, timeout=min(0.25, deadline - now))
        finally:
            if not chunk_wait.done():
                chunk_wait.cancel()
        message = chunk_wait.result()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        reader.feed(message.get("body", b""))
        if not message.get("more_body", False):
            return reader.finish()


class JsonErrors:
    """Outermost ASGI layer: whatever escapes the application before it has started its answer
    (an unexpected exception, or the task being cancelled when shutdown runs out of patience)
    still gets the API's JSON instead of uvicorn's plain-text 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if started:
                raise
            await send_error(send, 503, "the engine is shutting down", [(b"connection", b"close")])
        except Exception as error:
            if started:
                raise
            await send_error(
                send, 500, f"internal error: {type(error).__name__}", [(b"connection", b"close")]
            )


def parse_params(part: Part | None) -> AnalogyParams:
    if part is None:
        return AnalogyParams()
    try:
        data = json.loads(bytes(part.data).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ApiError(400, f"params is not valid JSON: {str(error)[:200]}") from None
    try:
        return AnalogyParams.from_dict(data)
    except (ParamsError, TypeError, ValueError) as error:
        raise ApiError(422, str(error)[:500]) from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def device_for(params: AnalogyParams, server_device: str) -> str:
    if params.device == "auto":
        return server_device
    try:
        return resolve_device(params.device)
    except ValueError as error:
        raise ApiError(422, str(error)) from None


def parse_hook(part: Part | None) -> str | None:
    if part is None:
        return None
    hook = bytes(part.data).decode("latin-1").strip()
    if hook not in TEST_HOOKS:
        raise ApiError(400, f"unknown test hook {hook[:40]!r}")
    return hook


def decode_image(parts: dict[str, Part], label: str) -> Any:
    part = parts.get(label)
    if part is None:
        raise ApiError(400, f"missing form part {label!r} (the image)")
    width, height = parts.get(f"{label}_width"), parts.get(f"{label}_height")
    return decode_part(
        part.data, part.content_type, width.data if width else None, height.data if height else None, label
    )


def result_response(result: Any, name: str, fmt: str | None) -> Response:
    sources = {
        "a_prime": lambda: result.a_prime,
        "b": lambda: result.b,
        "mask_a_prime": lambda: confidence_to_mask(result.confidence_a_prime),
        "mask_b": lambda: confidence_to_mask(result.confidence_b),
        "flow_ab": lambda: result.flow_ab,
        "flow_ba": lambda: result.flow_ba,
    }
    array = sources[name]()
    is_flow = name.startswith("flow")
    native = "npy" if is_flow else "png"
    if fmt is None or fmt == native:
        if is_flow:
            return Response(
                encode_npy(array),
                media_type="application/octet-stream",
                headers={"Content-Disposition": f'attachment; filename="{name}.npy"'},
            )
        return Response(encode_png(array), media_type="image/png")
    if fmt != "raw":
        raise ApiError(400, f"format must be raw or {native} for {name} (got {fmt[:40]!r})")
    data = array.astype("<f4", copy=False) if is_flow else array.astype("u1", copy=False)
    channels = 1 if data.ndim == 2 else data.shape[2]
    return Response(
        data.tobytes(),  # C order: rows top to bottom, channels interleaved
        media_type="application/octet-stream",
        headers={
            "X-Width": str(data.shape[1]),
            "X-Height": str(data.shape[0]),
            "X-Channels": str(channels),
            "X-Dtype": "float32" if is_flow else "uint8",
        },
    )
