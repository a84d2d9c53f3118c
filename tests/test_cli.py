"""`python -m analogy_engine`: the CLI contract of docs/cli.md, bad inputs and image conversions.

The contract run is a real `python -m analogy_engine` subprocess (the quick tier's CLI smoke
test); bad inputs and conversions run the same `main(argv)` in this process (tests/cli_runner.py),
read as a subprocess would be: exit code, stderr, warnings."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_runner import Done, run_main
from PIL import Image

from analogy_engine import cli as analogy_cli
from analogy_engine.imageio import load_image
from analogy_engine.types import InputError

ROOT = Path(__file__).resolve().parent.parent
A = ROOT / "examples" / "a.jpg"
B_PRIME = ROOT / "examples" / "b_prime.png"
OUTPUTS = ("a_prime.png", "b.png", "flow_ab.npy", "flow_ba.npy", "report.json")


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analogy_engine", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def cli_main(capfd: pytest.CaptureFixture[str], *args: str | Path) -> Done:
    """The same command line in this process (tests/cli_runner.py)."""
    return run_main(analogy_cli.main, args, capfd)


def png_bytes(width: int, height: int, rows: bytes, color_type: int, bit_depth: int) -> bytes:
    """A PNG written by hand (so that any header, even a lying one, can be made)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png16(pixels: np.ndarray) -> bytes:
    """16-bit grey (H, W) or RGB (H, W, 3) uint16 → PNG bytes (filter 0 on every row)."""
    color_type = 0 if pixels.ndim == 2 else 2
    data = pixels.astype(">u2").reshape(pixels.shape[0], -1).tobytes()
    stride = len(data) // pixels.shape[0]
    rows = b"".join(b"\x00" + data[i * stride : (i + 1) * stride] for i in range(pixels.shape[0]))
    return png_bytes(pixels.shape[1], pixels.shape[0], rows, color_type, 16)


def photo(width: int, height: int) -> np.ndarray:
    with Image.open(A) as image:
        return np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)).copy()


# ---------------------------------------------------------------- the contract, on the example pair


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("cli") / "out"  # created by the CLI
    return out, cli(A, B_PRIME, "--out", out, "--size", "64", "--preset", "fast")


def test_outputs_follow_the_contract(example_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = example_run
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    with Image.open(A) as a, Image.open(B_PRIME) as b_prime:
        a_size, b_size = a.size, b_prime.size
    with Image.open(out / "a_prime.png") as a_prime, Image.open(out / "b.png") as b:
        assert a_prime.size == a_size and a_prime.mode == "RGB"
        assert b.size == b_size and b.mode == "RGB"
    for name, (w, h), (other_w, other_h) in (("flow_ab", a_size, b_size), ("flow_ba", b_size, a_size)):
        flow = np.load(out / f"{name}.npy")
        assert flow.dtype == np.float32 and flow.shape == (h, w, 2), name
        assert np.isfinite(flow).all()
        # (x, y) positions inside the other image (pixel centres at integers).
        assert flow[..., 0].min() >= -0.5 and flow[..., 0].max() <= other_w - 0.5, name
        assert flow[..., 1].min() >= -0.5 and flow[..., 1].max() <= other_h - 0.5, name
        assert flow[..., 0].std() > 10 and flow[..., 1].std() > 10  # a field, not a constant


def test_report_fields(example_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = example_run
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    params = report["params"]
    assert params["size"] == 64 and params["preset"] == "fast" and params["mode"] == "photo-to-style"
    assert params["seed"] == 0 and params["device"] == "auto"
    assert report["device"] == "cpu"
    assert report["working_size"] == {"a": [64, 64], "b_prime": [64, 64]}
    seconds = report["seconds"]
    assert set(seconds) >= {"features", "matching", "inversion", "reconstruction"}
    assert all(isinstance(v, (int, float)) and v >= 0 for v in seconds.values())
    assert report["total_seconds"] > 0
    assert sum(seconds.values()) <= report["total_seconds"] * 1.05 + 0.01
    peak = report["peak_memory_mb"]
    assert peak["process_rss"] > 100  # torch alone takes more than that


# ------------------------------------------------------------------------------------ bad inputs


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str | Path], str]]:
    """name → (arguments before --out, a word the error line must contain)."""
    text = tmp / "notes.png"
    text.write_text("this is not an image\n")
    tiny = tmp / "tiny.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny)
    huge = tmp / "huge.png"  # claims 50000 × 50000 RGB; a few hundred bytes on disk
    huge.write_bytes(png_bytes(50000, 50000, b"\x00" * 1000, color_type=2, bit_depth=8))
    assert huge.stat().st_size < 1000
    truncated = tmp / "truncated.png"
    Image.fromarray(photo(64, 48)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-1500])
    return {
        "missing file": ([tmp / "nope.png", B_PRIME], "nope.png"),
        "text file named .png": ([A, text], "B′"),
        "1×1 image": ([tiny, B_PRIME], "1×1"),
        "huge image": ([A, huge], "B′"),
        "truncated PNG": ([truncated, B_PRIME], "A"),
        "--size 5": ([A, B_PRIME, "--size", "5"], "size"),
        "--ratio 3": ([A, B_PRIME, "--ratio", "3"], "ratio"),
    }


