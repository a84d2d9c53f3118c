"""Job life cycle: cancel, abandon, crash isolation, out-of-memory fallback.

The API in this process over a fake analogy function (tests/api_harness.py): the server's part
(queue, worker, cancel callbacks, abandon timer) is what is measured, in seconds. Only the
cancel that must reach the real algorithm runs in an engine process, in the slow tier.

Failures are forced through the test hooks (`_test_hook` form field, on only with
DIA_TEST_HOOKS=1 in a real engine); without them the field is refused like any unknown field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from api_harness import FakeAnalogy, InProcessApi
from server_harness import FAST_PARAMS, Engine, make_pair

ABANDON_AFTER = 2.0


@pytest.fixture
def api(fake_analogy: FakeAnalogy) -> Iterator[InProcessApi]:
    server = InProcessApi(fake_analogy, abandon_after=ABANDON_AFTER).start()
    yield server
    server.wait_idle(5)
    assert server.stop() == 0, server.log()


def submit(api: InProcessApi, hook: str | None = None, params: dict | None = None) -> str:
    """A job with a test hook goes by hand (the plug-in cannot send the field); one without goes
    through the plug-in's client."""
    a, b_prime = make_pair()
    if hook is None:
        return api.job(a, b_prime, params or FAST_PARAMS)
    answer = api.submit(a, b_prime, params or FAST_PARAMS, extra={"_test_hook": hook})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_cancel_stops_a_running_job_within_a_second(api: InProcessApi) -> None:
    # The hold hook polls cancel() every 20 ms, as analogy() is meant to: this measures the
    # server's part (DELETE → cancel callback → worker free), independent of the algorithm.
    job_id = submit(api, "hold")
    api.wait(job_id, states=("running",))
    started = time.monotonic()
    answer = api.delete(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200 and answer.json() == {"id": job_id, "state": "cancelled"}
    waited = time.monotonic() - started + api.wait_idle()
    print(f"held job stopped {waited:.2f} s after DELETE")
    assert waited < 1.0
    final = api.status(job_id)
    assert final["state"] == "cancelled" and final["results"] == []
    assert api.get(f"/v1/jobs/{job_id}/result/a_prime").status_code == 409
    assert api.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"  # idempotent


def test_cancel_queued_job(api: InProcessApi) -> None:
    first = submit(api, "hold")
    second = submit(api, "hold")
    assert api.status(second)["state"] == "queued"
    assert api.delete(f"/v1/jobs/{second}").json()["state"] == "cancelled"
    assert api.health()["queue_length"] == 0
    api.cancel(first)  # as the plug-in cancels
    api.wait_idle(5)
    assert api.status(first)["state"] == "cancelled"


def test_crash_fails_only_that_job(api: InProcessApi, fake_analogy: FakeAnalogy) -> None:
    crashed = submit(api, "fail")
    status, _ = api.wait(crashed)
    assert status["state"] == "failed"
    assert "forced failure" in status["error"]
    out_of_memory = submit(api, "memory_error")
    status, _ = api.wait(out_of_memory)
    assert status["state"] == "failed" and "out of memory" in status["error"]
    assert fake_analogy.calls == []  # neither reached the analogy function
    after = api.run(*make_pair(), FAST_PARAMS)  # the worker lives on: a whole job as the plug-in runs it
    assert after["status"]["state"] == "done" and after["a_prime"].shape == make_pair()[0].shape
    assert len(fake_analogy.calls) == 1
    log = api.log()
    assert "crashed" in log and "Traceback" in log  # with its traceback, for the user's bug report


def test_cuda_out_of_memory_retries_smaller_and_says_so(api: InProcessApi, fake_analogy: FakeAnalogy) -> None:
    job_id = submit(api, "cuda_oom", params={**FAST_PARAMS, "size": 48})
    status, _ = api.wait(job_id)
    assert status["state"] == "done", status
    assert "out of GPU memory" in status["degraded"]
    assert status["report"]["server"]["degraded"] == status["degraded"]
    assert [call.size for call in fake_analogy.calls] == [32]  # ran at the smaller working size


def test_abandoned_jobs_are_cancelled(api: InProcessApi) -> None:
    running = submit(api, "hold")
    queued = submit(api, "hold")
    api.wait(running, states=("running",))
    started = time.monotonic()
    # From now on only /v1/health, which is not a job's heartbeat.
    waited = api.wait_idle(timeout=ABANDON_AFTER + 5)
    print(f"abandoned jobs stopped {time.monotonic() - started:.2f} s after the last poll")
    assert ABANDON_AFTER - 0.5 < waited < ABANDON_AFTER + 1.5
    for job_id in (running, queued):
        status = api.status(job_id)
        assert status["state"] == "cancelled"
        assert "abandoned" in status["error"]


def test_polling_keeps_a_job_alive(api: InProcessApi) -> None:
    job_id = submit(api, "hold")
    deadline = time.monotonic() + ABANDON_AFTER * 2
    while time.monotonic() < deadline:
        assert api.status(job_id)["state"] in ("queued", "running")  # the plug-in's poll
        time.sleep(0.3)
    assert api.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    api.wait_idle(5)


def test_hooks_need_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, fake_analogy: FakeAnalogy
) -> None:
    """The engine's command line without DIA_TEST_HOOKS=1 gives a configuration without hooks,
    and an API over it refuses the field as unknown and queues nothing."""
    from server.__main__ import build_parser, config_from_args

    parser = build_parser()
    monkeypatch.delenv("DIA_TEST_HOOKS", raising=False)
    config = config_from_args(parser.parse_args(["--device", "cpu", "--lazy-model"]), parser)
    assert config.test_hooks is False
    monkeypatch.setenv("DIA_TEST_HOOKS", "1")
    assert config_from_args(parser.parse_args([]), parser).test_hooks is True
    monkeypatch.setenv("DIA_TEST_HOOKS", "yes")  # only "1" turns them on
    assert config_from_args(parser.parse_args([]), parser).test_hooks is False
    with InProcessApi(fake_analogy, hooks=config.test_hooks) as server:
        answer = server.submit(*make_pair(), FAST_PARAMS, extra={"_test_hook": "fail"})
        assert answer.status_code == 400
        assert "unknown form field" in answer.json()["detail"]
        assert server.health()["queue_length"] == 0


# ---------------------------------------------------------------------------------------------
# The real algorithm, in an engine process


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    server = Engine(tmp_path_factory.mktemp("jobs"), "--device", "cpu").start()
    yield server
    assert server.stop() == 0, server.log()


@pytest.mark.slow  # over 20 s on 2 cores
def test_cancel_reaches_the_real_algorithm(engine: Engine) -> None:
    # A working size that takes well over ten seconds here; cancelled inside the L-BFGS
    # inversion, which polls cancel() after every network pass.
    job_id = engine.job(*make_pair(), {"size": 128, "preset": "fast"})
    status, _ = engine.wait(job_id, states=("running",))
    while status["progress"] < 0.2:
        time.sleep(0.05)
        status = engine.status(job_id)
        assert status["state"] == "running", status
    started = time.monotonic()
    assert engine.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    waited = time.monotonic() - started + engine.wait_idle()
    print(
        f"real job stopped {waited:.2f} s after DELETE "
        f"(at progress {status['progress']:.2f}, {status['stage']})"
    )
    # How often analogy() polls is the engine's business; on a busy 2-core machine one network
    # pass can take seconds, so the bound here is loose.
    assert waited < 10.0
    assert engine.status(job_id)["state"] == "cancelled"
    assert "cancelled" in engine.log()
