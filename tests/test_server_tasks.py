"""POST /v1/paint and POST /v1/animate (docs/http-api.md): the same job life as an analogy, the
engine's own results (a thin adapter: equal to calling analogy_engine directly), clear 4xx for
bad uploads. In process (tests/api_harness.py) with the session's real CPU model."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from api_harness import FakeAnalogy, InProcessApi
from PIL import Image
from server_harness import png_bytes

from analogy_engine import AnalogyParams
from analogy_engine.animate import animate
from analogy_engine.paint import from_svg, paint, painting_to_uint8

PAINT = {"strokes": 12, "size": 32, "seed": 1}
ANIMATE = {"size": 32, "preset": "fast", "seed": 2}


class OnePool:
    """The session's model as the engine pool."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.default_device, self.error, self.loaded = engine, "cpu", None, True

    def get(self, device: str) -> Any:
        return self.engine


@pytest.fixture(scope="module")
def real_api(engine: Any) -> Any:
    with InProcessApi(FakeAnalogy(), pool=OnePool(engine)) as app:
        yield app


def picture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour fields with an edge: something for strokes and matches to follow."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(3 * x + seed), np.cos(2 * y - seed), x * y], axis=2)
    image = (base - base.min()) / np.ptp(base) * 200 + rng.uniform(0, 40, (height, width, 3))
    image[: height // 2, : width // 3] = (230, 40, 30)
    return image.astype(np.uint8)


def pan(count: int, size: int = 40) -> list[np.ndarray]:
    wide = picture(size, size + 3 * count, 5)
    return [np.ascontiguousarray(wide[:, 3 * k: 3 * k + size]) for k in range(count)]


def png_file(label: str, image: np.ndarray) -> tuple[str, bytes, str]:
    return (f"{label}.png", png_bytes(image), "image/png")


def form(params: dict | None, **images: np.ndarray) -> dict[str, Any]:
    import json

    parts: dict[str, Any] = {label: png_file(label, image) for label, image in images.items()}
    if params is not None:
        parts["params"] = (None, json.dumps(params), "application/json")
    return parts


def run(api: Any, path: str, files: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    answer = api.post(path, files=files)
    assert answer.status_code == 201, answer.text
    status, seen = api.wait(answer.json()["id"], timeout=timeout)
    assert status["state"] == "done", status
    assert seen == sorted(seen)  # progress never goes back
    return status


def fetch_png(api: Any, job_id: str, name: str) -> np.ndarray:
    answer = api.get(f"/v1/jobs/{job_id}/result/{name}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", answer.text
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))


def test_paint_job_gives_the_engines_painting_and_strokes(real_api: Any) -> None:
    image = picture(40, 48, 1)
    status = run(real_api, "/v1/paint", form(PAINT, image=image))
    assert status["results"] == ["painting", "strokes"]
    assert status["report"]["strokes"] == 12 and status["report"]["params"]["strokes"] == 12
    painting = fetch_png(real_api, status["id"], "painting")
    direct = paint(image, 12, size=32, seed=1)
    np.testing.assert_array_equal(painting, painting_to_uint8(direct.painting))  # same seed, same strokes
    svg = real_api.get(f"/v1/jobs/{status['id']}/result/strokes")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    strokes, width, height = from_svg(svg.text)
    assert (len(strokes), width, height) == (12, 48, 40)
    raw = real_api.get(f"/v1/jobs/{status['id']}/result/painting", params={"format": "raw"})
    assert (raw.headers["X-Width"], raw.headers["X-Height"], raw.headers["X-Channels"]) == ("48", "40", "3")
    np.testing.assert_array_equal(np.frombuffer(raw.content, np.uint8).reshape(40, 48, 3), painting)
    results = f"/v1/jobs/{status['id']}/result"
    assert real_api.get(f"{results}/strokes", params={"format": "raw"}).status_code == 400
    assert real_api.get(f"{results}/a_prime").status_code == 404


@pytest.mark.parametrize(
    ("params", "images", "status", "words"),
    [
        ({"strokes": 0}, {"image": (40, 40)}, 422, "strokes must be an integer from 1"),
        ({"brush": "crayon"}, {"image": (40, 40)}, 422, "brush must be one of oil, marker"),
        ({"strokes": 5, "ratio": 1}, {"image": (40, 40)}, 422, "unknown parameter(s): ratio"),
        ({"strokes": 5}, {"image": (12, 40)}, 422, "each side must be at least 16"),
        ({"strokes": 5}, {"style": (40, 40)}, 400, "missing form part 'image'"),
        ({"strokes": 5}, {"image": (40, 40), "a": (40, 40)}, 400, "unknown form field 'a'"),
    ],
)
def test_paint_bad_input_is_a_clear_4xx(api: InProcessApi, params: dict, images: dict, status: int,
                                        words: str) -> None:
    files = form(params, **{label: picture(*shape, 0) for label, shape in images.items()})
    answer = api.post("/v1/paint", files=files)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert api.get("/v1/health").json()["queue_length"] == 0  # nothing was queued


def test_paint_job_cancels_within_a_second(real_api: Any) -> None:
    files = form({"strokes": 3000, "size": 256}, image=picture(256, 256, 3))
    answer = real_api.post("/v1/paint", files=files)
    job_id = answer.json()["id"]
    real_api.wait(job_id, states=("running",), interval=0.02)
    time.sleep(0.5)  # inside the Adam steps
    started = time.monotonic()
    assert real_api.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    waited = real_api.wait_idle(timeout=30) + (time.monotonic() - started)
    # Cancellation is polled every Adam step (a few ms to 0.1 s at this size); 3 s leaves room
    # for a loaded 2-core machine.
    assert waited < 3.0, waited


def test_animate_job_gives_the_engines_frames(real_api: Any, engine: Any) -> None:
    frames, b_prime = pan(3), picture(48, 40, 9)
    images = {f"frame_{k + 1}": frame for k, frame in enumerate(frames)}
    status = run(real_api, "/v1/animate", form(ANIMATE, b_prime=b_prime, **images))
    assert status["results"] == ["frame_0001", "frame_0002", "frame_0003"]
    report = status["report"]
    assert report["frames"] == 3 and report["mode"] == "coherent" and len(report["per_frame"]) == 3
    assert report["per_frame"][1]["warping_error"] is not None
    direct = animate(frames, b_prime, AnalogyParams(**ANIMATE, device="cpu"), engine=engine)
    for k, expected in enumerate(direct.frames):
        np.testing.assert_array_equal(fetch_png(real_api, status["id"], f"frame_{k + 1:04d}"), expected)
    assert real_api.get(f"/v1/jobs/{status['id']}/result/frame_0004").status_code == 404


@pytest.mark.slow  # a second animation (5 s); the coherent one above keeps the route in the quick tier
def test_animate_independent_is_the_frames_alone(real_api: Any, engine: Any) -> None:
    frames, b_prime = pan(2), picture(48, 40, 9)
    status = run(real_api, "/v1/animate", form({**ANIMATE, "independent": True}, b_prime=b_prime,
                                               frame_1=frames[0], frame_2=frames[1]))
    assert status["report"]["mode"] == "independent"
    direct = animate(frames, b_prime, AnalogyParams(**ANIMATE, device="cpu"), engine=engine, independent=True)
    np.testing.assert_array_equal(fetch_png(real_api, status["id"], "frame_0002"), direct.frames[1])


@pytest.mark.parametrize(
    ("params", "frames", "status", "words"),
    [
        ({}, {"frame_1": (40, 40)}, 400, "at least 2 frames"),
        ({}, {"frame_1": (40, 40), "frame_3": (40, 40)}, 400, "frame_3 was sent but frame_2 was not"),
        ({}, {"frame_1": (40, 40), "frame_2": (40, 48)}, 400, "frame_2 is 48×40, frame_1 is 40×40"),
        ({"independent": "yes"}, {"frame_1": (40, 40), "frame_2": (40, 40)}, 422, "independent must be true"),
        ({"strokes": 3}, {"frame_1": (40, 40), "frame_2": (40, 40)}, 422, "unknown parameter(s): strokes"),
        ({}, {"frame_1": (40, 40), "frame_2": (4, 40)}, 400, "frame_2 is 40×4 pixels"),
    ],
)
def test_animate_bad_input_is_a_clear_4xx(api: InProcessApi, params: dict, frames: dict, status: int,
                                          words: str) -> None:
    images = {label: picture(*shape, 1) for label, shape in frames.items()}
    answer = api.post("/v1/animate", files=form(params, b_prime=picture(40, 40, 2), **images))
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert api.get("/v1/health").json()["queue_length"] == 0


def test_animate_frame_limits_are_checked_before_decoding(api: InProcessApi) -> None:
    from analogy_engine.contract import MAX_ANIMATION_PIXELS

    # PNG headers claiming frames whose pixels together pass the limit: refused from the headers
    # alone (the bodies are not valid PNG data, so any decoding would answer 400 instead).
    side = 7000  # 49 MP a frame: each under the one-image limit, six together over the animation's
    count = MAX_ANIMATION_PIXELS // side**2 + 1
    header = png_bytes(picture(16, 16, 0))[:33]
    fake = header[:16] + side.to_bytes(4, "big") * 2 + header[24:]
    files = {f"frame_{k}": (f"{k}.png", fake, "image/png") for k in range(1, count + 1)}
    files["b_prime"] = png_file("b_prime", picture(40, 40, 0))
    answer = api.post("/v1/animate", files=files)
    assert answer.status_code == 413, answer.text
    assert "megapixels for one animation" in answer.json()["detail"]
