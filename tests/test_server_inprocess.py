"""The API tier in this process (tests/api_harness.py): create_app over a real JobManager with a
fake analogy function. Routes, job states, cancel, test hooks, the OOM fallback and the typed
status in the OpenAPI schema, in seconds and without the model."""

from __future__ import annotations

import numpy as np
import pytest
from api_harness import FakeAnalogy, InProcessApi
from server_harness import FAST_PARAMS, make_pair, png_bytes

from analogy_engine import AnalogyParams

RESULTS = ("a_prime", "b", "mask_a_prime", "mask_b", "flow_ab", "flow_ba")
STATUS_KEYS = ["id", "state", "progress", "stage", "elapsed", "error", "degraded", "results", "report",
               "queue_position"]


def submit(api: InProcessApi, hook: str | None = None, params: dict | None = None) -> str:
    a, b_prime = make_pair()
    answer = api.submit(a, b_prime, params or FAST_PARAMS, extra={"_test_hook": hook} if hook else None)
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "queued"
    return answer.json()["id"]


def test_round_trip(api: InProcessApi, fake_analogy: FakeAnalogy) -> None:
    job_id = submit(api)
    status, seen = api.wait(job_id)
    assert list(status) == STATUS_KEYS
    assert status["state"] == "done" and status["error"] is None and status["degraded"] is None
    assert sorted(status["results"]) == sorted(RESULTS)
    assert np.all(np.diff(seen) >= 0) and seen[-1] == 1.0
    assert status["report"]["fake"] is True and status["report"]["server"]["device"] == "cpu"
    assert fake_analogy.calls[0].size == FAST_PARAMS["size"]
    a, b_prime = make_pair()
    raw = api.get(f"/v1/jobs/{job_id}/result/a_prime", params={"format": "raw"})
    assert raw.status_code == 200 and raw.headers["X-Width"] == str(a.shape[1])
    flow = api.get(f"/v1/jobs/{job_id}/result/flow_ba")
    assert flow.status_code == 200 and flow.headers["content-type"] == "application/octet-stream"
    assert api.get(f"/v1/jobs/{job_id}/result/nothing").status_code == 404
    assert api.get("/v1/jobs/" + "0" * 32).status_code == 404


def test_status_is_typed_in_the_openapi_schema(api: InProcessApi) -> None:
    schema = api.get("/openapi.json").json()
    status = schema["components"]["schemas"]["JobStatus"]
    assert list(status["properties"]) == STATUS_KEYS
    answer = schema["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/JobStatus")
    form = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    params = form["schema"]["properties"]["params"]["contentSchema"]
    assert params == AnalogyParams.json_schema()  # derived from the one definition in params.py


@pytest.mark.parametrize("hook, words", [
    ("fail", "internal error: RuntimeError: test hook"),
    ("memory_error", "out of memory; try a smaller working size"),
])
def test_failing_hooks_fail_the_job_only(api: InProcessApi, hook: str, words: str) -> None:
    status, _ = api.wait(submit(api, hook))
    assert status["state"] == "failed" and words in status["error"], status
    assert api.wait(submit(api))[0]["state"] == "done"  # the worker lives on


def test_cuda_oom_hook_falls_back(api: InProcessApi, fake_analogy: FakeAnalogy) -> None:
    status, _ = api.wait(submit(api, "cuda_oom", {**FAST_PARAMS, "size": 48}))
    assert status["state"] == "done", status
    assert "out of GPU memory" in status["degraded"]
    assert status["report"]["server"]["degraded"] == status["degraded"]
    # The first attempt never reached the analogy function; the retry ran smaller.
    assert [call.size for call in fake_analogy.calls] == [32]
    status, _ = api.wait(submit(api, "cuda_oom"))  # nothing smaller to try on the CPU
    assert status["state"] == "failed" and status["error"].startswith("out of GPU memory even after")


def test_hold_then_cancel(api: InProcessApi) -> None:
    job_id = submit(api, "hold")
    status, _ = api.wait(job_id, states=("running",))
    assert status["stage"] == "held by test hook"
    queued = submit(api)
    assert api.get(f"/v1/jobs/{queued}").json()["queue_position"] == 0
    assert api.delete(f"/v1/jobs/{job_id}").json() == {"id": job_id, "state": "cancelled"}
    assert api.wait(queued)[0]["state"] == "done"
    final = api.get(f"/v1/jobs/{job_id}").json()
    assert final["state"] == "cancelled" and final["results"] == []
    assert api.get(f"/v1/jobs/{job_id}/result/a_prime").status_code == 409


def test_unknown_hook_and_hooks_off(fake_analogy: FakeAnalogy) -> None:
    a, b_prime = make_pair()
    with InProcessApi(fake_analogy) as api:
        answer = api.submit(a, b_prime, FAST_PARAMS, extra={"_test_hook": "explode"})
        assert answer.status_code == 400 and "unknown test hook" in answer.json()["detail"]
    with InProcessApi(fake_analogy, hooks=False) as api:
        answer = api.submit(a, b_prime, FAST_PARAMS, extra={"_test_hook": "fail"})
        assert answer.status_code == 400, answer.text


def test_bad_params_and_missing_image(api: InProcessApi) -> None:
    a, b_prime = make_pair()
    answer = api.submit(a, b_prime, {"ratio": 10**400})
    assert answer.status_code == 422 and "ratio" in answer.json()["detail"]
    only_a = [("params", (None, "{}")), ("a", ("a.png", png_bytes(a), "image/png"))]
    answer = api.post("/v1/jobs", files=only_a)
    assert answer.status_code == 400 and "b_prime" in answer.json()["detail"]
    assert api.get("/v1/health").json()["queue_length"] == 0
