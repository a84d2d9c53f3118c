"""Hypothesis throws well over 1000 generated requests at a running engine: methods, paths, ids,
headers (token, Host, Origin) and multipart bodies from valid to garbage. The engine must answer
every one with a non-5xx status, never crash, and stay healthy.

The engine is the API in this process (tests/api_harness.py: the engine's app, protocol guards
and uvicorn settings) over the real analogy function and the session's CPU model, so accepted
jobs run the real algorithm on whatever the fuzzer sent; its log is recorded and must hold no
traceback."""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from api_harness import InProcessApi, ModelPool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

EXAMPLES = 1100
RESULT_NAMES = ["a_prime", "b", "mask_a_prime", "mask_b", "flow_ab", "flow_ba"]
FIELDS = ["params", "a", "b_prime", "a_width", "a_height", "b_prime_width", "b_prime_height"]
PARAM_KEYS = ["mode", "preset", "size", "device", "seed", "weight", "ratio", "refine", "full_resolution"]
# Printable ASCII without leading/trailing blanks: what requests is willing to send as a header value.
HEADER_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def server(engine: Any) -> Iterator[InProcessApi]:
    """As `--queue-size 2 --abandon-after 2 --max-body-mb 2`, without test hooks."""
    from analogy_engine import analogy

    api = InProcessApi(analogy, hooks=False, pool=ModelPool(engine), queue_size=2, abandon_after=2,
                       max_body=2 << 20).start()
    yield api
    assert api.stop() == 0, api.log()


def png(width: int, height: int, seed: int, mode: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )


sizes = st.integers(min_value=0, max_value=40) | st.sampled_from([2**31, 100_000, 30_001])
image_bytes = st.one_of(
    st.builds(
        png,
        st.integers(8, 24),
        st.integers(8, 24),
        st.integers(0, 2**16),
        st.sampled_from(["RGB", "RGBA", "L", "P"]),
    ),
    st.builds(
        lambda w, h, seed, cut: png(w, h, seed, "RGB")[:cut],
        st.integers(8, 24),
        st.integers(8, 24),
        st.integers(0, 99),
        st.integers(0, 400),
    ),
    st.builds(png_header, sizes, sizes),
    st.binary(max_size=2000),
    st.builds(lambda w, h: bytes(w * h * 4), st.integers(0, 30), st.integers(0, 30)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
param_values = {
    "mode": st.sampled_from(["photo-to-style", "style-to-style", "style-to-photo", "photo-to-photo", "x"]),
    "preset": st.sampled_from(["faithful", "balanced", "fast", "FAST"]),
    "size": st.integers(-5, 100) | st.sampled_from([32, 48, 2049, None]),
    "device": st.sampled_from(["auto", "cpu", "cuda", "tpu"]),
    "seed": st.integers(-1, 2**31),
    "weight": st.sampled_from([1, 2, 3, 0, None, "2"]),
    "ratio": st.floats(-1, 2, allow_nan=False) | st.none(),
    "refine": st.booleans() | st.none() | st.just("yes"),
    "full_resolution": st.booleans() | st.none(),
}
params_text = st.one_of(
    st.fixed_dictionaries({}, optional=param_values).map(json.dumps),
    st.dictionaries(st.sampled_from(PARAM_KEYS) | st.text(max_size=8), json_values, max_size=4).map(
        json.dumps
    ),
    json_values.map(json.dumps),
    st.text(max_size=60),
)
dimension_text = st.integers(-3, 40).map(str) | st.sampled_from(["", "1e3", "٣", " 16 ", "99999999999"])


@st.composite
def image_parts(draw, name: str) -> list[tuple[str, str, bytes]]:
    """One image as a form carries it: mostly well-formed PNG or raw RGBA, sometimes not."""
    width, height = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    kind = draw(st.sampled_from(["png", "png", "raw", "raw", "junk"]))
    if kind == "png":
        mode = draw(st.sampled_from(["RGB", "L", "RGBA"]))
        return [(name, "image/png", png(width, height, draw(st.integers(0, 99)), mode))]
    if kind == "raw":
        declared = draw(st.sampled_from([width, width, width, width + 1, 0]))
        pixel = bytes(draw(st.lists(st.integers(0, 255), min_size=4, max_size=4)))
        return [
            (name, "application/octet-stream", pixel * (width * height)),
            (f"{name}_width", "", str(declared).encode()),
            (f"{name}_height", "", str(height).encode()),
        ]
    ctype = draw(st.sampled_from(["image/png", "application/octet-stream", "", "image/jpeg"]))
    return [(name, ctype, draw(image_bytes))]


@st.composite
def parts(draw) -> list[tuple[str, str, bytes]]:
    """(name, content type, data) of each form part."""
    out: list[tuple[str, str, bytes]] = []
    if draw(st.integers(0, 4)) > 0:  # mostly the expected fields, so that requests get past the form
        if draw(st.integers(0, 5)) > 0:
            out.append(("params", "", draw(params_text).encode("utf-8", "surrogatepass")))
        out += draw(image_parts("a")) + draw(image_parts("b_prime"))
    names = st.sampled_from(FIELDS) | st.sampled_from(["_test_hook", "evil"]) | st.text(max_size=8)
    for name in draw(st.lists(names, max_size=draw(st.sampled_from([0, 0, 0, 4])))):
        if name in ("a", "b_prime"):
            ctype = draw(st.sampled_from(["image/png", "application/octet-stream", "", "image/jpeg"]))
            out.append((name, ctype, draw(image_bytes)))
        elif name == "params":
            out.append((name, "", draw(params_text).encode("utf-8", "surrogatepass")))
        elif name.endswith(("_width", "_height")):
            out.append((name, "", draw(dimension_text).encode()))
        else:
            out.append((name, draw(st.sampled_from(["", "text/plain"])), draw(st.binary(max_size=40))))
    return draw(st.permutations(out)) if draw(st.integers(0, 5)) == 0 else out


def multipart(form: list[tuple[str, str, bytes]], boundary: str, damage: str) -> bytes:
    body = b""
    for name, ctype, data in form:
        quoted = name.replace('"', "%22").encode("utf-8", "surrogatepass")
        body += b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="' + quoted + b'"'
        if ctype:
            body += b'; filename="x"\r\nContent-Type: ' + ctype.encode()
        body += b"\r\n\r\n" + data + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    if damage == "truncate":
        body = body[: len(body) // 2]
    elif damage == "no-closing":
        body = body[: -len(boundary) - 6]
    elif damage == "garbage-headers":
        body = body.replace(b"Content-Disposition", b"Content-Dispostion", 1)
    return body


@st.composite
def fuzz_requests(draw) -> dict:
    # "@@JOB<n>@@" stands for the n-th accepted job's id, filled in when the request is sent: a
    # strategy must not depend on state that changes between runs.
    job_id = draw(
        st.integers(0, 50).map(lambda n: f"@@JOB{n}@@")
        | st.text("0123456789abcdef", min_size=32, max_size=32)
        | st.text(max_size=40)
        | st.just("../../etc/passwd")
    )
    quoted_id = job_id if job_id.startswith("@@JOB") else requests.utils.quote(job_id, safe="")
    result = draw(st.sampled_from(RESULT_NAMES) | st.text("abcflow_", max_size=10))
    job_paths = [f"/v1/jobs/{quoted_id}", f"/v1/jobs/{quoted_id}/result/{result}"]
    kind = draw(st.sampled_from(["submit"] * 5 + ["job"] * 3 + ["any"] * 2))
    if kind == "submit":
        path, method = "/v1/jobs", draw(st.sampled_from(["POST"] * 9 + ["PUT"]))
    elif kind == "job":
        path, method = draw(st.sampled_from(job_paths)), draw(st.sampled_from(["GET", "GET", "DELETE"]))
    else:
        others = ["/v1/health", "/v1/params", "/v1/jobs", "/docs", "/openapi.json", "/", "/v1", "/v2/jobs"]
        path = draw(st.sampled_from([*job_paths, *others]))
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]))
    headers: dict[str, str] = {}
    token = draw(st.sampled_from(["valid"] * 8 + ["missing", "wrong"]))
    if token == "valid":
        headers["X-DIA-Token"] = "@@TOKEN@@"
    elif token == "wrong":
        headers["X-DIA-Token"] = draw(HEADER_TEXT)
    if draw(st.integers(0, 15)) == 0:
        headers["Host"] = draw(HEADER_TEXT | st.just("evil.example:@@PORT@@"))
    if draw(st.integers(0, 15)) == 0:
        headers["Origin"] = draw(HEADER_TEXT | st.just("http://evil.example"))
    query = {}
    if draw(st.booleans()):
        query["format"] = draw(st.sampled_from(["raw", "png", "npy", "", "RAW"]) | st.text(max_size=8))
    body = None
    if method in ("POST", "PUT", "PATCH"):
        boundary = draw(st.sampled_from(["b0undary"] * 6 + ["x" * 70, "--", "a b"]))
        damage = draw(st.sampled_from(["none"] * 12 + ["truncate", "no-closing", "garbage-headers"]))
        body = multipart(draw(parts()), boundary, damage)
        headers["Content-Type"] = draw(
            st.sampled_from(
                [f"multipart/form-data; boundary={boundary}"] * 8
                + [
                    f'multipart/form-data; boundary="{boundary}"',
                    "multipart/form-data",
                    "application/json",
                    "image/png",
                    "",
                ]
            )
        )
    return {"method": method, "path": path, "headers": headers, "params": query, "data": body}


