"""Regression tests for the server-side defects of issue 9 (an outside probe of the running engine).

Every test talks over real loopback sockets: to the API in this process (tests/api_harness.py:
the engine's app, protocol guards and uvicorn settings, a fake analogy function) for what the
HTTP layer does, and to a real `python -m server` process for what only a process shows (peak
memory, a file-descriptor limit, start-up over planted runtime files, the start-up lock,
signals). The runtime-file rules are checked on the very functions the engine and the plug-in use.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from api_harness import FakeAnalogy, InProcessApi
from plugin_client import load_plugin_client
from server_harness import REPO, Engine, EngineApi, make_pair, png_bytes

from server import runtime_file
from server.watchdog import Watchdog

dia_client = load_plugin_client()


# ---------------------------------------------------------------------------------------------
# helpers: raw HTTP over a socket, so that half requests and trickles are really half and slow


def connect(engine: EngineApi, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", engine.port), timeout=timeout)


def head(engine: EngineApi, method: str, path: str, extra: str = "", token: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{engine.port}"]
    if token:
        lines.append(f"X-DIA-Token: {engine.info['token']}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one response; the body is read to Content-Length."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += chunk
    header, body = data.split(b"\r\n\r\n", 1)
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sent before closing within `timeout` s; None if it is still open."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset
            return data
        if not chunk:
            return data
        data += chunk
    return None


def wait_exit(engine: Engine, timeout: float) -> int:
    assert engine.proc is not None
    try:
        return engine.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        engine.stop()
        pytest.fail(f"engine still running after {timeout} s:\n{engine.log()}")


@pytest.fixture(scope="module")
def engine() -> Iterator[InProcessApi]:
    """The API in this process, as `--lazy-model --header-timeout 1.5` without test hooks."""
    server = InProcessApi(FakeAnalogy(), hooks=False, header_timeout=1.5).start()
    yield server
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


# ---------------------------------------------------------------------------------------------
# 500 on a huge integer


def submit_with_params(engine: EngineApi, params: str) -> requests.Response:
    """POST a job of a small valid pair with `params` as the raw JSON text of its params part."""
    a, b_prime = make_pair()
    return engine.post(
        "/v1/jobs",
        files=[
            ("params", (None, params)),
            ("a", ("a.png", png_bytes(a), "image/png")),
            ("b_prime", ("b.png", png_bytes(b_prime), "image/png")),
        ],
    )


@pytest.mark.parametrize("field", ["ratio", "size", "seed", "weight"])
def test_huge_integer_param_is_422(engine: EngineApi, field: str) -> None:
    params = f'{{"{field}": 1{"0" * 400}}}'  # 400 digits: float() of it overflows
    answer = submit_with_params(engine, params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert field in answer.json()["detail"]


@pytest.mark.parametrize("params", ['{"ratio": 1e400}', '{"ratio": -1e400}', '{"size": 1e400}'])
def test_overflowing_float_param_is_422(engine: EngineApi, params: str) -> None:
    answer = submit_with_params(engine, params)
    assert answer.status_code == 422, answer.text


def test_huge_raw_width_is_400(engine: EngineApi) -> None:
    a, b_prime = make_pair()
    answer = engine.post(
        "/v1/jobs",
        files=[
            ("a", ("a.rgba", b"\0" * 64, "application/octet-stream")),
            ("a_width", (None, "9" * 400)),
            ("a_height", (None, "8")),
            ("b_prime", ("b.png", png_bytes(b_prime), "image/png")),
        ],
    )
    assert answer.status_code == 400, answer.text
    assert "a_width" in answer.json()["detail"]


def test_huge_content_length_is_json(engine: EngineApi) -> None:
    with connect(engine) as sock:
        sock.sendall(head(engine, "POST", "/v1/jobs", f"Content-Length: {'9' * 5000}\r\n"))
        status, headers, body = read_response(sock)
    assert status in (400, 413, 431), body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["detail"]


# ---------------------------------------------------------------------------------------------
# Memory bomb inside the limits


def grey16_png(side: int, value: int = 40000) -> bytes:
    """A flat 16-bit greyscale PNG, written row by row (Pillow would need the whole image)."""
    row = b"\x00" + struct.pack(">H", value) * side
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow  # an engine process of its own (its peak memory is what is measured)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_16bit_png_decodes_in_bounded_memory(tmp_path: Path) -> None:
    """A 7745×7745 16-bit grey PNG (129 KB, just under the 60 MP limit) sent to a real engine.

    Measured on the engine process's peak resident memory (VmHWM) around one upload:
    before the fix (whole image through float64) +1489 MB; after (8-bit conversion band by band)
    +310 MB. What must remain is the decoded 16-bit image (2 B/px = 120 MB) plus the RGB array
    handed to the job (3 B/px = 180 MB); 600 MB is twice that floor and under half the old peak.
    """
    side = 7745
    assert side * side <= 60_000_000
    data = grey16_png(side)
    print(f"PNG of {side}×{side} 16-bit grey: {len(data) / 1e3:.0f} KB")
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model", hooks=True).start()
    try:
        assert engine.get("/v1/health").status_code == 200
        before = peak_rss_mb(engine.proc.pid)
        _, b_prime = make_pair()
        answer = engine.post(
            "/v1/jobs",
            files=[
                ("a", ("a.png", data, "image/png")),
                ("b_prime", ("b.png", png_bytes(b_prime), "image/png")),
                ("_test_hook", (None, "fail")),
            ],
            timeout=120,
        )
        assert answer.status_code == 201, answer.text
        growth = peak_rss_mb(engine.proc.pid) - before
        print(f"engine peak RSS grew by {growth:.0f} MB while decoding it (was {before:.0f} MB)")
        assert growth < 600, growth
        status, _ = engine.wait(answer.json()["id"])
        assert status["state"] == "failed"  # the test hook; the decode is what is measured
    finally:
        assert engine.stop() == 0


# ---------------------------------------------------------------------------------------------
# Connections held forever


@pytest.mark.slow  # an engine process of its own (under a file-descriptor limit)
def test_half_request_lines_are_closed_and_health_still_answers(tmp_path: Path) -> None:
    """With the file limit at 64 and 150 connections that each send half a request line,
    /v1/health still answers at once (the cap closes the oldest idle ones) and every half
    request is closed after the header timeout. Before: health timed out, none was closed."""

    def low_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    engine = Engine(
        tmp_path,
        "--device",
        "cpu",
        "--lazy-model",
        "--header-timeout",
        "1.5",
        "--max-connections",
        "16",
        preexec=low_file_limit,
    ).start()
    half: list[socket.socket] = []
    try:
        for _ in range(150):
            sock = connect(engine)
            sock.sendall(b"GET /v1/hea")
            half.append(sock)
        time.sleep(0.3)
        started = time.monotonic()
        with connect(engine, timeout=5) as sock:
            sock.sendall(head(engine, "GET", "/v1/health"))
            status, headers, body = read_response(sock, timeout=5)
        took = time.monotonic() - started
        print(f"/v1/health answered in {took:.2f} s beside 150 half requests")
        assert status == 200 and json.loads(body)["running"] is None
        assert took < 2.0
        answers = [closed_by_server(sock, 4.0) for sock in half]
        assert all(answer is not None for answer in answers), "a half request is still open"
        timed_out = [answer for answer in answers if answer]
        assert timed_out, "the connections that stayed must get a 408"
        for answer in timed_out:
            assert answer.startswith(b"HTTP/1.1 408 ") and b"application/json" in answer
    finally:
        for sock in half:
            sock.close()
        assert engine.stop() == 0, engine.log()


def test_partial_request_after_keep_alive_is_closed(engine: EngineApi) -> None:
    """A kept-alive connection that then sends half a request was never closed (any byte
    cancels uvicorn's keep-alive timer)."""
    with connect(engine) as sock:
        sock.sendall(head(engine, "GET", "/v1/health"))
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /v1/he")
        started = time.monotonic()
        answer = closed_by_server(sock, 5.0)
        assert answer is not None, "connection still open 5 s after half a request"
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 1.0 < time.monotonic() - started < 4.0


def test_idle_connection_that_sends_nothing_is_closed(engine: EngineApi) -> None:
    with connect(engine) as sock:
        assert closed_by_server(sock, 5.0) == b""


# ---------------------------------------------------------------------------------------------
# Slow uploads hold the queue


def trickle(engine: EngineApi, answers: list[bytes], interval: float = 0.3) -> threading.Thread:
    """POST /v1/jobs whose body arrives one byte every `interval` s until the server answers."""

    def run() -> None:
        boundary = "trickle"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode() + b"\x89PNG" * 1000
        extra = (
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body) + 50}\r\n"
        )
        with connect(engine, timeout=30) as sock:
            sock.sendall(head(engine, "POST", "/v1/jobs", extra))
            sock.sendall(body[:100])
            sock.settimeout(interval)
            received = b""
            for byte in body[100:]:
                try:
                    sock.sendall(bytes([byte]))
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
                if b"\r\n\r\n" in received:
                    break
            answers.append(received + (closed_by_server(sock, 2.0) or b""))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_trickled_upload_is_refused_and_visible_in_health() -> None:
    """One byte every 0.3 s: before, it held its queue slot indefinitely, /v1/health showed an
    empty engine and --idle-exit never fired. Now health counts it under "uploads", it gets a
    408 after --body-timeout (1 s here), and the engine's idle watchdog (--idle-exit 3, the
    engine's own Watchdog over the job manager, as __main__ wires it) then fires. That the
    watchdog's stop ends the process is test_server_lifecycle's test_idle_exit."""
    stops: list[str] = []
    with InProcessApi(FakeAnalogy(), hooks=False, body_timeout=1) as engine:
        watchdog = Watchdog(stops.append, engine.manager.idle_seconds, idle_exit=3, parent_pid=None)
        watchdog.start()
        try:
            answers: list[bytes] = []
            thread = trickle(engine, answers)
            time.sleep(0.5)
            health = engine.health()
            assert health["uploads"] == 1 and health["queue_length"] == 0, health
            thread.join(10)
            assert answers, "the trickling upload was never answered"
            assert answers[0].startswith(b"HTTP/1.1 408 "), answers[0][:200]
            assert b"too slow" in answers[0] and b"application/json" in answers[0]
            assert engine.health()["uploads"] == 0
            assert not stops, stops  # not idle while the upload held its slot
            deadline = time.monotonic() + 10
            while not stops and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stops and "idle" in stops[0], stops
        finally:
            watchdog.cancel()


