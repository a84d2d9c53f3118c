"""Where quality is won or lost: result sheets of real pairs, and known-answer scores per level.

    .venv/bin/python bench/quality.py sheets --out bench/results/sheets          # every pair
    .venv/bin/python bench/quality.py sheets --out DIR --preset faithful --size 224 --only 2style2style
    .venv/bin/python bench/quality.py sheets --out DIR --only A32 --seed 3 --no-fallback
    .venv/bin/python bench/quality.py known --sizes 128 224 --presets balanced faithful

`sheets` runs the bundled example and every pair of the paper's example set (folder
$DIA_PAPER_EXAMPLES, default /work/shared/examples; never copied into the project) at the given
options (by default only the pair's mode, as a user would) and writes one A | A′ | B′ | B image
per pair, to look at. `known` runs the known-answer cases of tests/known_answer.py (truth known)
and prints, per case and direction, the share of pixels whose field lands within 1 and 3 px of
the truth at every level of the pyramid, then PSNR of A′ and B at full resolution.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from analogy_engine import PRESETS, AnalogyParams, Engine, Preset, analogy  # noqa: E402
from analogy_engine.imageio import load_image  # noqa: E402

PAPER = Path(os.environ.get("DIA_PAPER_EXAMPLES", "/work/shared/examples"))
MODES = {
    "1photo2style": "photo-to-style",
    "2style2style": "style-to-style",
    "3style2photo": "style-to-photo",
    "4photo2photo": "photo-to-photo",
}
SHEET_HEIGHT = 320


def pairs(only: list[str] | None) -> list[tuple[str, Path, Path, str]]:
    """(name, A path, B′ path, mode) for the bundled example and every paper pair found."""
    found = [("bundled", ROOT / "examples" / "a.jpg", ROOT / "examples" / "b_prime.png", "photo-to-style")]
    for folder, mode in MODES.items():
        for a_path in sorted((PAPER / folder).glob("A*.png")):
            b_path = a_path.with_name("BP" + a_path.name[1:])
            if b_path.is_file():
                found.append((f"{folder}-{a_path.stem}", a_path, b_path, mode))
    if only:
        found = [p for p in found if any(key in p[0] for key in only)]
    return found


def sheet(images: list[np.ndarray], labels: list[str]) -> Image.Image:
    """The images side by side at one height, each labelled in its top-left corner."""
    tiles = []
    for image in images:
        tile = Image.fromarray(image)
        width = round(tile.width * SHEET_HEIGHT / tile.height)
        tiles.append(tile.resize((width, SHEET_HEIGHT), Image.Resampling.LANCZOS))
    out = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), SHEET_HEIGHT), "white")
    x = 0
    draw = ImageDraw.Draw(out)
    for tile, label in zip(tiles, labels, strict=True):
        out.paste(tile, (x, 0))
        draw.rectangle((x, 0, x + 8 * len(label) + 6, 14), fill="black")
        draw.text((x + 3, 1), label, fill="white")
        x += tile.width + 4
    return out


def overridden(preset_name: str, overrides: list[str]) -> Preset:
    """PRESETS[preset_name] with KEY=VALUE overrides (values are Python literals)."""
    changes = {}
    for item in overrides:
        key, _, value = item.partition("=")
        changes[key] = ast.literal_eval(value)
    return dataclasses.replace(PRESETS[preset_name], **changes)


def run_sheets(args: argparse.Namespace, engine: Engine) -> None:
    import known_answer as ka

    with ka.custom_preset(overridden(args.preset, args.set), slot=args.preset):
        _run_sheets(args, engine)


def _run_sheets(args: argparse.Namespace, engine: Engine) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, a_path, b_path, mode in pairs(args.only):
        a, b_prime = load_image(a_path, "A"), load_image(b_path, "B′")
        options: dict = {"mode": mode, "preset": args.preset, "seed": args.seed, "fallback": args.fallback}
        if args.size:
            options["size"] = args.size
        if args.ratio:
            options["ratio"] = args.ratio
        started = time.perf_counter()
        result = analogy(a, b_prime, AnalogyParams(**options), engine=engine)
        seconds = time.perf_counter() - started
        sheet([a, result.a_prime, b_prime, result.b], ["A", "A'", "B'", "B"]).save(out / f"{name}.png")
        summary[name] = {"seconds": round(seconds, 1), "working_size": result.report["working_size"]}
        print(f"{name:28s} {mode:15s} {seconds:6.1f} s  working {result.report['working_size']}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def run_known(args: argparse.Namespace, engine: Engine) -> None:
    import known_answer as ka

    for preset in args.presets:
        with ka.custom_preset(overridden(preset, args.set), slot=preset):
            _run_known(args, engine, preset)


def _run_known(args: argparse.Namespace, engine: Engine, preset: str) -> None:
    import known_answer as ka

    for case_name, make in ka.CASES.items():
        case = make()
        for size in args.sizes:
            params = AnalogyParams(mode=args.mode, preset=preset, size=size)
            levels: list[tuple[str, str, float, float]] = []

            def observe(step, field_ab, field_ba, case=case, levels=levels) -> None:
                for name, fld, tgt_grid, truth, valid, tgt in (
                    ("ab", field_ab, step.b_hw, case.flow_ab, case.valid_a, case.b_prime.shape[:2]),
                    ("ba", field_ba, step.a_hw, case.flow_ba, case.valid_b, case.a.shape[:2]),
                ):
                    levels.append((step.label, name, *ka.field_error(fld, tgt_grid, truth, valid, tgt)))

            started = time.perf_counter()
            result = analogy(case.a, case.b_prime, params, engine=engine, observe=observe)
            seconds = time.perf_counter() - started
            scores = ka.evaluate(case, result)
            within1 = ka.share_within(result.flow_ab, case.flow_ab, case.valid_a, 1.0)
            print(f"{case_name:9s} {preset:9s} size {size:4d} {seconds:6.1f} s  "
                  f"A′ {scores.psnr_a_prime:5.2f} dB  B {scores.psnr_b:5.2f} dB  "
                  f"≤3px {scores.share_within_3px_ab:.3f}/{scores.share_within_3px_ba:.3f}  "
                  f"≤1px ab {within1:.3f}", flush=True)
            for label, name, within, median in levels:
                print(f"    {label:20s} {name}: ≤1 cell {within:.3f}  median {median:5.2f} px")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sheets")
    s.add_argument("--out", required=True)
    s.add_argument("--preset", default="balanced")
    s.add_argument("--size", type=int, default=None)
    s.add_argument("--ratio", type=float, default=None)
    s.add_argument("--only", nargs="*", default=None, help="substrings of pair names")
    s.add_argument("--seed", type=int, default=0, help="PatchMatch's seed (blotches can come and go with it)")
    s.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=True,
                   help="the confidence fallback (fallback_colour.py); --no-fallback shows the raw matches")
    k = sub.add_parser("known")
    k.add_argument("--sizes", type=int, nargs="+", default=[128])
    k.add_argument("--presets", nargs="+", default=["balanced"])
    k.add_argument("--mode", default="photo-to-style")
    for p in (s, k):
        p.add_argument("--device", default="cpu")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    args = parser.parse_args()
    engine = Engine.load(args.device)
    if args.command == "sheets":
        run_sheets(args, engine)
    else:
        run_known(args, engine)


if __name__ == "__main__":
    main()