@pytest.mark.slow  # over 20 s on 2 cores
def test_fuzz_thousand_requests(server: InProcessApi) -> None:
    codes: Counter[int] = Counter()
    known_ids: list[str] = []

    def job_ref(n: int) -> str:
        return known_ids[n % len(known_ids)] if known_ids else "0" * 32

    session = requests.Session()
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        spec = data.draw(fuzz_requests())
        spec["path"] = re.sub(r"@@JOB(\d+)@@", lambda m: job_ref(int(m[1])), spec["path"])
        headers = {
            k: v.replace("@@TOKEN@@", server.token).replace("@@PORT@@", str(server.port))
            for k, v in spec["headers"].items()
        }
        answer = session.request(
            spec["method"],
            server.url + spec["path"],
            headers=headers,
            params=spec["params"],
            data=spec["data"],
            timeout=30,
        )
        codes[answer.status_code] += 1
        assert answer.status_code < 500, (spec, answer.status_code, answer.text[:500])
        if spec["method"] != "HEAD" and answer.content:
            answer.json() if answer.headers.get("content-type") == "application/json" else None
        if answer.status_code == 201:
            known_ids.append(answer.json()["id"])

    one_request()
    total = sum(codes.values())
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {total} requests in {elapsed:.1f} s, status codes: {dict(sorted(codes.items()))}, "
        f"jobs accepted: {len(known_ids)}"
    )
    assert total >= 1000
    assert not any(code >= 500 for code in codes)
    assert server.thread is not None and server.thread.is_alive(), "the server died"
    assert server.get("/v1/health").status_code == 200
    server.wait_idle(60)  # accepted jobs ran (or were abandoned) to their end: their errors are logged
    log = server.log()
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]