# ---------------------------------------------------------------------------------------------
# Runtime file trust


def test_runtime_file_reader_trusts_only_a_private_regular_file(tmp_path: Path) -> None:
    good = {"port": 1234, "token": "t" * 43, "pid": 1, "version": "0", "url": "http://127.0.0.1:1234"}
    private = tmp_path / "private.json"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(good).encode())
    os.close(fd)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(private)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    shared = tmp_path / "shared.json"
    shutil.copy(private, shared)
    shared.chmod(0o644)
    big = tmp_path / "big.json"
    fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps({**good, "pad": "x" * 10_000}).encode())
    os.close(fd)
    untrusted = [fifo, link, zero, shared, big, tmp_path / "missing.json", tmp_path]
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign.json"
        shutil.copy(private, foreign)
        os.chown(foreign, 65534, 65534)
        untrusted.append(foreign)
    for read in (runtime_file.read, dia_client.read_runtime_file):
        assert read(private) == good
        for path in untrusted:
            started = time.monotonic()
            assert read(path) is None, (read.__module__, path.name)
            assert time.monotonic() - started < 1.0, (read.__module__, path.name)


@pytest.mark.slow  # an engine process of its own, each
@pytest.mark.parametrize("plant", ["fifo", "dev_zero"])
def test_engine_starts_over_a_planted_fifo_or_device(tmp_path: Path, plant: str) -> None:
    """Before: a FIFO at the runtime-file path hung the start (open blocks) and a link to
    /dev/zero read without end. Now neither is opened: the engine starts and replaces it."""
    path = tmp_path / "engine.json"
    if plant == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model").start(timeout=40)
    try:
        assert stat.S_ISREG(os.lstat(path).st_mode)
        assert engine.get("/v1/health").status_code == 200
    finally:
        assert engine.stop() == 0
    assert not path.exists()


