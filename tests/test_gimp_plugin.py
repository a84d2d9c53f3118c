"""The plug-in in a real GIMP (3.0 from Debian trixie, 3.2 from sid), against the real engine.

A cached Debian root with GIMP is built on first use (tests/gimp/build_root.sh, about 1–4
minutes, then instant). GIMP runs headless in batch mode; one GUI test runs it under Xvfb.
Needs root (debootstrap, chroot, mount namespaces). DIA_GIMP_SUITES picks the roots
(default: trixie,sid).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "gimp"))
import harness  # noqa: E402
import photos  # noqa: E402
from engine import EngineProcess  # noqa: E402

SUITES = [s for s in os.environ.get("DIA_GIMP_SUITES", "trixie,sid").split(",") if s]

pytestmark = [
    pytest.mark.gimp,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real-GIMP tests need Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="real-GIMP tests need root (debootstrap, chroot)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)"),
    pytest.mark.timeout(1800),
]

FAST = {"preset": "fast", "size": 64, "device": "cpu"}  # tiny: the engine part takes seconds
GROUP = "Deep Image Analogy"


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineProcess:
    folder = tmp_path_factory.mktemp("engine")
    proc = EngineProcess(folder / "engine.json", folder / "engine.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=SUITES)
def gimp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> harness.GimpRoot:
    suite = request.param
    try:
        root = harness.ensure_root(suite)
    except subprocess.CalledProcessError as err:
        if suite == "trixie":
            raise
        # sid moves daily; a day when GIMP cannot be installed there must not fail the project.
        pytest.skip(f"could not build the Debian {suite} root for GIMP {harness.SUITES[suite]}: {err}")
    work = tmp_path_factory.mktemp(f"gimp-{suite}")
    g = harness.GimpRoot(root, work, suite)
    g.install_plugin()
    shutil.copytree(harness.HERE, work / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    return g


class Inputs:
    """The pictures of one run, saved as raw RGBA where GIMP can read them."""

    def __init__(self, g: harness.GimpRoot) -> None:
        self.g = g
        self.arrays: dict[str, np.ndarray] = {}

    def layer(self, name: str, array: np.ndarray, x: int = 0, y: int = 0) -> dict[str, Any]:
        path = self.g.work / f"{name}.rgba"
        path.write_bytes(array.tobytes())
        self.arrays[name] = array
        return {"name": name, "file": self.g.inside(path), "width": array.shape[1],
                "height": array.shape[0], "x": x, "y": y}


def standard_layers(inputs: Inputs) -> dict[str, dict[str, Any]]:
    """Different sizes, offsets, alpha; a layer above and a background below the sources."""
    return {
        "Top": inputs.layer("Top", photos.painting(24, 20, seed=7), 2, 2),
        "Photo": inputs.layer("Photo", photos.with_alpha(photos.photo(72, 56)), 10, 6),
        "Painting": inputs.layer("Painting", photos.painting(64, 48), 40, 30),
        "Background": inputs.layer("Background", photos.photo(120, 90, seed=3)),
    }


def run_cases(g: harness.GimpRoot, cases: list[dict[str, Any]], name: str,
              runtime: Path | None, during=None) -> dict[str, dict[str, Any]]:  # noqa: ANN001
    """One gimp-console run over `cases`; `runtime` is copied where the plug-in looks for it."""
    published = g.work / "run" / "engine.json"
    published.unlink(missing_ok=True)
    if runtime is not None:
        shutil.copy(runtime, published)
    spec = harness.write_spec(g.work, cases, name)
    out = g.work / "out"
    for case in cases:
        shutil.rmtree(out / case["name"], ignore_errors=True)
    helper = threading.Thread(target=during, daemon=True) if during else None
    if helper:
        helper.start()
    started = time.monotonic()
    result = g.batch(g.work / "scripts" / "batch_cases.py", env={"DIA_TEST_SPEC": g.inside(spec)})
    print(f"[gimp {g.version}] {name}: {time.monotonic() - started:.1f} s")
    if helper:
        helper.join(60)
    log = result.stderr.decode(errors="replace")
    assert result.returncode == 0, log[-4000:]
    results = {}
    for case in cases:
        folder = out / case["name"]
        assert not (folder / "crash.txt").exists(), (folder / "crash.txt").read_text()
        assert (folder / "result.json").exists(), log[-4000:]
        results[case["name"]] = json.loads((folder / "result.json").read_text())
    return results


def dump(g: harness.GimpRoot, result: dict[str, Any], layer_name: str) -> tuple[np.ndarray, np.ndarray]:
    """A result layer's RGBA pixels and its mask, read back from GIMP."""
    row = by_name(result["tree_after"], layer_name)
    stem = Path(result["dumps"][layer_name].replace(harness.INSIDE, str(g.work), 1))
    rgba = np.frombuffer((stem.with_suffix(".rgba")).read_bytes(), np.uint8)
    mask = np.frombuffer((stem.with_suffix(".mask")).read_bytes(), np.uint8)
    shape = (row["height"], row["width"])
    return rgba.reshape(*shape, 4), mask.reshape(shape)


def source(g: harness.GimpRoot, result: dict[str, Any], name: str, like: np.ndarray) -> np.ndarray:
    """A source layer's pixels as GIMP handed them to the plug-in (after any conversion)."""
    raw = (g.work / "out" / result["name"] / f"source-{name}.rgba").read_bytes()
    return np.frombuffer(raw, np.uint8).reshape(like.shape)


