"""Bad input: every answer a clean 4xx (or 429), never 5xx, nothing queued, and the engine healthy
afterwards. Against the API in this process (tests/api_harness.py: the engine's app, job manager,
protocol guards and uvicorn settings) with a fake analogy function: what is checked happens
before any job runs."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from api_harness import FakeAnalogy, InProcessApi
from PIL import Image
from server_harness import FAST_PARAMS, Engine, EngineApi, job_form, make_pair, png_bytes

MAX_BODY_MB = 4
QUEUE_SIZE = 2


@pytest.fixture(scope="module")
def engine() -> Iterator[InProcessApi]:
    """As `--queue-size 2 --max-body-mb 4` with DIA_TEST_HOOKS=1."""
    server = InProcessApi(FakeAnalogy(), queue_size=QUEUE_SIZE, max_body=MAX_BODY_MB << 20).start()
    yield server
    health = server.health()
    assert health is not None and health["queue_length"] == 0
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header for width×height RGB with almost no pixel data behind it."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def post_parts(engine: EngineApi, parts: list) -> requests.Response:
    return engine.post("/v1/jobs", files=parts)


def image_part(name: str, data: bytes, ctype: str = "image/png") -> tuple:
    return (name, (f"{name}.bin", data, ctype))


A, B_PRIME = make_pair()
GOOD_A = image_part("a", png_bytes(A))
GOOD_B = image_part("b_prime", png_bytes(B_PRIME))


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes; read one HTTP answer (headers and Content-Length body) or until closed."""
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            while True:
                head, sep, rest = reply.partition(b"\r\n\r\n")
                if sep:
                    length = [
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if line.startswith(b"content-length:")
                    ]
                    if length and len(rest) >= length[0]:
                        return reply
                more = sock.recv(65536)
                if not more:
                    return reply
                reply += more
        except ConnectionError:
            return reply


def expect(answer: requests.Response, status: int, words: str) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json"
    assert words.lower() in answer.json()["detail"].lower(), answer.json()


def assert_nothing_queued(engine: EngineApi) -> None:
    health = engine.get("/v1/health").json()
    assert health["queue_length"] == 0 and health["running"] is None, health


@pytest.mark.parametrize(
    ("parts", "status", "words"),
    [
        ([image_part("a", png_bytes(A)[:200]), GOOD_B], 400, "could not be decoded"),
        ([image_part("a", png_bytes(A)[:20]), GOOD_B], 400, "header"),
        ([image_part("a", png_claiming(100_000, 100_000)), GOOD_B], 413, "limit"),
        ([image_part("a", png_claiming(20_000, 20_000)), GOOD_B], 413, "limit"),
        ([image_part("a", png_claiming(0, 0)), GOOD_B], 400, "empty"),
        ([image_part("a", png_claiming(4, 4)), GOOD_B], 400, "at least"),
        ([image_part("a", png_claiming(64, 64)), GOOD_B], 400, "could not be decoded"),
        ([image_part("a", b""), GOOD_B], 400, "empty"),
        ([image_part("a", b"GIF89a" + b"\0" * 100), GOOD_B], 415, "not a PNG"),
        ([image_part("a", b"\xff\xd8\xff\xe0" + b"\0" * 100, "image/jpeg"), GOOD_B], 415, "not accepted"),
        ([image_part("a", A.tobytes(), "application/octet-stream"), GOOD_B], 400, "a_width"),
        (
            [
                image_part("a", b"\0" * 100, "application/octet-stream"),
                ("a_width", (None, "10")),
                ("a_height", (None, "10")),
                GOOD_B,
            ],
            400,
            "exactly 400 bytes",
        ),
        (
            [
                image_part("a", b"\0" * 100, "application/octet-stream"),
                ("a_width", (None, "0")),
                ("a_height", (None, "25")),
                GOOD_B,
            ],
            400,
            "empty",
        ),
        (
            [
                image_part("a", b"\0" * 100, "application/octet-stream"),
                ("a_width", (None, "100000")),
                ("a_height", (None, "100000")),
                GOOD_B,
            ],
            413,
            "limit",
        ),
        (
            [
                image_part("a", b"\0" * 100, "application/octet-stream"),
                ("a_width", (None, "-5")),
                ("a_height", (None, "5")),
                GOOD_B,
            ],
            400,
            "positive whole number",
        ),
        ([GOOD_B], 400, "missing form part 'a'"),
        ([GOOD_A, GOOD_B, ("evil", (None, "1"))], 400, "unknown form field"),
        ([GOOD_A, GOOD_A, GOOD_B], 400, "more than once"),
        ([GOOD_A, GOOD_B, ("params", (None, "{not json"))], 400, "not valid JSON"),
        ([GOOD_A, GOOD_B, ("params", (None, '{"size": NaN}'))], 400, "not valid JSON"),
        ([GOOD_A, GOOD_B, ("params", (None, "[" * 30000 + "]" * 30000))], 400, "not valid JSON"),
        ([GOOD_A, GOOD_B, ("params", (None, '{"seed": ' + "9" * 5000 + "}"))], 400, "not valid JSON"),
        ([GOOD_A, GOOD_B, ("params", (None, "x" * 70_000))], 413, "larger than"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"size": 10**9})))], 422, "size must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"size": 31})))], 422, "size must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"preset": "ludicrous"})))], 422, "preset must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"ratio": 1e308})))], 422, "ratio must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"seed": -1})))], 422, "seed must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"weight": True})))], 422, "weight must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"mode": ["x"]})))], 422, "mode must be"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"rm -rf": 1})))], 422, "unknown parameter"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps([1, 2])))], 422, "JSON object"),
        ([GOOD_A, GOOD_B, ("params", (None, json.dumps({"device": "cuda"})))], 422, "cuda"),
        ([GOOD_A, GOOD_B, ("_test_hook", (None, "explode"))], 400, "unknown test hook"),
    ],
)
def test_bad_submissions(engine: EngineApi, parts: list, status: int, words: str) -> None:
    expect(post_parts(engine, parts), status, words)
    assert_nothing_queued(engine)