@pytest.mark.slow  # two engine processes
def test_planted_file_pointing_at_another_engine_does_not_stop_start(tmp_path: Path) -> None:
    """Before: a runtime file copied from another live engine made a new engine exit with
    "already running". Now the lock beside the file decides, not what the file says."""
    other = Engine(tmp_path / "other", "--device", "cpu", "--lazy-model").start()
    try:
        mine = tmp_path / "mine"
        mine.mkdir()
        fd = os.open(mine / "engine.json", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, other.runtime_file.read_bytes())
        os.close(fd)
        engine = Engine(mine, "--device", "cpu", "--lazy-model").start()
        try:
            assert engine.info["pid"] == engine.proc.pid != other.info["pid"]
            assert engine.get("/v1/health").status_code == 200
        finally:
            assert engine.stop() == 0
        assert other.get("/v1/health").status_code == 200
    finally:
        assert other.stop() == 0


# ---------------------------------------------------------------------------------------------
# Two engines started at the same instant


@pytest.mark.slow  # two engine processes
def test_two_engines_started_together_one_serves(tmp_path: Path) -> None:
    path = tmp_path / "engine.json"
    cmd = [sys.executable, "-m", "server", "--runtime-file", str(path), "--lazy-model", "--device", "cpu"]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.is_file() and any(p.poll() is not None for p in procs):
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a second engine, if it also runs, has published by now
        ended = [p for p in procs if p.poll() is not None]
        serving = [p for p in procs if p.poll() is None]
        assert len(ended) == 1 and len(serving) == 1, [p.poll() for p in procs]
        _, stderr = ended[0].communicate(timeout=5)
        assert ended[0].returncode == 3, stderr
        assert "already running" in stderr
        info = json.loads(path.read_text())
        assert info["pid"] == serving[0].pid
        engine = Engine(tmp_path).attach(info)
        assert engine.health() is not None  # answers the plug-in with the published token
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=20)
    assert procs[0].returncode in (0, 3) and procs[1].returncode in (0, 3)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Shutdown edges and error format


