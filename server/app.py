"""The FastAPI application: routes of API.md over a JobManager, behind SecurityMiddleware."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from analogy_engine import AnalogyParams, ParamsError
from analogy_engine.contract import (
    MAX_ANIMATION_PIXELS,
    MAX_FRAMES,
    MIN_FRAMES,
    PAINT_RESULT_PARTS,
    frame_name,
    frame_part,
)
from analogy_engine.paint.params import PaintParams
from analogy_engine.params import OptionParams

from . import __version__
from .config import BODY_MIN_RATE, ServerConfig
from .engines import resolve_device
from .errors import ApiError
from .guide import GUIDANCE_LABELS, analogy_result_names, beyond_limit, check_job, guide_upload
from .images import clean_message, decode_image, encode_npy, encode_png, image_part, part_size
from .jobs import RESULT_NAMES, Job, JobManager, QueueFull, UnknownJob, new_id
from .models import JobStatus
from .security import SecurityMiddleware, send_error
from .tasks import PendingImage, animate_task, paint_task
from .test_hooks import NAMES as TEST_HOOKS
from .uploads import MAX_PARTS, FormReader, Part

JOB_ID = re.compile(r"[0-9a-f]{32}")
RESULT_NAME = re.compile(r"[a-z0-9_]{1,16}")  # mask_b_2, frame_0001
P = TypeVar("P", bound=OptionParams)
TEST_HOOK_FIELD = "_test_hook"


def image_fields(*labels: str) -> frozenset[str]:
    """An image part and the width/height parts that raw RGBA needs."""
    return frozenset(f"{label}{suffix}" for label in labels for suffix in ("", "_width", "_height"))


FORM_FIELDS = image_fields("a", "b_prime", *GUIDANCE_LABELS) | {"params"}
PAINT_FIELDS = image_fields("image", "style") | {"params"}
FRAME_LABELS = tuple(frame_part(k) for k in range(1, MAX_FRAMES + 1))
ANIMATE_FIELDS = image_fields("b_prime", *FRAME_LABELS) | {"params"}

def form_schema(params: dict[str, Any], about: str, required: list[str], images: list[str],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "params": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": params,
            "description": about,
        }
    }
    for label in images:
        properties[label] = {"type": "string", "format": "binary"}
        properties[f"{label}_width"] = properties[f"{label}_height"] = {"type": "integer"}
    properties.update(extra or {})
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


SUBMIT_SCHEMA = form_schema(
    AnalogyParams.json_schema(), "JSON object of AnalogyParams fields (GET /v1/params)", ["a", "b_prime"],
    ["a", "b_prime", *GUIDANCE_LABELS],
)
PAINT_SCHEMA = form_schema(
    PaintParams.json_schema(), "JSON object of PaintParams fields", ["image"], ["image", "style"]
)
ANIMATE_PARAMS = AnalogyParams.json_schema()
ANIMATE_PARAMS["properties"]["independent"] = {
    "type": "boolean", "description": "stylise each frame on its own (the flickering baseline)"
}
ANIMATE_SCHEMA = form_schema(
    ANIMATE_PARAMS,
    "JSON object of AnalogyParams fields, plus independent",
    ["b_prime", "frame_1", "frame_2"],
    ["b_prime", "frame_1", "frame_2"],
    {"frame_K": {"type": "string", "format": "binary", "description": f"frames 3 … {MAX_FRAMES}, in order"}},
)


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

    async def accept(request: Request, fields: frozenset[str], images: frozenset[str],
                     make_job: Callable[[dict[str, Part]], Awaitable[Job]],
                     explain: Callable[[str], str | None] | None = None) -> JSONResponse:
        """Read a job's upload into a reserved queue slot, build the job, queue it."""
        allowed = fields | ({TEST_HOOK_FIELD} if config.test_hooks else frozenset())
        reader = FormReader(request.headers.get("content-type", ""), allowed, config.max_body,
                            images=images, max_parts=max(MAX_PARTS, len(allowed)), explain=explain)
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
            hook = parse_hook(parts.get(TEST_HOOK_FIELD))
            job = await make_job(parts)
            job.hook = hook
            manager.enqueue(reservation, job)
        # "queued" as API.md promises, even if the worker has picked it up a moment ago.
        return JSONResponse({"id": job.id, "state": "queued"}, status_code=201)

    @app.post("/v1/jobs", status_code=201, openapi_extra=SUBMIT_SCHEMA)
    async def submit(request: Request) -> JSONResponse:
        async def make_job(parts: dict[str, Part]) -> Job:
            params = parse_params(parts.get("params"))
            job_device = device_for(params.device, device)
            upload = guide_upload(parts)  # every guidance part's header, before any pixel
            a = await run_in_threadpool(decode_image, parts, "a")
            b_prime = await run_in_threadpool(decode_image, parts, "b_prime")
            guidance = await run_in_threadpool(upload.decode, parts) if upload is not None else None
            if guidance is not None or params.mix:
                await run_in_threadpool(check_job, a, b_prime, params, guidance)
            inputs = f"A {a.shape[1]}x{a.shape[0]}, B' {b_prime.shape[1]}x{b_prime.shape[0]}"
            if upload is not None:
                inputs += f", {upload.summary}"
            return Job(id=new_id(), params=params, device=job_device, a=a, b_prime=b_prime, guidance=guidance,
                       result_names=analogy_result_names(upload.references if upload else 0), inputs=inputs)

        return await accept(request, FORM_FIELDS, frozenset({"a", "b_prime", *GUIDANCE_LABELS}), make_job,
                            explain=beyond_limit)

    @app.post("/v1/paint", status_code=201, openapi_extra=PAINT_SCHEMA)
    async def submit_paint(request: Request) -> JSONResponse:
        async def make_job(parts: dict[str, Part]) -> Job:
            params = parse_params(parts.get("params"), PaintParams)
            job_device = device_for(params.device, device)
            image = await run_in_threadpool(decode_image, parts, "image")
            style = await run_in_threadpool(decode_image, parts, "style") if "style" in parts else None
            inputs = f"image {image.shape[1]}x{image.shape[0]}" + (
                f", style {style.shape[1]}x{style.shape[0]}" if style is not None else "")
            return Job(id=new_id(), params=params, device=job_device, kind="paint",
                       task=paint_task(image, style, params), result_names=PAINT_RESULT_PARTS, inputs=inputs)

        return await accept(request, PAINT_FIELDS, frozenset({"image", "style"}), make_job)

    @app.post("/v1/animate", status_code=201, openapi_extra=ANIMATE_SCHEMA)
    async def submit_animate(request: Request) -> JSONResponse:
        async def make_job(parts: dict[str, Part]) -> Job:
            params, independent = parse_animate_params(parts.get("params"))
            job_device = device_for(params.device, device)
            frames = pending_frames(parts)
            b_prime = await run_in_threadpool(decode_image, parts, "b_prime")
            inputs = (f"{len(frames)} frames {frames[0].width}x{frames[0].height}, "
                      f"B' {b_prime.shape[1]}x{b_prime.shape[0]}{', independent' if independent else ''}")
            return Job(id=new_id(), params=params, device=job_device, kind="animate",
                       task=animate_task(frames, b_prime, params, independent),
                       result_names=tuple(frame_name(k) for k in range(1, len(frames) + 1)), inputs=inputs)

        return await accept(request, ANIMATE_FIELDS, frozenset({"b_prime", *FRAME_LABELS}), make_job)

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
        if not RESULT_NAME.fullmatch(name):
            raise ApiError(404, f"no result named {name[:64]!r}; names: {', '.join(RESULT_NAMES)}")
        job = find_job(job_id)
        if name not in job.result_names:
            names = job.result_names
            listed = ", ".join(names) if len(names) <= 8 else f"{names[0]} … {names[-1]}"
            raise ApiError(404, f"no result named {name!r} for this {job.kind} job; names: {listed}")
        result = job.result
        if job.state != "done" or result is None:
            raise ApiError(409, f"job {job.id} is {job.state}, results exist only when it is done")
        return result_response(result.part(name), name, fmt)

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