BAD = [
    "missing file", "text file named .png", "1×1 image", "huge image", "truncated PNG",
    "--size 5", "--ratio 3",
]


def _assert_clean_failure(done: Done, out: Path, word: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert word in lines[0], lines[0]
    assert not out.exists(), "outputs were written for a failed run"


@pytest.mark.parametrize("case", BAD)
def test_bad_input_fails_with_one_line(case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    args, word = _bad_inputs(tmp_path)[case]
    if "--size" not in args:
        args += ["--size", "64"]
    out = tmp_path / "out"
    done = cli_main(capfd, *args, "--out", out, "--preset", "fast")
    _assert_clean_failure(done, out, word)


@pytest.mark.parametrize("args", [["--mode", "nonsense"], ["--size", "big"]])
def test_bad_option_fails_with_one_line(args: list[str], tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    done = cli_main(capfd, A, B_PRIME, "--out", out, *args)
    assert done.returncode != 0
    _assert_clean_failure(done, out, args[0].lstrip("-"))


# ----------------------------------------------------------------------------- image conversions


def _converted_inputs(tmp: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name → (file, the RGB the engine should see)."""
    rgb = photo(60, 44)
    grey8 = rgb.mean(axis=2).round().astype(np.uint8)
    files: dict[str, tuple[Path, np.ndarray]] = {}

    path = tmp / "grey.png"
    Image.fromarray(grey8, mode="L").save(path)
    files["L"] = (path, np.repeat(grey8[..., None], 3, axis=2))

    path = tmp / "rgba.png"
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (44, 1))
    Image.fromarray(np.dstack((rgb, alpha)), mode="RGBA").save(path)
    files["RGBA"] = (path, rgb)  # alpha dropped, the colour under it kept

    path = tmp / "grey16.png"
    grey16 = (grey8.astype(np.uint16) * 257 + 100).clip(0, 65535)
    path.write_bytes(png16(grey16))
    files["I;16"] = (path, np.repeat(np.rint(grey16 / 257.0).astype(np.uint8)[..., None], 3, axis=2))

    path = tmp / "rgb16.png"
    rgb16 = rgb.astype(np.uint16) * 257 + 50
    path.write_bytes(png16(rgb16))
    files["RGB;16"] = (path, rgb)

    path = tmp / "palette.png"
    paletted = Image.fromarray(rgb).quantize(64)
    paletted.save(path)
    files["P"] = (path, np.asarray(paletted.convert("RGB")))
    return files


def test_conversions_in_process(tmp_path: Path) -> None:
    for name, (path, expected) in _converted_inputs(tmp_path).items():
        loaded = load_image(path, name)
        assert loaded.dtype == np.uint8 and loaded.shape == (44, 60, 3), name
        error = np.abs(loaded.astype(int) - expected.astype(int)).max()
        assert error <= 1, f"{name}: off by up to {error}"


@pytest.mark.parametrize("pair", [("L", "RGBA"), ("I;16", "RGB;16"), ("P", "L")])
def test_converted_inputs_run(pair: tuple[str, str], tmp_path: Path,
                              capfd: pytest.CaptureFixture[str]) -> None:
    files = _converted_inputs(tmp_path)
    out = tmp_path / "out"
    a, b_prime = files[pair[0]][0], files[pair[1]][0]
    done = cli_main(capfd, a, b_prime, "--out", out, "--size", "32", "--preset", "fast", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # --quiet and no warnings
    with Image.open(out / "a_prime.png") as a_prime, Image.open(out / "b.png") as b:
        assert a_prime.size == (60, 44) and b.size == (60, 44)
    assert np.load(out / "flow_ab.npy").shape == (44, 60, 2)


def test_huge_image_error_names_the_limit() -> None:
    huge = png_bytes(50000, 50000, b"\x00" * 1000, color_type=2, bit_depth=8)
    with pytest.raises(InputError, match="megapixels"):
        load_image(huge, "B′")


def test_large_but_not_bomb_image_names_the_limit() -> None:
    big = png_bytes(12000, 6000, b"\x00" * 1000, color_type=2, bit_depth=8)  # 72 MP > 60 MP
    with pytest.raises(InputError, match="megapixels"):
        load_image(big, "A")


def test_paint_option_paints_a_prime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--paint N (docs/cli.md): painting.png (A′'s size) and strokes.svg beside the analogy's
    outputs; the painting is A′'s (the same strokes as painting a_prime.png with the seed)."""
    from analogy_engine import cli as analogy_cli
    from analogy_engine.paint import from_svg, paint, painting_to_uint8

    files = _converted_inputs(tmp_path)
    out = tmp_path / "out"
    code = analogy_cli.main([str(files["L"][0]), str(files["RGBA"][0]), "--out", str(out), "--size", "32",
                             "--preset", "fast", "--seed", "4", "--paint", "15", "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert set(report["outputs"]) == {*OUTPUTS, "painting.png", "strokes.svg"}
    assert report["painting"]["strokes"] == 15 and report["painting"]["seed"] == 4
    strokes, width, height = from_svg((out / "strokes.svg").read_text())
    assert (len(strokes), width, height) == (15, 60, 44)
    a_prime = np.asarray(Image.open(out / "a_prime.png").convert("RGB"))
    expected = painting_to_uint8(paint(a_prime, 15, seed=4).painting)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "painting.png").convert("RGB")), expected)


def test_paint_option_out_of_range_exits_2_before_any_work(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from analogy_engine import cli as analogy_cli

    code = analogy_cli.main([str(A), str(B_PRIME), "--out", str(tmp_path / "out"), "--paint", "-3"])
    assert code == 2
    assert "strokes must be an integer from 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ guidance


def _guidance_files(tmp: Path) -> dict[str, Path]:
    """Small inputs for the guidance options: A and B′ 48 × 40, a second reference 40 × 32, their
    region maps (top red, bottom blue), a grey structure mask and a wrong-size map."""
    files = {}
    for name, image in (("a", photo(48, 40)), ("b", photo(48, 40)[:, ::-1]), ("ref", photo(40, 32))):
        files[name] = tmp / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(files[name])
    for name, (w, h) in (("regions_a", (48, 40)), ("regions_b", (48, 40)), ("regions_ref", (40, 32)),
                         ("regions_small", (20, 20))):
        labels = np.zeros((h, w, 3), np.uint8)
        labels[: h // 2], labels[h // 2 :] = (255, 0, 0), (0, 0, 255)
        files[name] = tmp / f"{name}.png"
        Image.fromarray(labels).save(files[name])
    files["one_sided"] = tmp / "one_sided.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(files["one_sided"])
    files["structure"] = tmp / "structure.png"
    Image.fromarray(np.full((40, 48), 255, np.uint8), mode="L").save(files["structure"])
    return files


def test_guidance_options_write_each_references_b_and_ref_ab(tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    """--reference, --regions-a/-b, --regions-ref and --structure (docs/cli.md): b_2.png at the
    second reference's size, ref_ab.npy (uint8, A's size) saying which reference each pixel took
    (the regions allow both; the report lists both references and the regions)."""
    f = _guidance_files(tmp_path)
    out = tmp_path / "out"
    done = cli_main(capfd, f["a"], f["b"], "--out", out, "--size", "32", "--preset", "fast", "--quiet",
                    "--reference", f["ref"], "--regions-a", f["regions_a"], "--regions-b", f["regions_b"],
                    "--regions-ref", f["regions_ref"], "--structure", f["structure"])
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["outputs"]) == {*OUTPUTS, "b_2.png", "ref_ab.npy"}
    with Image.open(out / "b_2.png") as b_2:
        assert b_2.size == (40, 32)
    ref_ab = np.load(out / "ref_ab.npy")
    assert ref_ab.dtype == np.uint8 and ref_ab.shape == (40, 48) and set(np.unique(ref_ab)) <= {0, 1}
    assert len(report["references"]) == 2 and report["regions"] == ["#0000ff", "#ff0000"]
    assert report["inputs"]["reference"] == [str(f["ref"])]


@pytest.mark.parametrize("case", ["one-sided regions", "one map", "map size", "mix length",
                                  "regions-ref alone", "too many references"])
def test_bad_guidance_exits_2_before_any_work(case: str, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    f = _guidance_files(tmp_path)
    args, word = {
        "one-sided regions": (["--regions-a", f["regions_a"], "--regions-b", f["one_sided"]],
                              "not in any reference's region map"),
        "one map": (["--regions-a", f["regions_a"]], "regions are paired"),
        "map size": (["--regions-a", f["regions_small"], "--regions-b", f["regions_b"]], "20×20"),
        "mix length": (["--reference", f["ref"], "--mix", "1,2,3"], "mix has 3"),
        "regions-ref alone": (["--reference", f["ref"], "--regions-ref", f["regions_ref"]],
                              "region maps of A"),
        "too many references": (["--reference", f["ref"]] * 4, "the limit is 3"),
    }[case]
    out = tmp_path / "out"
    done = cli_main(capfd, f["a"], f["b"], "--out", out, "--size", "32", *args)
    assert done.returncode == 2
    _assert_clean_failure(done, out, word)