@pytest.mark.slow  # an engine process of its own; the same in this process below
def test_sigterm_during_upload_answers_json(tmp_path: Path) -> None:
    """Before: the upload's handler was cancelled 3 s into the graceful shutdown and uvicorn
    answered a plain-text 500. Now it is told at once and answers 503 JSON."""
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model").start()
    try:
        with connect(engine) as sock:
            extra = "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n"
            sock.sendall(head(engine, "POST", "/v1/jobs", extra) + b"--x\r\n")
            deadline = time.monotonic() + 5
            while engine.get("/v1/health").json()["uploads"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            started = time.monotonic()
            engine.proc.send_signal(signal.SIGTERM)
            status, headers, body = read_response(sock)
            took = time.monotonic() - started
        print(f"upload answered {took:.2f} s after SIGTERM: {status} {body!r}")
        assert status == 503 and headers["content-type"] == "application/json"
        assert "shutting down" in json.loads(body)["detail"]
        assert took < 2.0
        assert wait_exit(engine, 15) == 0
        assert not engine.runtime_file.exists()
    finally:
        engine.stop()


def test_shutdown_during_upload_answers_json() -> None:
    """The same defect in this process: when shutdown begins (what SIGTERM starts: uvicorn's
    should_exit, the engine's EngineServer telling the app), an upload still being read is
    answered 503 JSON at once instead of a plain-text 500 three seconds later."""
    engine = InProcessApi(FakeAnalogy(), hooks=False).start()
    try:
        with connect(engine) as sock:
            extra = "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n"
            sock.sendall(head(engine, "POST", "/v1/jobs", extra) + b"--x\r\n")
            deadline = time.monotonic() + 5
            while engine.health()["uploads"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            started = time.monotonic()
            assert engine.server is not None
            engine.server.should_exit = True
            status, headers, body = read_response(sock)
            took = time.monotonic() - started
        assert status == 503 and headers["content-type"] == "application/json"
        assert "shutting down" in json.loads(body)["detail"]
        assert took < 2.0
    finally:
        assert engine.stop() == 0, engine.log()


@pytest.mark.slow  # an engine process of its own
def test_sighup_removes_runtime_file(tmp_path: Path) -> None:
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model").start()
    try:
        engine.proc.send_signal(signal.SIGHUP)
        assert wait_exit(engine, 15) == 0
        assert not engine.runtime_file.exists()
    finally:
        engine.stop()


def test_damaged_png_message_has_no_memory_address(engine: EngineApi) -> None:
    a, b_prime = make_pair()
    good = png_bytes(a)
    bad_crc = good[:29] + b"\0\0\0\0" + good[33:]  # IHDR's CRC zeroed
    answer = engine.post(
        "/v1/jobs",
        files=[
            ("a", ("a.png", bad_crc, "image/png")),
            ("b_prime", ("b.png", png_bytes(b_prime), "image/png")),
        ],
    )
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "could not be decoded" in detail
    assert " at 0x" not in detail and "object" not in detail, detail


@pytest.mark.parametrize(
    "pieces",
    [
        [b"GARBAGE\r\n\r\n"],
        [b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n"],
        # Sent in two pieces, so h11 sees an incomplete head grow past its 16 KiB limit.
        [b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000, b"\r\n\r\n"],
        [b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"],
    ],
    ids=["request-line", "header-line", "huge-header", "two-lengths"],
)
def test_protocol_errors_are_json(engine: EngineApi, pieces: list[bytes]) -> None:
    """h11 refuses these before the application sees them; before, uvicorn answered text/plain."""
    with connect(engine) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.2)
        status, headers, body = read_response(sock)
    assert 400 <= status < 500, body
    assert headers["content-type"] == "application/json", (headers, body)
    assert json.loads(body)["detail"]


# ---------------------------------------------------------------------------------------------
# The plug-in file is executable in git


def test_plugin_file_is_executable_in_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-s", "gimp_plugin/deep_image_analogy/deep_image_analogy.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed, "the plug-in file is not tracked"
    assert listed[0] == "100755", f"git mode {listed[0]}: GIMP skips a plug-in file that is not executable"