def parse_json(part: Part | None) -> Any:
    if part is None:
        return {}
    try:
        return json.loads(bytes(part.data).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ApiError(400, f"params is not valid JSON: {str(error)[:200]}") from None


def parse_params(part: Part | None, kind: type[P] = AnalogyParams) -> P:  # type: ignore[assignment]
    return params_from_dict(parse_json(part), kind)


def params_from_dict(data: Any, kind: type[P]) -> P:
    try:
        return kind.from_dict(data)  # type: ignore[no-any-return]
    except (ParamsError, TypeError, ValueError) as error:
        raise ApiError(422, str(error)[:500]) from None


def parse_animate_params(part: Part | None) -> tuple[AnalogyParams, bool]:
    """An animation's params: the analogy's, plus `independent` (default false)."""
    data = parse_json(part)
    if isinstance(data, dict) and "independent" in data:
        data = dict(data)
        independent = data.pop("independent")
        if not isinstance(independent, bool):
            raise ApiError(422, f"independent must be true or false (got {str(independent)[:40]!r})")
        return params_from_dict(data, AnalogyParams), independent
    return params_from_dict(data, AnalogyParams), False


def pending_frames(parts: dict[str, Part]) -> list[PendingImage]:
    """frame_1 … frame_N (no gaps), sizes checked from their headers, pixels left undecoded."""
    count = 0
    while count < MAX_FRAMES and FRAME_LABELS[count] in parts:
        count += 1
    stray = next((label for label in FRAME_LABELS[count:] if label in parts), None)
    if stray is not None:
        raise ApiError(400, f"{stray} was sent but {frame_part(count + 1)} was not: frames are numbered "
                       "from frame_1 without gaps")
    if count < MIN_FRAMES:
        raise ApiError(400, f"an animation needs at least {MIN_FRAMES} frames (frame_1, frame_2, …), "
                       f"got {count}")
    frames = []
    for label in FRAME_LABELS[:count]:
        w, h = part_size(*image_part(parts, label), label)
        if frames and (w, h) != (frames[0].width, frames[0].height):
            raise ApiError(400, f"{label} is {w}×{h}, frame_1 is {frames[0].width}×{frames[0].height}: "
                           "all frames must have one size")
        frames.append(PendingImage(label, lambda label=label: decode_image(parts, label), w, h))
    if count * frames[0].width * frames[0].height > MAX_ANIMATION_PIXELS:
        raise ApiError(413, f"{count} frames of {frames[0].width}×{frames[0].height} are over the limit of "
                       f"{MAX_ANIMATION_PIXELS // 2**20} megapixels for one animation; send fewer or "
                       "smaller frames")
    return frames


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def device_for(asked: str, server_device: str) -> str:
    if asked == "auto":
        return server_device
    try:
        return resolve_device(asked)
    except ValueError as error:
        raise ApiError(422, str(error)) from None


def parse_hook(part: Part | None) -> str | None:
    if part is None:
        return None
    hook = bytes(part.data).decode("latin-1").strip()
    if hook not in TEST_HOOKS:
        raise ApiError(400, f"unknown test hook {hook[:40]!r}")
    return hook


def result_response(array: np.ndarray | str, name: str, fmt: str | None) -> Response:
    if isinstance(array, str):  # the strokes' SVG
        if fmt not in (None, "svg"):
            raise ApiError(400, f"format must be svg for {name} (got {fmt[:40]!r})")
        return Response(array.encode("utf-8"), media_type="image/svg+xml")
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
