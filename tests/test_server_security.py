"""Security probes: token, Host allow-list, Origin refusal, no CORS, docs only with the token,
runtime file 0600, loopback only.

The HTTP rules run against the API in this process (tests/api_harness.py: the engine's app and
middleware); what depends on how `python -m server` wires them (its runtime file, the port and
token it hands the app, the address it binds) against the session's engine process
(conftest.py's `engine_process`). Removal of the runtime file on exit: test_server_lifecycle."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator

import pytest
import requests
from api_harness import FakeAnalogy, InProcessApi
from server_harness import FAST_PARAMS, Engine, EngineApi, job_form, make_pair

PATHS = ("/v1/health", "/v1/params", "/docs", "/openapi.json", "/v1/jobs/" + "0" * 32, "/nowhere")


@pytest.fixture(scope="module")
def engine() -> Iterator[InProcessApi]:
    """The API in this process, without test hooks (as the engine runs for users)."""
    server = InProcessApi(FakeAnalogy(), hooks=False).start()
    yield server
    assert server.stop() == 0, server.log()


def raw_get(engine: EngineApi, path: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(engine.url + path, headers=headers, timeout=10)


# ---------------------------------------------------------------------------------------------
# How the engine process wires them


def test_runtime_file_is_private_and_complete(engine_process: Engine) -> None:
    mode = stat.S_IMODE(os.stat(engine_process.runtime_file).st_mode)
    assert mode == 0o600, oct(mode)
    info = engine_process.info
    assert set(info) == {"port", "token", "pid", "version", "url"}
    assert info["pid"] == engine_process.proc.pid
    assert info["url"] == f"http://127.0.0.1:{engine_process.port}"
    assert len(info["token"]) >= 32


def test_process_checks_its_token_and_host(engine_process: Engine) -> None:
    """The token and port the process publishes are the ones its app checks."""
    for headers in ({}, {"X-DIA-Token": engine_process.token[:-1]}):
        assert raw_get(engine_process, "/v1/health", headers).status_code == 401
    for host in (f"127.0.0.1:{engine_process.port}", f"localhost:{engine_process.port}"):
        assert engine_process.get("/v1/health", headers={"Host": host}).status_code == 200
    assert engine_process.get("/v1/health", headers={"Host": "127.0.0.1:1"}).status_code == 400


def test_binds_loopback_only(engine_process: Engine) -> None:
    tables = [p for p in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(p)]
    if not tables:
        pytest.skip("no /proc/net/tcp on this system")
    listening = []
    for table in tables:
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.split(":")
                if int(port, 16) == engine_process.port and state == "0A":  # 0A: LISTEN
                    listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, little-endian hex; nothing on IPv6


# ---------------------------------------------------------------------------------------------
# The HTTP rules


@pytest.mark.parametrize("path", PATHS)
def test_token_is_required_everywhere(engine: EngineApi, path: str) -> None:
    for headers in (
        {},
        {"X-DIA-Token": "wrong"},
        {"X-DIA-Token": engine.info["token"][:-1]},
        {"X-DIA-Token": ""},
    ):
        answer = raw_get(engine, path, headers)
        assert answer.status_code == 401, (path, headers, answer.text)
        assert "token" in answer.json()["detail"].lower()
    assert raw_get(engine, path, {"x-dia-token": engine.info["token"]}).status_code in (200, 404)


def test_submit_without_token_changes_nothing(engine: EngineApi) -> None:
    a, b_prime = make_pair()
    answer = requests.post(engine.url + "/v1/jobs", files=job_form(a, b_prime, FAST_PARAMS), timeout=10)
    assert answer.status_code == 401
    assert engine.get("/v1/health").json()["queue_length"] == 0


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "evil.example",
        "127.0.0.1",
        "localhost",
        "127.0.0.1:1",
        "127.0.0.1:{port}.evil.example",
        "[::1]:{port}",
        "0.0.0.0:{port}",
        "127.0.0.2:{port}",
    ],
)
def test_host_allow_list(engine: EngineApi, host: str) -> None:
    answer = engine.get("/v1/health", headers={"Host": host.format(port=engine.port)})
    assert answer.status_code == 400, answer.text
    assert "Host" in answer.json()["detail"]


def test_allowed_hosts(engine: EngineApi) -> None:
    for host in (f"127.0.0.1:{engine.port}", f"localhost:{engine.port}"):
        assert engine.get("/v1/health", headers={"Host": host}).status_code == 200


def test_two_host_headers_are_refused(engine: EngineApi) -> None:
    request = (
        f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{engine.port}\r\nHost: evil.example\r\n"
        f"X-DIA-Token: {engine.info['token']}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
        sock.sendall(request.encode())
        reply = sock.recv(65536).decode(errors="replace")
    assert reply.split()[1] == "400", reply


@pytest.mark.parametrize("origin", ["http://evil.example", "null", f"http://127.0.0.1:{0}", ""])
def test_any_origin_is_refused(engine: EngineApi, origin: str) -> None:
    for method, path in (("GET", "/v1/health"), ("POST", "/v1/jobs"), ("DELETE", "/v1/jobs/" + "0" * 32)):
        answer = engine.session.request(method, engine.url + path, headers={"Origin": origin}, timeout=10)
        assert answer.status_code == 403, (method, answer.text)
        assert not any(h.lower().startswith("access-control-") for h in answer.headers)


def test_no_cors_headers_and_no_preflight(engine: EngineApi) -> None:
    answer = engine.get("/v1/health")
    assert answer.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in answer.headers)
    preflight = engine.session.options(
        engine.url + "/v1/jobs", headers={"Access-Control-Request-Method": "POST"}, timeout=10
    )
    assert preflight.status_code == 405
    assert not any(h.lower().startswith("access-control-") for h in preflight.headers)


def test_docs_only_with_token(engine: EngineApi) -> None:
    assert requests.get(engine.url + "/docs", timeout=10).status_code == 401
    assert requests.get(engine.url + "/openapi.json", timeout=10).status_code == 401
    assert engine.get("/docs").status_code == 200
    schema = engine.get("/openapi.json").json()
    assert "/v1/jobs" in schema["paths"]


def test_websocket_upgrade_is_refused(engine: EngineApi) -> None:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    answer = engine.get("/v1/health", headers=headers)
    assert answer.status_code != 101
