"""Guidance over HTTP (issue 10, docs/http-api.md): region maps, a structure mask and more
references as more image parts of POST /v1/jobs; B of each reference, its mask and `ref_ab` as
more results; every bad combination a 4xx that names the part, with nothing queued. Real jobs run
in process (tests/api_harness.py) on the session's CPU model at 64 pixels with the fast preset."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from api_harness import FakeAnalogy, InProcessApi, ModelPool
from PIL import Image
from server_harness import png_bytes
from test_server_bad_input import png_claiming

from analogy_engine import analogy
from analogy_engine.contract import (
    GUIDE_PARTS,
    MAX_REFERENCES,
    REF_AB,
    RESULT_PARTS,
    b_name,
    reference_part,
    regions_ref_part,
)

REGIONS_A, REGIONS_B, STRUCTURE = GUIDE_PARTS
PARAMS = {"size": 64, "preset": "fast", "seed": 4}
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
SIDE = 64


@pytest.fixture(scope="module")
def real_api(engine: Any) -> Iterator[InProcessApi]:
    with InProcessApi(analogy, pool=ModelPool(engine)) as app:
        yield app


FAKE = FakeAnalogy()  # records its calls: a refused job never reaches it


@pytest.fixture(scope="module")
def fake_api() -> Iterator[InProcessApi]:
    """What is refused is refused before any job runs, so no model is needed."""
    with InProcessApi(FAKE) as app:
        yield app


def picture(height: int, width: int, seed: int, tint: tuple[int, int, int] = (1, 1, 1)) -> np.ndarray:
    """Smooth fields, a disc and noise (something to match), scaled per channel by `tint`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(5 * x + seed), np.cos(4 * y - seed), np.sin(3 * (x + y))], axis=2) * 0.5 + 0.5
    base[(x - 0.4) ** 2 + (y - 0.6) ** 2 < 0.04] = (0.9, 0.2, 0.5)
    image = (base * 200 + rng.uniform(0, 55, (height, width, 3))) * np.asarray(tint)
    return np.clip(image, 0, 255).astype(np.uint8)


