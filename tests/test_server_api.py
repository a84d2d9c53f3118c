"""Happy path against a real engine process (conftest.py's `engine_process`): submit, progress,
every result in both formats, and the same pixels as analogy() in this process for the same
input, params and seed."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from server_harness import FAST_PARAMS, Engine, make_pair

from analogy_engine import AnalogyParams, AnalogyResult, analogy

RESULTS = ("a_prime", "b", "mask_a_prime", "mask_b", "flow_ab", "flow_ba")


@pytest.fixture
def server(engine_process: Engine) -> Iterator[Engine]:
    yield engine_process
    engine_process.wait_idle()  # the session's process is shared: leave it idle


def test_health_and_params(server: Engine) -> None:
    health = server.health()
    assert health is not None
    assert health["version"]
    assert health["device"] == "cpu"
    assert health["queue_length"] == 0
    assert health["running"] is None
    schema = server.get("/v1/params").json()
    assert schema["preset"]["choices"] == ["faithful", "balanced", "fast"]
    assert schema["size"]["min"] == 32


@pytest.fixture(scope="module")
def in_process(engine: Any) -> AnalogyResult:
    """The same computation in this process (the session's CPU model, conftest.py): same seed,
    same device, same thread count."""
    a, b_prime = make_pair()
    return analogy(a, b_prime, AnalogyParams.from_dict(FAST_PARAMS), engine=engine)


@pytest.mark.slow  # two analogies through a real engine process and one in this process
@pytest.mark.parametrize("raw_upload", [False, True], ids=["png-upload", "raw-upload"])
def test_job_round_trip(server: Engine, in_process: AnalogyResult, raw_upload: bool) -> None:
    a, b_prime = make_pair()
    started = time.monotonic()
    if raw_upload:  # raw RGBA, as the plug-in's client sends it
        job_id = server.job(a, b_prime, FAST_PARAMS)
    else:
        answer = server.submit(a, b_prime, FAST_PARAMS)
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        assert answer.json()["state"] == "queued"

    status, seen = server.wait(job_id)
    print(f"job took {time.monotonic() - started:.2f} s, {len(seen)} polls")
    assert status["state"] == "done", status
    assert status["error"] is None and status["degraded"] is None
    assert np.all(np.diff(seen) >= 0), seen
    assert seen[-1] == 1.0
    assert sorted(status["results"]) == sorted(RESULTS)
    assert status["report"]["params"]["size"] == 32
    assert status["report"]["server"]["device"] == "cpu"

    shapes = {
        "a_prime": a.shape,
        "b": b_prime.shape,
        "mask_a_prime": a.shape[:2],
        "mask_b": b_prime.shape[:2],
        "flow_ab": a.shape[:2] + (2,),
        "flow_ba": b_prime.shape[:2] + (2,),
    }
    got: dict[str, np.ndarray] = {}
    for name in RESULTS:
        native = server.get(f"/v1/jobs/{job_id}/result/{name}")
        raw = server.get(f"/v1/jobs/{job_id}/result/{name}", params={"format": "raw"})
        assert native.status_code == 200 and raw.status_code == 200, (native.text, raw.text)
        assert raw.headers["content-type"] == "application/octet-stream"
        height, width, channels = (int(raw.headers[h]) for h in ("X-Height", "X-Width", "X-Channels"))
        if name.startswith("flow"):
            from_native = np.load(io.BytesIO(native.content), allow_pickle=False)
            from_raw = np.frombuffer(raw.content, dtype="<f4").reshape(height, width, channels)
        else:
            assert native.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(native.content))
            assert image.mode == ("L" if name.startswith("mask") else "RGB")
            from_native = np.asarray(image)
            from_raw = np.frombuffer(raw.content, dtype=np.uint8).reshape(height, width, channels)
            if channels == 1:
                from_raw = from_raw[:, :, 0]
            # What the plug-in receives (its raw fetch and size check) is the same picture.
            np.testing.assert_array_equal(server.result(job_id, name), from_raw)
        assert from_native.shape == shapes[name], name
        np.testing.assert_array_equal(from_native, from_raw)
        got[name] = from_native

    expected = in_process
    np.testing.assert_array_equal(got["a_prime"], expected.a_prime)
    np.testing.assert_array_equal(got["b"], expected.b)
    np.testing.assert_array_equal(got["flow_ab"], expected.flow_ab)
    np.testing.assert_array_equal(got["flow_ba"], expected.flow_ba)


def test_plugin_job_round_trip(server: Engine) -> None:
    """A whole job as the plug-in runs it (tests/gimp/engine.py's `run`: dia_client.run_job):
    the real algorithm in the process, every image result at its input's size."""
    a, b_prime = make_pair()
    out = server.run(a, b_prime, {**FAST_PARAMS, "device": "cpu"})
    assert out["status"]["state"] == "done" and out["status"]["degraded"] is None
    assert out["status"]["report"]["server"]["device"] == "cpu"
    assert out["a_prime"].shape == a.shape and out["b"].shape == b_prime.shape
    assert out["mask_a_prime"].shape == a.shape[:2] and out["mask_b"].shape == b_prime.shape[:2]
    assert out["a_prime"].std() > 5  # a picture, not a flat fill


def test_results_of_unfinished_and_unknown_jobs(server: Engine) -> None:
    a, b_prime = make_pair()
    job_id = server.submit(a, b_prime, {**FAST_PARAMS, "size": 64}).json()["id"]
    early = server.get(f"/v1/jobs/{job_id}/result/a_prime")
    assert early.status_code == 409, early.text
    assert server.get(f"/v1/jobs/{job_id}/result/nonsense").status_code == 404
    assert server.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert server.get("/v1/jobs/not-an-id/result/a_prime").status_code == 404
    assert server.delete(f"/v1/jobs/{'f' * 32}").status_code == 404
    assert server.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    bad_format = server.get(f"/v1/jobs/{job_id}/result/a_prime", params={"format": "jpeg"})
    assert bad_format.status_code in (400, 409)
