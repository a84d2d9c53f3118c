"""The README's flicker comparison: the bundled sequence stylised with B′, frames one by one
(`--independent`) beside the temporally coherent run, as an animated GIF.

    .venv/bin/python examples/make_animation_gif.py            # writes examples/animation.gif

Runs the animate CLI twice (coherent, independent) into a temporary folder, then lays out
input | independent | coherent per frame with labels, and prints both runs' warping errors.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
LABELS = ("input", "independent", "coherent")


def run(out: Path, size: int, preset: str, independent: bool) -> dict:
    frames = sorted(str(p) for p in (HERE / "sequence").glob("frame_*.jpg"))
    command = [sys.executable, "-m", "analogy_engine.animate", str(HERE / "b_prime.png"), *frames,
               "--out", str(out), "--size", str(size), "--preset", preset, "--quiet"]
    subprocess.run(command + (["--independent"] if independent else []), check=True, cwd=HERE.parent)
    return json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--out", type=Path, default=HERE / "animation.gif")
    parser.add_argument("--ms", type=int, default=120, help="milliseconds a frame")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        coherent, independent = Path(tmp) / "coherent", Path(tmp) / "independent"
        reports = {"coherent": run(coherent, args.size, args.preset, False),
                   "independent": run(independent, args.size, args.preset, True)}
        inputs = sorted((HERE / "sequence").glob("frame_*.jpg"))
        sheets = []
        for k, source in enumerate(inputs, start=1):
            name = f"frame_{k:04d}.png"
            tiles = [Image.open(source).convert("RGB"), Image.open(independent / name).convert("RGB"),
                     Image.open(coherent / name).convert("RGB")]
            w, h = tiles[0].size
            sheet = Image.new("RGB", (3 * w + 8, h + 18), "white")
            draw = ImageDraw.Draw(sheet)
            for i, (tile, label) in enumerate(zip(tiles, LABELS, strict=True)):
                sheet.paste(tile, (i * (w + 4), 18))
                draw.text((i * (w + 4) + 4, 3), label, fill="black")
            sheets.append(sheet.quantize(colors=255, dither=Image.Dither.NONE))
    sheets[0].save(args.out, save_all=True, append_images=sheets[1:], duration=args.ms, loop=0,
                   optimize=True)
    for kind, report in reports.items():
        print(f"{kind}: warping error {report['warping_error']['mean']} "
              f"(inputs {report['warping_error']['input_mean']}), {report['seconds']['total']:.1f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
