"""The engine never lingers: --idle-exit, --parent-pid, SIGTERM; runtime file removed on exit.

Tests that start and end an engine process of their own (seconds each: torch is imported and
torn down) are in the slow tier; the quick tier keeps what exits before torch is imported, the
lock against the session's engine process (conftest.py's `engine_process`, whose SIGTERM exit
code and runtime-file removal its teardown checks) and the keep-results timer in this process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from api_harness import FakeAnalogy, InProcessApi
from server_harness import REPO, Engine, make_pair


def wait_exit(engine: Engine, timeout: float) -> float:
    started = time.monotonic()
    assert engine.proc is not None
    try:
        engine.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        engine.stop()
        pytest.fail(f"engine still running after {timeout} s:\n{engine.log()}")
    return time.monotonic() - started


@pytest.mark.slow  # an engine process of its own
def test_idle_exit(tmp_path) -> None:
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model", "--idle-exit", "2").start()
    started = time.monotonic()
    assert engine.get("/v1/health").status_code == 200  # a request counts as activity
    wait_exit(engine, 15)
    print(f"idle engine exited {time.monotonic() - started:.2f} s after the last request")
    assert engine.proc.returncode == 0
    assert time.monotonic() - started >= 1.9
    assert not engine.runtime_file.exists()
    assert "idle" in engine.log()


@pytest.mark.slow  # an engine process of its own
def test_parent_pid(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model", "--parent-pid", str(parent.pid)).start()
    try:
        time.sleep(0.5)
        assert engine.get("/v1/health").status_code == 200
        parent.kill()
        parent.wait()
        waited = wait_exit(engine, 10)
        print(f"engine exited {waited:.2f} s after its parent")
        assert waited < 3
        assert engine.proc.returncode == 0
        assert not engine.runtime_file.exists()
        assert f"parent process {parent.pid} is gone" in engine.log()
    finally:
        parent.kill()
        engine.stop()


def test_parent_already_gone(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "pass"])
    parent.wait()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--runtime-file",
            str(tmp_path / "e.json"),
            "--parent-pid",
            str(parent.pid),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "not running" in run.stderr
    assert not (tmp_path / "e.json").exists()


def test_second_engine_is_refused(engine_process: Engine) -> None:
    """The start-up lock: a second engine for the same runtime file exits 3 before importing
    torch, and the first one's file stays."""
    second = subprocess.run(
        [sys.executable, "-m", "server", "--runtime-file", str(engine_process.runtime_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3, second.stderr
    assert "already running" in second.stderr
    assert engine_process.runtime_file.exists()
    assert engine_process.health() is not None


@pytest.mark.slow  # an engine process of its own
def test_sigterm_removes_runtime_file(tmp_path) -> None:
    engine = Engine(tmp_path, "--device", "cpu", "--lazy-model").start()
    assert engine.runtime_file.exists()
    assert engine.stop() == 0  # SIGTERM
    assert not engine.runtime_file.exists()


@pytest.mark.slow  # an engine process of its own, and one that imports torch before it fails
def test_fixed_port_and_port_in_use(tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "--runtime-file",
                str(tmp_path / "busy.json"),
                "--port",
                str(port),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2 and "cannot listen" in run.stderr
    # Engine.start passes --port 0 first; the later --port wins.
    engine = Engine(tmp_path / "fixed", "--lazy-model", "--port", str(port)).start()
    try:
        assert engine.port == port
        assert engine.get("/v1/health").status_code == 200
    finally:
        assert engine.stop() == 0


def test_bad_command_line(tmp_path) -> None:
    for args in (["--port", "70000"], ["--queue-size", "0"], ["--device", "tpu"], ["--abandon-after", "-1"]):
        run = subprocess.run(
            [sys.executable, "-m", "server", *args], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 2, (args, run.stderr)


def test_finished_jobs_are_freed_after_keep_results() -> None:
    """As `--keep-results 1`, on the API in this process (the job manager's timer)."""
    with InProcessApi(FakeAnalogy(), keep_results=1) as engine:
        a, b_prime = make_pair()
        job_id = engine.submit(a, b_prime, extra={"_test_hook": "fail"}).json()["id"]
        status, _ = engine.wait(job_id)
        assert status["state"] == "failed"
        time.sleep(1.6)
        gone = engine.get(f"/v1/jobs/{job_id}")
        assert gone.status_code == 404 and "freed" in gone.json()["detail"]
