"""Happy path against a real engine process: submit, progress, every result in both formats,
and the same pixels as analogy() in this process for the same input, params and seed."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from server_harness import FAST_PARAMS, Engine, make_pair

from analogy_engine import AnalogyParams, analogy
from analogy_engine import Engine as Model

RESULTS = ("a_prime", "b", "mask_a_prime", "mask_b", "flow_ab", "flow_ba")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    server = Engine(tmp_path_factory.mktemp("api"), "--device", "cpu").start()
    yield server
    assert server.stop() == 0, server.log()


def test_health_and_params(engine: Engine) -> None:
    health = engine.get("/v1/health").json()
    assert health["version"]
    assert health["device"] == "cpu"
    assert health["queue_length"] == 0
    assert health["running"] is None
    schema = engine.get("/v1/params").json()
    assert schema["preset"]["choices"] == ["faithful", "balanced", "fast"]
    assert schema["size"]["min"] == 32


@pytest.fixture(scope="module")
def in_process():
    """The same computation in this process: same seed, same device, same thread count."""
    a, b_prime = make_pair()
    return analogy(a, b_prime, AnalogyParams.from_dict(FAST_PARAMS), engine=Model.load("cpu"))


@pytest.mark.slow  # two analogies through a real engine process and one in this process
@pytest.mark.parametrize("raw_upload", [False, True], ids=["png-upload", "raw-upload"])
def test_job_round_trip(engine: Engine, in_process, raw_upload: bool) -> None:
    a, b_prime = make_pair()
    started = time.monotonic()
    answer = engine.submit(a, b_prime, FAST_PARAMS, raw=raw_upload)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    assert answer.json()["state"] == "queued"

    status, seen = engine.wait(job_id)
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
        native = engine.get(f"/v1/jobs/{job_id}/result/{name}")
        raw = engine.get(f"/v1/jobs/{job_id}/result/{name}", params={"format": "raw"})
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
        assert from_native.shape == shapes[name], name
        np.testing.assert_array_equal(from_native, from_raw)
        got[name] = from_native

    expected = in_process
    np.testing.assert_array_equal(got["a_prime"], expected.a_prime)
    np.testing.assert_array_equal(got["b"], expected.b)
    np.testing.assert_array_equal(got["flow_ab"], expected.flow_ab)
    np.testing.assert_array_equal(got["flow_ba"], expected.flow_ba)


def test_results_of_unfinished_and_unknown_jobs(engine: Engine) -> None:
    a, b_prime = make_pair()
    job_id = engine.submit(a, b_prime, {**FAST_PARAMS, "size": 64}).json()["id"]
    early = engine.get(f"/v1/jobs/{job_id}/result/a_prime")
    assert early.status_code == 409, early.text
    assert engine.get(f"/v1/jobs/{job_id}/result/nonsense").status_code == 404
    assert engine.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert engine.get("/v1/jobs/not-an-id/result/a_prime").status_code == 404
    assert engine.delete(f"/v1/jobs/{'f' * 32}").status_code == 404
    assert engine.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    bad_format = engine.get(f"/v1/jobs/{job_id}/result/a_prime", params={"format": "jpeg"})
    assert bad_format.status_code in (400, 409)