def halves(top: tuple[int, int, int], bottom: tuple[int, int, int], height: int = SIDE,
           width: int = SIDE) -> np.ndarray:
    regions = np.empty((height, width, 3), np.uint8)
    regions[: height // 2], regions[height // 2:] = top, bottom
    return regions


def png_part(image: np.ndarray) -> tuple[str, bytes, str]:
    return ("image.png", png_bytes(image), "image/png")


def raw_parts(label: str, image: np.ndarray) -> list[tuple[str, Any]]:
    """An image as the plug-in sends it: raw RGBA rows with its size."""
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return [(label, ("image.rgba", rgba.tobytes(), "application/octet-stream")),
            (f"{label}_width", (None, str(image.shape[1]))), (f"{label}_height", (None, str(image.shape[0])))]


def form(params: dict[str, Any] | None = None, raw: tuple[str, ...] = (),
         **images: Any) -> list[tuple[str, Any]]:
    """A job's parts: `images` by part name (an array, or bytes sent as a PNG), `raw` ones as RGBA."""
    parts: list[tuple[str, Any]] = [("params", (None, json.dumps({**PARAMS, **(params or {})})))]
    for label, image in images.items():
        if isinstance(image, bytes):
            parts.append((label, ("image.png", image, "image/png")))
        elif label in raw:
            parts.extend(raw_parts(label, image))
        else:
            parts.append((label, png_part(image)))
    return parts


def run_job(api: InProcessApi, parts: list[tuple[str, Any]]) -> dict[str, Any]:
    answer = api.post("/v1/jobs", files=parts)
    assert answer.status_code == 201, answer.text
    status, seen = api.wait(answer.json()["id"], timeout=120)
    assert status["state"] == "done", status
    assert seen == sorted(seen)
    return status


def fetch(api: InProcessApi, job_id: str, name: str, fmt: str | None = None) -> Any:
    answer = api.get(f"/v1/jobs/{job_id}/result/{name}", params={"format": fmt} if fmt else None)
    assert answer.status_code == 200, (name, answer.text)
    if name.startswith("flow"):
        return np.load(io.BytesIO(answer.content))
    if fmt == "raw":
        shape = [int(answer.headers[h]) for h in ("X-Height", "X-Width", "X-Channels")]
        return np.frombuffer(answer.content, np.uint8).reshape(shape), answer.headers
    return np.asarray(Image.open(io.BytesIO(answer.content)))


@pytest.mark.slow  # a real analogy: 6–8 s on two busy cores
def test_swapped_region_maps_send_each_half_to_the_other(real_api: InProcessApi) -> None:
    """A's top labelled red and bottom blue, B′'s the other way round: each half of A matches
    into the other half of B′, and each half of B′ into the other half of A. B′ is A mirrored
    left to right, so without the maps every pixel would stay in its own half: the test fails
    if the maps do not reach the matcher. regions_a goes as raw RGBA, regions_b as PNG."""
    a = picture(SIDE, SIDE, 1)
    status = run_job(real_api, form(a=a, b_prime=np.ascontiguousarray(a[:, ::-1]), raw=(REGIONS_A,),
                                    **{REGIONS_A: halves(RED, BLUE), REGIONS_B: halves(BLUE, RED)}))
    assert status["results"] == list(RESULT_PARTS)  # one reference: nothing more
    assert len(status["report"]["regions"]) == 2
    middle = SIDE / 2 - 0.5  # flows are pixel positions: rows 0…31 are the top half
    for name in ("flow_ab", "flow_ba"):
        y = fetch(real_api, status["id"], name)[..., 1]
        top_to_bottom = float((y[: SIDE // 2] > middle).mean())
        bottom_to_top = float((y[SIDE // 2:] < middle).mean())
        assert top_to_bottom >= 0.99 and bottom_to_top >= 0.99, (name, top_to_bottom, bottom_to_top)


@pytest.mark.slow  # a real analogy: 6–8 s on two busy cores
def test_two_references_give_b_2_and_ref_ab_and_follow_the_mix(real_api: InProcessApi) -> None:
    """B′ red, reference_2 blue and of another size, mix 0,1: every pixel of A′ comes from
    reference_2 (ref_ab all 1, A′ blue); b_2 and its mask have reference_2's size."""
    a = picture(SIDE, SIDE, 2)
    red, blue = picture(SIDE, SIDE, 3, (1, 0.15, 0.15)), picture(48, 56, 5, (0.15, 0.15, 1))
    parts = form({"mix": "0,1"}, a=a, b_prime=red, **{reference_part(2): blue})
    status = run_job(real_api, parts)
    extra = [b_name(2), f"mask_{b_name(2)}", REF_AB]
    assert status["results"] == [*RESULT_PARTS, *extra]
    assert [r["share_of_a"] for r in status["report"]["references"]] == [0.0, 1.0]
    job = status["id"]
    assert fetch(real_api, job, "b").shape == (SIDE, SIDE, 3)
    assert fetch(real_api, job, b_name(2)).shape == (48, 56, 3)
    assert fetch(real_api, job, f"mask_{b_name(2)}").shape == (48, 56)
    raw, headers = fetch(real_api, job, b_name(2), "raw")
    assert raw.shape == (48, 56, 3) and headers["X-Dtype"] == "uint8"
    which = fetch(real_api, job, REF_AB)  # PNG: grey, one byte a pixel
    assert which.shape == (SIDE, SIDE) and which.dtype == np.uint8
    assert (which == 1).all()
    which_raw, headers = fetch(real_api, job, REF_AB, "raw")
    assert headers["X-Channels"] == "1" and (which_raw[..., 0] == which).all()
    a_prime = fetch(real_api, job, "a_prime").reshape(-1, 3).astype(float).mean(0)
    assert a_prime[2] > 2 * a_prime[0], a_prime  # blue: reference_2's colours, not B′'s
    flow = fetch(real_api, job, "flow_ab")  # into reference_2's pixels
    assert flow[..., 0].max() <= 55 and flow[..., 1].max() <= 47


def test_plain_job_has_no_guidance_results(fake_api: InProcessApi) -> None:
    """The two-image job is as before: the analogy function is called without guidance (the
    fake one takes no such argument) and serves the six results only."""
    a, b_prime = picture(40, 40, 6), picture(40, 48, 7)
    status = run_job(fake_api, form(a=a, b_prime=b_prime))
    assert status["results"] == list(RESULT_PARTS)
    answer = fake_api.get(f"/v1/jobs/{status['id']}/result/{b_name(2)}")
    assert answer.status_code == 404 and b_name(2) in answer.json()["detail"]
    assert fake_api.get(f"/v1/jobs/{status['id']}/result/{REF_AB}").status_code == 404


A, B = picture(SIDE, SIDE, 8), picture(SIDE, SIDE, 9)
REF = picture(40, 48, 10)
R2, R3, M2, M3 = reference_part(2), reference_part(3), regions_ref_part(2), regions_ref_part(3)
TWO = {REGIONS_A: halves(RED, BLUE), REGIONS_B: halves(BLUE, RED)}
MORE = {reference_part(n): REF for n in range(2, MAX_REFERENCES + 1)}
HUGE = png_claiming(7000, 7000)  # 49 MP: allowed alone, but not four of them in one job


@pytest.mark.parametrize(
    ("params", "images", "raw", "status", "words"),
    [
        ({}, {REGIONS_A: halves(RED, BLUE, 48), REGIONS_B: halves(BLUE, RED)}, (), 400,
         f"{REGIONS_A} is {SIDE}×48 pixels but a is {SIDE}×{SIDE}"),
        ({}, {REGIONS_A: halves(RED, BLUE), REGIONS_B: halves(BLUE, RED, SIDE, 40)}, (REGIONS_B,), 400,
         f"{REGIONS_B} is 40×{SIDE} pixels but b_prime"),
        ({}, {STRUCTURE: np.zeros((SIDE, 32, 3), np.uint8)}, (), 400, f"{STRUCTURE} is 32×{SIDE}"),
        ({}, {REGIONS_A: halves(RED, BLUE), REGIONS_B: halves(RED, GREEN)}, (), 400,
         f"covers 2048 pixels of {REGIONS_A}"),
        ({}, {REGIONS_A: halves(RED, BLUE)}, (), 400, f"{REGIONS_A} was sent without {REGIONS_B}"),
        ({}, {R3: REF}, (), 400, f"{R3} was sent but {R2} was not"),
        ({}, {**MORE, reference_part(MAX_REFERENCES + 1): REF}, (), 400,
         f"{reference_part(MAX_REFERENCES + 1)}: at most {MAX_REFERENCES} references"),
        ({}, {**MORE, regions_ref_part(MAX_REFERENCES + 1): REF}, (), 400,
         f"{regions_ref_part(MAX_REFERENCES + 1)}: at most {MAX_REFERENCES} references"),
        ({}, {R2: REF, M2: halves(RED, BLUE, 40, 48)}, (), 400, f"{M2} was sent without {REGIONS_A}"),
        ({}, {**TWO, M2: halves(RED, BLUE, 40, 48)}, (), 400, f"{M2} was sent without {R2}"),
        ({}, {**TWO, R2: REF, R3: REF, M2: halves(RED, BLUE, 40, 48)}, (), 400, f"{M3} is missing"),
        ({}, {**TWO, R2: REF, M2: halves(RED, BLUE)}, (), 400,
         f"{M2} is {SIDE}×{SIDE} pixels but {R2} is 48×40"),
        ({"mix": "1,2,3"}, {R2: REF}, (), 422, "mix has 3 weight(s) for 2 reference(s)"),
        ({"mix": "1,1"}, {}, (), 422, "mix has 2 weight(s) for 1 reference(s)"),
        ({}, {"a": HUGE, "b_prime": HUGE, REGIONS_A: HUGE, REGIONS_B: HUGE}, (), 413, "megapixels together"),
    ],
    ids=["regions_a-size", "regions_b-size", "structure-size", "one-sided-colour", "unpaired",
         "reference-gap", "too-many-references", "too-many-region-maps", "regions_ref-without-regions_a",
         "regions_ref-without-reference", "regions_ref-missing", "regions_ref-size", "mix-length",
         "mix-without-references", "too-many-pixels"],
)
def test_bad_guidance_is_a_4xx_naming_the_part(fake_api: InProcessApi, params: dict[str, Any],
                                                images: dict[str, Any], raw: tuple[str, ...],
                                                status: int, words: str) -> None:
    before = len(FAKE.calls)
    answer = fake_api.post("/v1/jobs", files=form(params, raw, **{"a": A, "b_prime": B, **images}))
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"], answer.json()
    health = fake_api.health()
    assert health is not None and health["queue_length"] == 0 and health["running"] is None
    assert len(FAKE.calls) == before