def test_not_multipart(engine: EngineApi) -> None:
    expect(engine.post("/v1/jobs", json={"a": "x"}), 415, "multipart")
    expect(
        engine.post("/v1/jobs", data=b"x", headers={"Content-Type": "multipart/form-data"}), 400, "boundary"
    )
    body = b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + b"\0" * 1000  # no closing boundary
    expect(
        engine.post("/v1/jobs", data=body, headers={"Content-Type": "multipart/form-data; boundary=xyz"}),
        400,
        "closing boundary",
    )
    expect(
        engine.post(
            "/v1/jobs",
            data=b"garbage\r\n" * 10,
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        ),
        400,
        "",
    )
    assert_nothing_queued(engine)


def test_declared_body_too_large(engine: EngineApi) -> None:
    request = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{engine.port}\r\nX-DIA-Token: {engine.info['token']}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {10**12}\r\n\r\n"
    )
    reply = exchange(engine.port, request.encode()).decode(errors="replace")  # headers only, no body
    assert reply.split()[1] == "413", reply
    assert "larger than the limit" in reply


def test_streamed_body_too_large_without_content_length(engine: EngineApi) -> None:
    chunk = b"\0" * (256 * 1024)

    def body():  # a generator: requests sends it chunked, with no Content-Length to check
        yield b'--xyz\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: image/png\r\n\r\n'
        for _ in range(MAX_BODY_MB * 4 + 8):
            yield chunk

    started = time.monotonic()
    answer = engine.post(
        "/v1/jobs", data=body(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    expect(answer, 413, "larger than the limit")
    print(f"chunked oversize upload refused in {time.monotonic() - started:.2f} s")
    assert_nothing_queued(engine)


def test_sixteen_bit_and_palette_pngs_are_accepted(engine: EngineApi) -> None:
    grey16 = Image.fromarray(A[:, :, 0].astype(np.uint16) * 257)
    buffer = io.BytesIO()
    grey16.save(buffer, format="PNG")
    palette = io.BytesIO()
    Image.fromarray(B_PRIME).convert("P").save(palette, format="PNG")
    answer = post_parts(
        engine,
        [
            image_part("a", buffer.getvalue()),
            image_part("b_prime", palette.getvalue()),
            ("params", (None, json.dumps(FAST_PARAMS))),
            ("_test_hook", (None, "hold")),
        ],
    )
    assert answer.status_code == 201, answer.text
    assert engine.delete(f"/v1/jobs/{answer.json()['id']}").json()["state"] == "cancelled"
    engine.wait_idle(5)


@pytest.fixture(params=["in-process", pytest.param("process", marks=pytest.mark.slow)])
def burst_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineApi]:
    """A fresh engine with the module's options for a burst of 100 clients.

    In this process the server shares the GIL with the 100 client threads and reads requests
    more slowly, so connections pile up past the default cap of 64 (protocol.py closes the one
    waiting longest: a reset, by design) — its cap is set above the burst, since what is tested
    is queue admission. The real process keeps the default cap, as users run it (slow tier)."""
    if request.param == "in-process":
        server: Any = InProcessApi(FakeAnalogy(), queue_size=QUEUE_SIZE, max_body=MAX_BODY_MB << 20,
                                   max_connections=128).start()
    else:
        server = Engine(tmp_path, "--device", "cpu", "--lazy-model", "--queue-size", str(QUEUE_SIZE),
                        "--max-body-mb", str(MAX_BODY_MB), hooks=True).start()
    yield server
    assert server.stop() == 0, server.log()


def test_hundred_concurrent_submits(burst_engine: EngineApi) -> None:
    engine = burst_engine
    good = job_form(A, B_PRIME, FAST_PARAMS, extra={"_test_hook": "hold"})
    bad = [GOOD_A, image_part("b_prime", png_claiming(100_000, 100_000))]

    def send(index: int) -> requests.Response:
        with requests.Session() as session:
            session.headers["X-DIA-Token"] = engine.info["token"]
            return session.post(engine.url + "/v1/jobs", files=good if index % 4 else bad, timeout=60)

    started = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(send, range(100)))
    codes = Counter(answer.status_code for answer in answers)
    print(f"100 concurrent submits in {time.monotonic() - started:.2f} s: {dict(sorted(codes.items()))}")
    assert set(codes) <= {201, 413, 429}, codes
    # The queue is checked before a body is read, so the 25 bad uploads meet 413 or 429.
    assert codes[429] >= 100 - 25 - (QUEUE_SIZE + 1)
    # One may start running at once; the rest wait in the queue of QUEUE_SIZE.
    assert 1 <= codes[201] <= QUEUE_SIZE + 1
    for answer in answers:
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
            assert "queue is full" in answer.json()["detail"]
    # A bad upload holds a queue slot until its body is read, so the burst may end with room
    # left (fewer than QUEUE_SIZE accepted, a race in any engine): once the first job runs, the
    # engine must take exactly as many more as the queue holds, and refuse the next one.
    accepted = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    # Whichever accepted job reached the queue first runs, not necessarily the first in `answers`
    # (waiting for that one to run waited out the held job: a free slot, CI failed on it).
    deadline = time.monotonic() + 30
    while not any(engine.status(job_id)["state"] == "running" for job_id in accepted):
        assert time.monotonic() < deadline, "no accepted job started running"
        time.sleep(0.05)
    while len(accepted) < QUEUE_SIZE + 1:
        answer = engine.submit(A, B_PRIME, FAST_PARAMS, extra={"_test_hook": "hold"})
        assert answer.status_code == 201, (len(accepted), answer.text)
        accepted.append(answer.json()["id"])
    refused = engine.submit(A, B_PRIME, FAST_PARAMS, extra={"_test_hook": "hold"})
    assert refused.status_code == 429 and "queue is full" in refused.json()["detail"], refused.text
    for job_id in accepted:
        assert engine.delete(f"/v1/jobs/{job_id}").status_code == 200
    engine.wait_idle(5)
    assert engine.get("/v1/health").status_code == 200


def test_malformed_http_is_refused_cleanly(engine: EngineApi) -> None:
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64 + b"\r\n\r\n",
        b"GET /v1/health HTTP/9.9\r\n\r\n",
        b"NOT-A-METHOD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n",
    ):
        reply = exchange(engine.port, garbage)
        assert not reply.startswith(b"HTTP/1.1 5"), reply[:200]
    assert engine.get("/v1/health").status_code == 200
