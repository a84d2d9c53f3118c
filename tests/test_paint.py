"""Painting with strokes (issue 12): renderer, optimiser, SVG, CLI and bad inputs.

The CLI tests run its main(argv) in this process (tests/cli_runner.py); the `python -m` entry
point itself runs once, in the slow tier."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import Done, run_main
from PIL import Image, ImageDraw

from analogy_engine.paint import (
    BRUSHES,
    MAX_STROKES,
    MIN_SIDE,
    Strokes,
    from_svg,
    paint,
    plan_stages,
    psnr,
    render,
    to_svg,
)
from analogy_engine.paint.optimise import _fit
from analogy_engine.types import Cancelled, InputError

ROOT = Path(__file__).resolve().parent.parent
A = ROOT / "examples" / "a.jpg"


def photo(width: int, height: int) -> np.ndarray:
    with Image.open(A) as image:
        rgb = image.convert("RGB").resize((width, height), Image.Resampling.BOX)
    return np.asarray(rgb).astype(np.float32) / 255


def random_strokes(n: int, side: float, seed: int = 0, dtype: torch.dtype = torch.float32) -> Strokes:
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 1, 2, generator=g, dtype=dtype) * side
    points = centre + (torch.rand(n, 3, 2, generator=g, dtype=dtype) - 0.5) * side / 3
    return Strokes(
        points, torch.rand(n, generator=g, dtype=dtype) * side / 8 + 1.5,
        torch.rand(n, 3, generator=g, dtype=dtype), torch.rand(n, generator=g, dtype=dtype) * 0.6 + 0.4,
        torch.arange(n) * 3 // n,
    )


def rasterise_svg(text: str, supersample: int = 4) -> np.ndarray:
    """An independent SVG rasteriser for our subset (Pillow polylines, not a distance field):
    each path is sampled densely, drawn as a thick line with discs for the round caps at
    `supersample`× and box-averaged to coverage, then composited with its colour and opacity."""
    root = ET_parse(text)
    width, height = (round(float(v)) for v in root.get("viewBox").split()[2:])
    canvas = np.ones((height, width, 3))
    s = supersample
    t = np.linspace(0, 1, 65)[:, None]
    for path in root.iter("{http://www.w3.org/2000/svg}path"):
        v = [float(x) for x in re.findall(r"[-+]?[\d.]+(?:e[-+]?\d+)?", path.get("d"))]
        p0, p1, p2 = np.array(v[0:2]), np.array(v[2:4]), np.array(v[4:6])
        curve = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2) * s
        w = float(path.get("stroke-width")) * s
        mask = Image.new("L", (width * s, height * s), 0)
        draw = ImageDraw.Draw(mask)
        draw.line([tuple(q) for q in curve], fill=255, width=max(1, round(w)), joint="curve")
        for end in (curve[0], curve[-1]):
            draw.ellipse([end[0] - w / 2, end[1] - w / 2, end[0] + w / 2, end[1] + w / 2], fill=255)
        cover = np.asarray(mask.resize((width, height), Image.Resampling.BOX)).astype(np.float64) / 255
        alpha = cover[..., None] * float(path.get("stroke-opacity"))
        colour = np.array([int(path.get("stroke")[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        canvas = canvas * (1 - alpha) + colour * alpha
    return canvas.astype(np.float32)


def ET_parse(text: str):  # noqa: N802 — reads like the module it wraps
    import xml.etree.ElementTree as ET

    return ET.fromstring(text)


# ---------------------------------------------------------------- renderer


def test_renderer_gradients_match_finite_differences() -> None:
    strokes = random_strokes(3, 12.0, seed=1, dtype=torch.float64)
    background = torch.rand(3, 12, 12, dtype=torch.float64)
    fields = (strokes.points, strokes.width, strokes.colour, strokes.opacity)
    leaves = [t.clone().requires_grad_(True) for t in fields]

    def f(points, width, colour, opacity):
        s = Strokes(points, width, colour, opacity, strokes.stage)
        return render(s, 12, 12, background=background, brush="oil", softness=2.0, tile=8)

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-5, rtol=1e-3)
    # The background's gradient is the transmittance left by the strokes: in 0..1, 1 where no stroke.
    bg = background.clone().requires_grad_(True)
    render(Strokes(*fields, strokes.stage), 12, 12, background=bg).sum().backward()
    assert bg.grad.min() >= 0 and bg.grad.max() <= 1 + 1e-9


def test_render_is_an_over_composite_in_painting_order() -> None:
    red = Strokes(torch.tensor([[[4.0, 16], [16, 16], [28, 16]]]), torch.tensor([8.0]),
                  torch.tensor([[1.0, 0, 0]]), torch.tensor([1.0]), torch.tensor([0]))
    blue = Strokes(torch.tensor([[[16.0, 4], [16, 16], [16, 28]]]), torch.tensor([8.0]),
                   torch.tensor([[0.0, 0, 1]]), torch.tensor([0.5]), torch.tensor([1]))
    out = render(Strokes.cat([red, blue]), 32, 32)
    assert torch.allclose(out[:, 16, 16], torch.tensor([0.5, 0.0, 0.5]), atol=1e-3)  # half blue on red
    assert torch.allclose(out[:, 16, 6], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)  # red only
    assert torch.allclose(out[:, 1, 1], torch.ones(3))  # background
    reversed_order = render(Strokes.cat([blue, red]), 32, 32)
    assert torch.allclose(reversed_order[:, 16, 16], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)


def test_single_stroke_is_recovered_from_its_own_rendering() -> None:
    truth = Strokes(torch.tensor([[[10.0, 30], [24, 8], [40, 34]]]), torch.tensor([7.0]),
                    torch.tensor([[0.8, 0.3, 0.1]]), torch.tensor([1.0]), torch.tensor([0]))
    canvas = torch.ones(3, 48, 48)
    target = render(truth, 48, 48, brush="marker")
    start = Strokes(truth.points + torch.tensor([[[3.0, -2], [-3, 4], [2, 3]]]), torch.tensor([4.0]),
                    torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([0.9]), torch.tensor([0]))
    fitted = _fit(start, canvas, target, BRUSHES["marker"], 150, 20.0, None, 0.0,
                  lambda: None)
    assert psnr(render(fitted, 48, 48), target) > 30
    ends, true_ends = fitted.points[0, [0, 2]], truth.points[0, [0, 2]]
    error = min((ends - true_ends).abs().max(), (ends.flip(0) - true_ends).abs().max())  # either direction
    assert error < 1.5
    assert abs(float(fitted.width[0]) - 7.0) < 1.0
    assert torch.allclose(fitted.colour[0], truth.colour[0], atol=0.05)


def test_thousands_of_strokes_render_quickly() -> None:
    import time

    strokes = random_strokes(2000, 512.0, seed=2)  # ~40 px long, ~1–20 px wide
    strokes.points = strokes.points[:, :1] + (strokes.points - strokes.points[:, :1]) * 0.25
    strokes.width = strokes.width * 0.3
    seconds = []
    with torch.no_grad():
        for _ in range(3):  # the best of three: the first pays for allocation, others for neighbours
            started = time.perf_counter()
            render(strokes, 512, 512)
            seconds.append(time.perf_counter() - started)
    assert min(seconds) < 2.0  # ~0.5 s on 2 shared cores; loose for a busy machine


# ---------------------------------------------------------------- SVG


def test_svg_round_trip_keeps_every_parameter_and_the_groups() -> None:
    strokes = random_strokes(40, 64.0, seed=3)
    text = to_svg(strokes, 64, 48)
    assert text.count("<path ") == 40
    assert len(re.findall(r"<g id=\"stage-\d+\"", text)) == 3
    assert 'viewBox="0 0 64 48"' in text
    for attribute in ('stroke-linecap="round"', 'fill="none"', "stroke-width=", "stroke-opacity="):
        assert text.count(attribute) == 40
    back, width, height = from_svg(text)
    assert (width, height) == (64, 48)
    assert torch.allclose(back.points, strokes.points, atol=0.006)
    assert torch.allclose(back.width, strokes.width, atol=0.006)
    assert torch.allclose(back.colour, strokes.colour, atol=0.5 / 255 + 1e-6)
    assert torch.allclose(back.opacity, strokes.opacity, atol=0.0006)
    assert torch.equal(back.stage, strokes.stage)


@pytest.mark.parametrize("brush", ["marker", "oil"])
def test_svg_rasterised_independently_is_within_2_db_of_the_painting(brush: str) -> None:
    image = photo(64, 56)
    result = paint(image, 60, brush=brush, seed=0, iterations=25)
    raster = rasterise_svg(to_svg(result.strokes, 64, 56))
    painting_psnr = psnr(result.painting, image)
    assert psnr(raster, image) >= painting_psnr - 2.0
    assert psnr(raster, result.painting) > (30 if brush == "marker" else 25)


# ---------------------------------------------------------------- optimiser


def test_stage_plan_uses_every_stroke_coarse_to_fine() -> None:
    for n in (1, 2, 7, 200, 1000, 5000, MAX_STROKES):
        stages = plan_stages(n)
        assert sum(s.count for s in stages) == n
        assert all(s.count >= 1 for s in stages)
        assert [s.grid for s in stages] == sorted(s.grid for s in stages)


def test_same_seed_same_strokes_and_progress_reaches_one() -> None:
    image = photo(40, 32)
    seen: list[float] = []
    first = paint(image, 20, seed=5, iterations=8, progress=lambda f, _t: seen.append(f))
    second = paint(image, 20, seed=5, iterations=8)
    other = paint(image, 20, seed=6, iterations=8)
    assert torch.equal(first.strokes.points, second.strokes.points)
    assert np.array_equal(first.painting, second.painting)
    assert not torch.equal(first.strokes.points, other.strokes.points)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert first.painting.shape == (32, 40, 3) and first.painting.dtype == np.float32
    assert len(first.strokes) == 20 and first.report["strokes"] == 20


def test_cancel_stops_the_painting() -> None:
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    with pytest.raises(Cancelled):
        paint(photo(32, 32), 20, iterations=10, cancel=cancel)
    assert calls == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strokes": 0}, "strokes must be from 1"),
        ({"strokes": MAX_STROKES + 1}, f"to {MAX_STROKES}"),
        ({"strokes": 2.5}, "must be an integer"),
        ({"brush": "crayon"}, "brush must be one of"),
        ({"size": 4}, "size must be an integer"),
    ],
)
def test_bad_arguments_are_input_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        paint(photo(32, 32), **{"strokes": 10, **kwargs})


def test_style_reference_pulls_the_colours_towards_it() -> None:
    image = photo(48, 48)
    with Image.open(ROOT / "examples" / "b_prime.png") as reference:
        style = np.asarray(reference.convert("RGB").resize((64, 64))).astype(np.float32) / 255
    plain = paint(image, 30, seed=0, iterations=15)
    styled = paint(image, 30, seed=0, iterations=15, style=style, style_weight=1.0)
    assert styled.report["style"] and not plain.report["style"]

    def colour_distance(a: np.ndarray) -> float:
        return float(np.abs(a.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).sum())

    assert colour_distance(styled.painting) < colour_distance(plain.painting)


def test_tiny_image_is_an_input_error() -> None:
    with pytest.raises(InputError, match=f"at least {MIN_SIDE}"):
        paint(np.zeros((MIN_SIDE - 1, 40, 3), np.float32), 10)


def test_beats_a_grid_of_flat_cells_by_3_db() -> None:
    image = photo(128, 128)
    n = 200
    g = round(math.sqrt(n))
    cells = Image.fromarray(np.rint(image * 255).astype(np.uint8)).resize((g, g), Image.Resampling.BOX)
    grid = np.asarray(cells.resize((128, 128), Image.Resampling.BICUBIC)).astype(np.float32) / 255
    result = paint(image, n, brush="oil", seed=0)
    assert psnr(result.painting, image) >= psnr(grid, image) + 3.0


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """`python -m analogy_engine.paint ARGS` as its main(argv) in this process (tests/cli_runner.py)."""
    from analogy_engine.paint.__main__ import main

    return lambda *args: run_main(main, args, capfd)


def subprocess_cli(*args: str | Path) -> Done:
    done = subprocess.run([sys.executable, "-m", "analogy_engine.paint", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return Done(done.returncode, done.stderr)


# In this process for the quick tier; the real entry point (`python -m`, seconds to start) in the slow.
@pytest.mark.parametrize("where", ["in-process", pytest.param("subprocess", marks=pytest.mark.slow)])
def test_cli_writes_painting_svg_and_report(tmp_path: Path, cli: Callable[..., Done], where: str) -> None:
    source = tmp_path / "small.png"
    Image.fromarray(np.rint(photo(48, 40) * 255).astype(np.uint8)).save(source)
    run = cli if where == "in-process" else subprocess_cli
    done = run(source, "--out", tmp_path / "out", "--strokes", "30", "--brush", "marker", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: no progress bar, and no warnings
    with Image.open(tmp_path / "out" / "painting.png") as painting:
        assert painting.size == (48, 40) and painting.mode == "RGB"
    svg = (tmp_path / "out" / "strokes.svg").read_text()
    assert svg.count("<path ") == 30 and 'viewBox="0 0 48 40"' in svg
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["strokes"] == 30 and report["psnr"] > 15 and report["seconds"] > 0
    assert sum(s["strokes"] for s in report["stages"]) == 30
    assert all("seconds" in s for s in report["stages"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strokes", "0"], "strokes must be an integer from 1"),
        (["--strokes", str(MAX_STROKES + 1)], "strokes must be an integer from 1"),
        (["--brush", "crayon"], "invalid choice"),
    ],
)
def test_cli_bad_options_exit_2_with_one_line(tmp_path: Path, cli: Callable[..., Done], args: list[str],
                                              message: str) -> None:
    done = cli(A, "--out", tmp_path / "out", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and message in done.stderr and done.stderr.count("\n") == 1


def test_cli_unreadable_and_tiny_files_exit_2(tmp_path: Path, cli: Callable[..., Done]) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (10, 10)).save(tiny)
    for source, message in ((junk, "not an image"), (tmp_path / "missing.png", "no such file"),
                            (tiny, f"at least {MIN_SIDE}")):
        done = cli(source, "--out", tmp_path / "out")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error:") and message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