def by_name(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [row for row in rows if row["name"] == name]
    assert len(matches) == 1, (name, rows)
    return matches[0]


def geometry(row: dict[str, Any]) -> tuple[int, int, int, int]:
    return row["x"], row["y"], row["width"], row["height"]


def top_level(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows if row["depth"] == 0]


def result_layers(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The layers of a successful run's result group, after checking the sources are untouched."""
    assert run["success"], run["error"]
    assert all(run["sources_unchanged"].values()), run["sources_unchanged"]
    return [r for r in run["tree_after"] if r["parent"] == GROUP]


def expected_mask(confidence: np.ndarray | None, alpha: np.ndarray) -> np.ndarray:
    visible = np.full(alpha.shape, 255, np.int64) if confidence is None else confidence.astype(np.int64)
    return ((visible * alpha.astype(np.int64) + 127) // 255).astype(np.uint8)


def srgb_gray(rgb: np.ndarray) -> np.ndarray:
    """What babl makes of 8-bit sRGB in a grayscale image: luminance of the linear values, with
    the D50-adapted weights of GIMP's built-in sRGB space."""
    c = rgb.astype(np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = linear @ np.array([0.22248840, 0.71690369, 0.06060791])
    return np.round(255 * np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055))


# ---------------------------------------------------------------------------------------------
# Results


@pytest.fixture(scope="module")
def success_runs(gimp: harness.GimpRoot, engine: EngineProcess) -> tuple[Inputs, dict[str, Any]]:
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    ref = inputs.layer("Reference", photos.painting(56, 40, seed=5), 5, 7)
    cases = [
        {"name": "pair", "image": {"width": 120, "height": 90},
         "layers": [layers["Top"], layers["Photo"], layers["Painting"], layers["Background"]],
         "select": ["Photo", "Painting"], "args": {**FAST, "mask": "confidence"}},
        # One selected layer plus a reference from another image; A is the reference; 16-bit gray.
        {"name": "gray-reference", "image": {"width": 120, "height": 90, "base": "gray", "precision": "u16"},
         "layers": [layers["Photo"], layers["Background"]], "select": ["Photo"], "reference": ref,
         "args": {**FAST, "a-layer": "second", "mode": "style-to-photo", "fallback": False}},
        # Linear float image, the lower layer as A, only A′.
        {"name": "float-a-only", "image": {"width": 120, "height": 90, "precision": "float"},
         "layers": [layers["Photo"], layers["Painting"]], "select": ["Photo", "Painting"],
         "args": {**FAST, "a-layer": "second", "results": "a-prime"}},
    ]
    return inputs, run_cases(gimp, cases, "success", engine.runtime)


def test_pair_lands_as_group_above_sources(gimp, success_runs) -> None:  # noqa: ANN001
    _inputs, runs = success_runs
    run = runs["pair"]
    assert run["success"], run["error"]
    after = run["tree_after"]
    group = by_name(after, GROUP)
    assert group["group"] and group["parent"] is None
    # Right above A (the upper source), under the unrelated top layer.
    assert top_level(after) == ["Top", GROUP, "Photo", "Painting", "Background"]
    children = [r for r in after if r["parent"] == GROUP]
    assert [r["name"] for r in children] == ["A′ (Photo)", "B (Painting)"]
    a_prime, b = children
    assert geometry(a_prime) == (10, 6, 72, 56)
    assert geometry(b) == (40, 30, 64, 48)
    assert a_prime["mask"] and b["mask"]
    # The sources are untouched, and nothing else changed.
    assert all(run["sources_unchanged"].values()), run["sources_unchanged"]
    before = {r["name"]: geometry(r) for r in run["tree_before"]}
    assert {r["name"]: geometry(r) for r in after if r["depth"] == 0 and not r["group"]} == before


def test_pair_pixels_equal_the_engines(gimp, success_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = success_runs
    run = runs["pair"]
    a, b_prime = inputs.arrays["Photo"], inputs.arrays["Painting"]
    # 8-bit sRGB image: the plug-in sends exactly the pixels the test made.
    np.testing.assert_array_equal(source(gimp, run, "Photo", a), a)
    np.testing.assert_array_equal(source(gimp, run, "Painting", b_prime), b_prime)
    want = engine.run(a, b_prime, {"mode": "photo-to-style", "preset": "fast", "size": 64, "device": "cpu"})
    a_prime_px, a_prime_mask = dump(gimp, run, "A′ (Photo)")
    b_px, b_mask = dump(gimp, run, "B (Painting)")
    np.testing.assert_array_equal(a_prime_px[..., :3], want["a_prime"])
    np.testing.assert_array_equal(b_px[..., :3], want["b"])
    assert (a_prime_px[..., 3] == 255).all() and (b_px[..., 3] == 255).all()
    # Confidence masks, with the source's transparency carried over.
    np.testing.assert_array_equal(a_prime_mask, expected_mask(want["mask_a_prime"], a[..., 3]))
    np.testing.assert_array_equal(b_mask, expected_mask(want["mask_b"], b_prime[..., 3]))
    assert a_prime_mask[0, 0] == 0 and a_prime_mask[-1, -1] > 0  # the transparent corner stays so


def test_reference_layer_gray_16_bit(gimp, success_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = success_runs
    run = runs["gray-reference"]
    children = result_layers(run)
    # A is the reference (another image), B′ the selected layer: A′ has the reference's size.
    assert [r["name"] for r in children] == ["A′ (Reference)", "B (Photo)"]
    assert geometry(children[0]) == (5, 7, 56, 40)
    assert geometry(children[1]) == (10, 6, 72, 56)
    assert top_level(run["tree_after"]) == [GROUP, "Photo", "Background"]
    # The engine works in RGB; the layer holds the same picture as gray.
    b_prime = source(gimp, run, "Photo", inputs.arrays["Photo"])  # as gray, 16-bit, and back
    assert np.abs(b_prime[..., 0].astype(int) - srgb_gray(inputs.arrays["Photo"][..., :3])).max() <= 1
    # "Minimize blotches" off: the engine's raw matched patches (fallback=False) are what GIMP shows.
    want = engine.run(inputs.arrays["Reference"], b_prime, {"mode": "style-to-photo", "preset": "fast",
                                                             "size": 64, "device": "cpu", "fallback": False})
    px, mask = dump(gimp, run, "A′ (Reference)")
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()
    assert np.abs(px[..., 0].astype(int) - srgb_gray(want["a_prime"])).max() <= 2
    recoloured = engine.run(inputs.arrays["Reference"], b_prime, {"mode": "style-to-photo", "preset": "fast",
                                                                  "size": 64, "device": "cpu"})
    assert np.abs(px[..., 0].astype(int) - srgb_gray(recoloured["a_prime"])).max() > 2  # the switch counts
    assert (mask == 255).all()  # white mask, opaque source
    _px, b_mask = dump(gimp, run, "B (Photo)")
    np.testing.assert_array_equal(b_mask, expected_mask(None, inputs.arrays["Photo"][..., 3]))


def test_float_image_a_prime_only(gimp, success_runs) -> None:  # noqa: ANN001
    _inputs, runs = success_runs
    run = runs["float-a-only"]
    assert run["success"], run["error"]
    children = [r for r in run["tree_after"] if r["parent"] == GROUP]
    assert [r["name"] for r in children] == ["A′ (Painting)"]
    assert (children[0]["x"], children[0]["y"]) == (40, 30)
    # The group sits above the upper source even when A is the lower one.
    assert top_level(run["tree_after"]) == [GROUP, "Photo", "Painting"]


# ---------------------------------------------------------------------------------------------
# Painting with strokes and animation (issues 12 and 11)

PAINT = {"paint-strokes": 50, "paint-brush": "marker"}
FRAME_NAMES = ["Frame 1 (100ms)", "Frame 2 (100ms) (combine)", "Frame 3 (200ms) (replace)"]


def svg_stages(svg: str) -> list[list[list[float]]]:
    """The engine's strokes.svg: per stage group, each stroke's six numbers (M x0 y0 Q x1 y1 x2 y2)."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    return [[[float(v) for v in p.get("d").replace("M", " ").replace("Q", " ").split()]
             for p in g.iter(f"{ns}path")] for g in ET.fromstring(svg).iter(f"{ns}g")]


def on_canvas(layer: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """A layer at its offsets on a transparent canvas: a frame as the plug-in reads it."""
    canvas = np.zeros((height, width, 4), np.uint8)
    canvas[y:y + layer.shape[0], x:x + layer.shape[1]] = layer
    return canvas


@pytest.fixture(scope="module")
def paint_anim_runs(gimp: harness.GimpRoot, engine: EngineProcess) -> tuple[Inputs, dict[str, Any]]:
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    world = photos.photo(64, 48, seed=11)
    # Three frames of a camera panning 3 px a frame; the middle one a smaller layer, offset.
    frames = [inputs.layer(FRAME_NAMES[0], world[2:38, 0:48].copy()),
              inputs.layer(FRAME_NAMES[1], world[6:34, 7:47].copy(), 4, 4),
              inputs.layer(FRAME_NAMES[2], world[2:38, 6:54].copy())]
    reference = inputs.layer("Look", photos.painting(40, 30, seed=5))
    cases = [
        {"name": "paint", "image": {"width": 120, "height": 90},
         "layers": [layers["Top"], layers["Photo"], layers["Painting"], layers["Background"]],
         "select": ["Photo", "Painting"], "args": {**FAST, **PAINT}},
        {"name": "animation", "procedure": "animation", "image": {"width": 48, "height": 36},
         "layers": frames[::-1], "select": [FRAME_NAMES[2]], "reference": reference, "args": FAST},
    ]
    return inputs, run_cases(gimp, cases, "paint-animation", engine.runtime)


def test_painting_layer_and_paths(gimp, paint_anim_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = paint_anim_runs
    run = runs["paint"]
    children = result_layers(run)
    assert [r["name"] for r in children] == ["Painting (Photo)", "A′ (Photo)", "B (Painting)"]
    assert geometry(children[0]) == (10, 6, 72, 56) and children[0]["mask"]
    # The painting is the engine's painting of the engine's A′.
    a, b_prime = inputs.arrays["Photo"], inputs.arrays["Painting"]
    a_prime = engine.run(a, b_prime, {"mode": "photo-to-style", "preset": "fast", "size": 64,
                                      "device": "cpu"})["a_prime"]
    opaque = np.concatenate([a_prime, np.full(a_prime.shape[:2] + (1,), 255, np.uint8)], -1)
    painting, svg = engine.paint(opaque, {"strokes": 50, "brush": "marker", "device": "cpu"})
    px, mask = dump(gimp, run, "Painting (Photo)")
    np.testing.assert_array_equal(px[..., :3], painting)
    np.testing.assert_array_equal(mask, expected_mask(None, a[..., 3]))
    # One path per stage, each holding that stage's strokes in painting order, at A's offsets.
    stages = svg_stages(svg)
    assert stages and sum(len(s) for s in stages) == 50
    new = [p for p in run["paths_after"] if p["id"] not in {q["id"] for q in run["paths_before"]}]
    by_stage = sorted(new, key=lambda p: p["name"])
    assert [p["name"] for p in by_stage] == [
        f"Painting strokes {k}/{len(stages)} ({len(s)})" for k, s in enumerate(stages, start=1)]
    for path, strokes in zip(by_stage, stages, strict=True):
        assert len(path["strokes"]) == len(strokes)
        for got, (x0, y0, x1, y1, x2, y2) in zip(path["strokes"], strokes, strict=True):
            # A quadratic Bézier as GIMP's cubic: anchor, handles at 2/3 towards the control point.
            want = [x0, y0, x0, y0, x0 + 2 / 3 * (x1 - x0), y0 + 2 / 3 * (y1 - y0),
                    x2 + 2 / 3 * (x1 - x2), y2 + 2 / 3 * (y1 - y2), x2, y2, x2, y2]
            want = [v + (10 if i % 2 == 0 else 6) for i, v in enumerate(want)]
            np.testing.assert_allclose(got["points"], want, atol=0.01)
            assert not got["closed"]


def test_animation_new_image(gimp, paint_anim_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = paint_anim_runs
    run = runs["animation"]
    assert run["success"], run["error"]
    # The source image is only read; one more image is open.
    assert run["tree_after"] == run["tree_before"] and all(run["sources_unchanged"].values())
    assert run["images_after"] == run["images_before"] + 1
    new = run["new_image"]
    assert (new["width"], new["height"]) == (48, 36)
    assert new["undo_enabled"]
    # Same names (so the same timings), same order: the first frame at the bottom.
    assert [r["name"] for r in new["tree"]] == FRAME_NAMES[::-1]
    assert all(geometry(r) == (0, 0, 48, 36) for r in new["tree"])
    offsets = {FRAME_NAMES[0]: (0, 0), FRAME_NAMES[1]: (4, 4), FRAME_NAMES[2]: (0, 0)}
    frames = [on_canvas(inputs.arrays[n], *offsets[n], 48, 36) for n in FRAME_NAMES]
    want = engine.animate(inputs.arrays["Look"], frames,
                          {"mode": "photo-to-style", "preset": "fast", "size": 64, "device": "cpu",
                           "independent": False})
    rows = {r["name"]: r for r in new["tree"]}
    for name, frame, expected in zip(FRAME_NAMES, frames, want, strict=True):
        got = np.frombuffer((gimp.work / "out" / "animation" / f"new-layer{rows[name]['id']}.rgba")
                            .read_bytes(), np.uint8).reshape(36, 48, 4)
        np.testing.assert_array_equal(got[..., 3], frame[..., 3])  # the frame's coverage kept
        seen = frame[..., 3] > 0
        np.testing.assert_array_equal(got[..., :3][seen], expected[seen])
    # The smaller middle frame leaves the canvas's border transparent.
    middle = frames[1][..., 3]
    assert middle[0, 0] == 0 and middle[10, 10] == 255


# ---------------------------------------------------------------------------------------------
# Guidance (issue 10): region maps, a structure mask, more references, the selection


def halves(width: int, height: int) -> np.ndarray:
    """A reference whose top half is reddish and bottom half bluish, both textured."""
    rgba = photos.painting(width, height, seed=9).astype(np.float32)
    top = rgba[..., :3] * (0.5, 0.15, 0.15) + (120, 0, 0)
    bottom = rgba[..., :3] * (0.15, 0.15, 0.5) + (0, 0, 120)
    rgba[..., :3] = np.where((np.arange(height) < height // 2)[:, None, None], top, bottom)
    return np.clip(rgba, 0, 255).astype(np.uint8)


def label_map(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int],
              split: int | None = None) -> np.ndarray:
    """An opaque region map: `top` above row `split` (half way by default), `bottom` below."""
    rgba = np.full((height, width, 4), 255, np.uint8)
    split = height // 2 if split is None else split
    rgba[:split, :, :3] = top
    rgba[split:, :, :3] = bottom
    return rgba


RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def guided_run(engine: EngineProcess, a: np.ndarray, b_prime: np.ndarray, params: dict[str, Any],
               names: list[str], parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engine's own results for a guided job (the plug-in's client, outside GIMP)."""
    from server_harness import dia_client, raw_array, raw_image

    job = dia_client.analogy_job(raw_image(a), raw_image(b_prime), params, names,
                                 [(name, raw_image(image)) for name, image in parts.items()])
    results, _info = dia_client.run_job(engine.client, job)
    return {name: raw_array(result) for name, result in results.items()}


def grey_rgba(grey: np.ndarray) -> np.ndarray:
    return np.concatenate([np.repeat(grey[..., None], 3, -1), np.full(grey.shape + (1,), 255, np.uint8)], -1)


@pytest.fixture(scope="module")
def guide_runs(gimp: harness.GimpRoot, engine: EngineProcess) -> tuple[Inputs, dict[str, Any]]:
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    image = {"width": 120, "height": 90}
    a = inputs.layer("A", photos.photo(48, 40, seed=4), 4, 4)
    b = inputs.layer("Halves", halves(48, 40), 60, 40)
    # Swapped halves: A's top is paired with B′'s bottom. Regions of A has A's size; Regions of
    # B′ covers the canvas (as a new layer does) and is read where B′ lies.
    reg_a = inputs.layer("RegA", label_map(48, 40, RED, BLUE), 4, 4)
    canvas_b = label_map(120, 90, BLUE, RED, split=60)
    reg_b = inputs.layer("RegB", canvas_b)
    collage = np.full((90, 120), 255, np.uint8)
    collage[4:24, 4:28] = 0  # A's top-left: take B′'s content there
    inputs.arrays["Collage"] = collage
    (gimp.work / "Collage.y").write_bytes(collage.tobytes())
    look2 = inputs.layer("Look2", photos.painting(40, 32, seed=13), 3, 2)
    cases = [
        {"name": "regions-structure", "image": image, "layers": [reg_a, reg_b, a, b, layers["Background"]],
         "select": ["A", "Halves"],
         "channels": [{"name": "Collage", "file": gimp.inside(gimp.work / "Collage.y")}],
         "layer_args": {"regions-a": "RegA", "regions-b": "RegB"},
         "channel_args": {"structure-channel": "Collage"},
         "args": {**FAST, "regions": True, "structure": "channel", "results": "a-prime"}},
        # Two references (the second from another image) with a mix; a selection on A.
        {"name": "references", "image": image,
         "layers": [layers["Photo"], layers["Painting"], layers["Background"]],
         "select": ["Photo", "Painting"],
         "extra_images": [{"image": {"width": 50, "height": 40}, "layers": [look2]}],
         "layer_args": {"reference-2": "Look2"}, "selection": [10, 6, 36, 28],
         "args": {**FAST, "extra-references": 1, "mix": "1, 0.5", "mask": "confidence"}},
    ]
    return inputs, run_cases(gimp, cases, "guidance", engine.runtime)


def test_regions_and_structure_channel_reach_the_engine(gimp, guide_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = guide_runs
    run = runs["regions-structure"]
    children = result_layers(run)
    assert [r["name"] for r in children] == ["A′ (A)"]
    a_prime, _mask = dump(gimp, run, "A′ (A)")
    b_prime = inputs.arrays["Halves"]
    # Swapped halves: A′'s top takes B′'s bottom (bluish), its bottom B′'s top (reddish).
    rgb = a_prime[..., :3].astype(int)
    bluish = rgb[..., 2] > rgb[..., 0]
    shares = bluish[:16].mean(), (~bluish[24:]).mean()
    assert min(shares) > 0.95, shares
    # Exactly what the engine makes of these maps: RegB read where B′ lies, the channel under A.
    parts = {"regions_a": inputs.arrays["RegA"], "regions_b": inputs.arrays["RegB"][40:80, 60:108],
             "structure": grey_rgba(inputs.arrays["Collage"][4:44, 4:52])}
    want = guided_run(engine, inputs.arrays["A"], b_prime, {**FAST, "mode": "photo-to-style"},
                      ["a_prime"], parts)
    np.testing.assert_array_equal(a_prime[..., :3], want["a_prime"])
    unguided = engine.run(inputs.arrays["A"], b_prime, {**FAST, "mode": "photo-to-style"}, ["a_prime"])
    assert not np.array_equal(unguided["a_prime"], want["a_prime"])


def test_more_references_and_the_selection(gimp, guide_runs, engine) -> None:  # noqa: ANN001
    inputs, runs = guide_runs
    run = runs["references"]
    children = result_layers(run)
    assert [r["name"] for r in children] == ["A′ (Photo)", "B (Painting)", "B (Look2)"]
    assert geometry(children[2]) == (3, 2, 40, 32) and children[2]["mask"]
    a, b_prime, look2 = inputs.arrays["Photo"], inputs.arrays["Painting"], inputs.arrays["Look2"]
    names = ["a_prime", "b", "b_2", "mask_a_prime", "mask_b", "mask_b_2"]
    want = guided_run(engine, a, b_prime, {**FAST, "mode": "photo-to-style", "mix": "1,0.5"}, names,
                      {"reference_2": look2})
    a_prime_px, a_prime_mask = dump(gimp, run, "A′ (Photo)")
    b2_px, b2_mask = dump(gimp, run, "B (Look2)")
    np.testing.assert_array_equal(a_prime_px[..., :3], want["a_prime"])
    np.testing.assert_array_equal(b2_px[..., :3], want["b_2"])
    np.testing.assert_array_equal(b2_mask, expected_mask(want["mask_b_2"], look2[..., 3]))
    # The selection (canvas 10..46 × 6..34 = all of A's top-left 36×28) limits A′'s mask only.
    selection = np.zeros(a.shape[:2], np.uint8)
    selection[:28, :36] = 255
    np.testing.assert_array_equal(
        a_prime_mask, expected_mask(expected_mask(want["mask_a_prime"], a[..., 3]), selection))
    _b_px, b_mask = dump(gimp, run, "B (Painting)")
    np.testing.assert_array_equal(b_mask, expected_mask(want["mask_b"], b_prime[..., 3]))


@pytest.fixture(scope="module")
def guide_error_runs(gimp: harness.GimpRoot, engine: EngineProcess) -> dict[str, Any]:
    """Bad guidance: refused before the job (or by the engine at submission), image unchanged."""
    inputs = Inputs(gimp)
    image = {"width": 120, "height": 90}
    a = inputs.layer("A", photos.photo(48, 40, seed=4), 4, 4)
    b = inputs.layer("Halves", halves(48, 40), 60, 40)
    reg_a = inputs.layer("RegA", label_map(48, 40, RED, BLUE), 4, 4)
    reg_b = inputs.layer("RegB", label_map(48, 40, BLUE, RED), 60, 40)
    green = inputs.layer("RegGreen", label_map(48, 40, GREEN, BLUE), 60, 40)
    small = inputs.layer("Small", label_map(30, 20, RED, BLUE))
    indexed = inputs.layer("Indexed", label_map(48, 40, RED, BLUE))
    look2 = inputs.layer("Look2", photos.painting(40, 32, seed=13))
    group = {"name": "Group", "group": True}
    base = {"image": image, "layers": [group, reg_a, reg_b, green, a, b], "select": ["A", "Halves"]}
    regions = {**FAST, "regions": True}

    def case(name: str, args: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {**base, "name": name, "args": args, **more}

    cases = [
        case("regions-wrong-size", regions, layer_args={"regions-a": "Small", "regions-b": "RegB"},
             extra_images=[{"image": {"width": 30, "height": 20}, "layers": [small]}]),
        case("regions-one-sided", regions, layer_args={"regions-a": "RegA", "regions-b": "RegGreen"}),
        case("regions-indexed", regions, layer_args={"regions-a": "Indexed", "regions-b": "RegB"},
             extra_images=[{"image": {"width": 48, "height": 40, "base": "indexed"}, "layers": [indexed]}]),
        case("regions-group", regions, layer_args={"regions-a": "RegA", "regions-b": "Group"}),
        case("regions-twice", regions, layer_args={"regions-a": "A", "regions-b": "RegB"}),
        case("regions-missing", regions, layer_args={"regions-a": "RegA"}),
        case("mix-count", {**FAST, "extra-references": 1, "mix": "1,2,3"},
             layer_args={"reference-2": "Look2"},
             extra_images=[{"image": {"width": 40, "height": 32}, "layers": [look2]}]),
        case("reference-missing", {**FAST, "extra-references": 1}),
        case("reference-twice", {**FAST, "extra-references": 1}, layer_args={"reference-2": "Halves"}),
        case("no-layer-mask", {**FAST, "structure": "layer-mask"}),
        case("no-selection", {**FAST, "structure": "selection"}),
    ]
    return run_cases(gimp, cases, "guide-errors", engine.runtime)


@pytest.mark.parametrize("case, words", [
    ("regions-wrong-size", ["Regions of A 'Small' is 30×20 pixels", "layer A 'A' is 48×40"]),
    ("regions-one-sided", ["Regions of A 'RegA'", "#ff0000", "same colour on both sides"]),
    ("regions-indexed", ["Regions of A 'Indexed'", "indexed image", "Image ▸ Mode ▸ RGB"]),
    ("regions-group", ["Regions of B′ 'Group' is a layer group"]),
    ("regions-twice", ["'A' is used twice, as layer A and as Regions of A"]),
    ("regions-missing", ["Regions of B′ is not chosen"]),
    ("mix-count", ["3 weights for 2 references", "Mix weights"]),
    ("reference-missing", ["choose Reference 2"]),
    ("reference-twice", ["'Halves' is used twice, as layer B′ and as Reference 2"]),
    ("no-layer-mask", ["layer A 'A' has none", "Add Layer Mask"]),
    ("no-selection", ["nothing is selected"]),
])
def test_guidance_errors_explain_and_change_nothing(guide_error_runs, case, words) -> None:  # noqa: ANN001
    run = guide_error_runs[case]
    assert not run["success"]
    assert run["status"] == 0, run["error"]
    for word in words:
        assert word in run["error"], run["error"]
    assert run["tree_after"] == run["tree_before"]
    assert all(run["sources_unchanged"].values())


# ---------------------------------------------------------------------------------------------
# Errors: a clean message, the image unchanged


@pytest.fixture(scope="module")
def error_runs(gimp: harness.GimpRoot) -> dict[str, Any]:
    """Cases that must fail before or at the engine, run with no engine anywhere."""
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    tiny = inputs.layer("Tiny", photos.photo(6, 5))
    small = inputs.layer("Small", photos.photo(12, 10))
    layers["Reference"] = inputs.layer("Reference", photos.painting(40, 30, seed=5))
    pair = [layers["Photo"], layers["Painting"], layers["Background"]]
    image = {"width": 120, "height": 90}
    cases = [
        {"name": "no-engine", "image": image, "layers": pair, "select": ["Photo", "Painting"], "args": FAST},
        {"name": "one-layer", "image": image, "layers": pair, "select": ["Photo"], "args": FAST},
        {"name": "three-layers", "image": image, "layers": pair,
         "select": ["Photo", "Painting", "Background"], "args": FAST},
        {"name": "tiny-layer", "image": image, "layers": [tiny, *pair], "select": ["Tiny", "Photo"],
         "args": FAST},
        {"name": "bad-address", "image": image, "layers": pair, "select": ["Photo", "Painting"],
         "args": {**FAST, "engine": "http://example.com:8123"}},
        {"name": "dead-address", "image": image, "layers": pair, "select": ["Photo", "Painting"],
         "args": {**FAST, "engine": "http://127.0.0.1:9#token"}},
        # Painting needs 16 pixels a side, checked before any engine work.
        {"name": "paint-small", "image": image, "layers": [small, *pair], "select": ["Small", "Photo"],
         "args": {**FAST, "paint-strokes": 10}},
        # Animation: one frame is no animation; a reference is needed.
        {"name": "anim-one-frame", "procedure": "animation", "image": image, "layers": [layers["Photo"]],
         "select": ["Photo"], "reference": layers["Reference"], "args": FAST},
        {"name": "anim-no-reference", "procedure": "animation", "image": image, "layers": pair,
         "select": ["Photo"], "args": FAST},
        # The reference may be a layer of the animation itself; then it is not a frame.
        {"name": "anim-reference-inside", "procedure": "animation", "image": image,
         "layers": [layers["Photo"], layers["Painting"]], "select": ["Photo"], "args": FAST,
         "reference_in_image": "Painting"},
    ]
    return run_cases(gimp, cases, "errors", runtime=None)


@pytest.mark.parametrize("case, words", [
    ("no-engine", ["Could not start the Deep Image Analogy engine", "-m server --port 0", "install.sh"]),
    ("one-layer", ["Only one layer is selected", "reference layer"]),
    ("three-layers", ["3 layers are selected", "exactly two"]),
    ("tiny-layer", ["'Tiny' is 6×5 pixels", "at least 8"]),
    ("bad-address", ["is not usable", "http://127.0.0.1"]),
    ("dead-address", ["No Deep Image Analogy engine answers at http://127.0.0.1:9"]),
    ("paint-small", ["'Small' is 12×10 pixels", "painting needs at least 16", "Painting strokes to 0"]),
    ("anim-one-frame", ["at least 2 frames", "has 1 frame", "bottom layer = first frame"]),
    ("anim-no-reference", ["Choose the reference layer"]),
    ("anim-reference-inside", ["at least 2 frames", "has 1 frame"]),
])
def test_errors_explain_and_change_nothing(error_runs, case, words) -> None:  # noqa: ANN001
    run = error_runs[case]
    assert not run["success"]
    assert run["status"] == 0  # GIMP_PDB_EXECUTION_ERROR (a bug would be CALLING_ERROR or a crash)
    for word in words:
        assert word in run["error"], run["error"]
    assert run["tree_after"] == run["tree_before"]
    assert run["paths_after"] == run["paths_before"]
    assert run["images_after"] == run["images_before"]  # no half-made animation left open
    assert all(run["sources_unchanged"].values())


def test_engine_killed_mid_job(gimp: harness.GimpRoot, tmp_path: Path) -> None:
    """The engine dies while the plug-in waits: a clean error, the image unchanged."""
    engine = EngineProcess(tmp_path / "engine.json", tmp_path / "engine.log")
    killed = threading.Event()

    def kill_when_running() -> None:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            health = engine.health()
            if health and health.get("running"):
                engine.kill()
                killed.set()
                return
            time.sleep(0.05)

    try:
        inputs = Inputs(gimp)
        layers = standard_layers(inputs)
        # Big enough that the job is still running when the helper sees it.
        big_a = inputs.layer("BigPhoto", photos.photo(400, 300), 0, 0)
        big_b = inputs.layer("BigPainting", photos.painting(400, 300), 0, 0)
        cases = [{"name": "killed", "image": {"width": 400, "height": 300},
                  "layers": [big_a, big_b, layers["Background"]], "select": ["BigPhoto", "BigPainting"],
                  "args": {"preset": "faithful", "size": 384, "device": "cpu"}}]
        run = run_cases(gimp, cases, "killed", engine.runtime, during=kill_when_running)["killed"]
    finally:
        engine.stop()
    assert killed.is_set(), "the job never showed up as running"
    assert not run["success"]
    assert "stopped answering" in run["error"], run["error"]
    assert run["tree_after"] == run["tree_before"]
    assert all(run["sources_unchanged"].values())


# ---------------------------------------------------------------------------------------------
# The GUI: dialog, OK, result, one Ctrl+Z


def gui_session(gimp: harness.GimpRoot, engine: EngineProcess, case: dict[str, Any],
                driver: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str], Path]:
    """Run `case` INTERACTIVE in GIMP with its GUI under Xvfb, gui_driver.py pressing OK and
    Ctrl+Z (and first Preview, with driver={"preview": True}): (gui.json, the driver's and
    GIMP's logs, the output folder)."""
    out = gimp.work / "out" / case["name"]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "driver.json").write_text(json.dumps(driver or {}))
    # An INTERACTIVE run starts from the last values GIMP stored (seen in 3.2), not from the
    # caller's: forget those of the previous GUI test so that this case's arguments count.
    shutil.rmtree(gimp.work / "config" / "GIMP" / gimp.version / "plug-in-settings", ignore_errors=True)
    spec = gimp.work / "gui-spec.json"
    spec.write_text(json.dumps({"out": gimp.inside(out), "gui": case}))
    shutil.copy(engine.runtime, gimp.work / "run" / "engine.json")
    scripts = f"{harness.INSIDE}/scripts"
    started = time.monotonic()
    result = gimp.run(f"{scripts}/gui_session.sh {scripts} {gimp.inside(out)} gimp",
                      env={"DIA_TEST_SPEC": gimp.inside(spec)}, timeout=900)
    print(f"[gimp {gimp.version}] {case['name']}: {time.monotonic() - started:.1f} s")
    logs = {name: (out / name).read_text(errors="replace") if (out / name).exists() else ""
            for name in ("driver.log", "gimp.log", "xvfb.log")}
    assert (out / "gui.json").exists(), (result.stderr.decode()[-2000:], logs)
    run = json.loads((out / "gui.json").read_text())
    assert "crash" not in run, run["crash"]
    assert run["success"], (run["error"], logs)
    assert (out / "dialog.png").stat().st_size > 5000, logs["driver.log"]
    assert (out / "dialog.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # GTK and GIMP complain on stderr about clashing or missing mnemonics.
    assert "mnemonic" not in logs["gimp.log"].lower(), logs["gimp.log"]
    # GIMP cannot store a layer among a procedure's last values (any layer argument, 3.0 and
    # 3.2): its own warning, not the plug-in's.
    known = "couldn't serialize property GimpProcedureConfigRun-"
    ours = [line for line in logs["gimp.log"].splitlines()
            if ("deep-image-analogy" in line or "deep_image_analogy" in line) and known not in line]
    assert not ours, ours
    return run, logs, out


def test_gui_dialog_then_one_undo_restores(gimp: harness.GimpRoot, engine: EngineProcess) -> None:
    """Real GIMP window under Xvfb: the dialog opens (screenshot), OK runs it (A′ painted too),
    Ctrl+Z undoes all: group, layers and paths."""
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    case = {"name": "gui", "image": {"width": 120, "height": 90},
            "layers": [layers["Photo"], layers["Painting"], layers["Background"]],
            "select": ["Photo", "Painting"], "args": {**FAST, **PAINT, "mask": "confidence"}}
    run, logs, _out = gui_session(gimp, engine, case)
    assert top_level(run["tree_after"]) == [GROUP, "Photo", "Painting", "Background"]
    assert run["undo_pressed"]
    assert run["tree_undone"] == run["tree_before"], logs["driver.log"]
    # The painting's paths came in the same undo step as the layers.
    assert len(run["paths_after"]) > len(run["paths_before"])
    assert run["paths_undone"] == run["paths_before"], logs["driver.log"]


def test_gui_animation_dialog(gimp: harness.GimpRoot, engine: EngineProcess) -> None:
    """The animation's dialog opens and OK makes the new image; the animation is unchanged."""
    inputs = Inputs(gimp)
    world = photos.photo(56, 36, seed=11)
    frames = [inputs.layer(name, world[:, 3 * i:3 * i + 48].copy()) for i, name in enumerate(FRAME_NAMES)]
    case = {"name": "gui-animation", "procedure": "animation", "image": {"width": 48, "height": 36},
            "layers": frames[::-1], "select": [FRAME_NAMES[2]],
            "reference": inputs.layer("Look", photos.painting(40, 30, seed=5)), "args": FAST}
    run, _logs, _out = gui_session(gimp, engine, case)
    assert [r["name"] for r in run["new_tree"]] == FRAME_NAMES[::-1]
    assert run["tree_after"] == run["tree_before"] == run["tree_undone"]


def colourful(png: Path) -> int:
    """Pixels of a screenshot that are clearly coloured (GTK's theme is grey)."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int(((rgb.max(-1) - rgb.min(-1)) > 60).sum())


def test_gui_preview_in_the_dialog(gimp: harness.GimpRoot, engine: EngineProcess) -> None:
    """The dialog's Preview button shows a small A′ in the dialog (fast preset, working size 128);
    then OK runs the filter as usual. The screenshot is kept in /tmp for people to look at."""
    inputs = Inputs(gimp)
    layers = standard_layers(inputs)
    reg_a = inputs.layer("RegA", label_map(72, 56, RED, BLUE), 10, 6)
    reg_b = inputs.layer("RegB", label_map(64, 48, BLUE, RED), 40, 30)
    case = {"name": "gui-preview", "image": {"width": 120, "height": 90},
            "layers": [reg_a, reg_b, layers["Photo"], layers["Painting"], layers["Background"]],
            "select": ["Photo", "Painting"], "layer_args": {"regions-a": "RegA", "regions-b": "RegB"},
            "args": {**FAST, "regions": True}}
    run, logs, out = gui_session(gimp, engine, case, {"preview": True})
    assert "preview shown" in logs["driver.log"], logs["driver.log"]
    kept = Path(f"/tmp/dia-preview-gimp-{gimp.version}.png")
    shutil.copy(out / "preview.png", kept)
    print(f"[gimp {gimp.version}] preview screenshot: {kept}")
    assert colourful(out / "preview.png") > colourful(out / "dialog.png") + 3000
    # The preview was a job of its own at the preview's size, with the region maps.
    queued = [line for line in engine.log().splitlines() if "queued" in line and '"size": 128' in line]
    assert queued and '"preset": "fast"' in queued[-1] and "regions_a" in queued[-1], queued
    assert top_level(run["tree_after"]) == ["RegA", "RegB", GROUP, "Photo", "Painting", "Background"]
