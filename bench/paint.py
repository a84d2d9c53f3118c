"""Painting benchmark (issue 12): PSNR and time against stroke count, and the flat-grid baseline.

    python bench/paint.py [--counts 200 500 1000 2000 5000] [--size 512] [--brush oil] [--out DIR]

For each N it paints examples/a.jpg (box-resized to size²) with N strokes and compares with a grid
of N flat cells: the image box-downscaled to round(√N)² cells and scaled back bicubically. The
target is painting PSNR ≥ grid PSNR + 3 dB at every N, and ≤ 120 s for 1 000 strokes at 512².
Prints a Markdown table; --out also keeps each painting, its SVG and a JSON of the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analogy_engine.paint import paint, psnr, to_svg  # noqa: E402


def grid_baseline(image8: np.ndarray, n: int) -> np.ndarray:
    g = max(1, round(math.sqrt(n)))
    height, width = image8.shape[:2]
    cells = Image.fromarray(image8).resize((g, g), Image.Resampling.BOX)
    return np.asarray(cells.resize((width, height), Image.Resampling.BICUBIC)).astype(np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default=str(ROOT / "examples" / "a.jpg"))
    parser.add_argument("--counts", type=int, nargs="+", default=[200, 500, 1000, 2000, 5000])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--brush", default="oil")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with Image.open(args.image) as source:
        image8 = np.asarray(source.convert("RGB").resize((args.size, args.size), Image.Resampling.BOX))
    image = image8.astype(np.float32) / 255
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}², brush {args.brush}")
    print("| strokes | seconds | painting PSNR (dB) | grid PSNR (dB) | margin (dB) |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for n in args.counts:
        started = time.perf_counter()
        result = paint(image, n, brush=args.brush, seed=args.seed)
        seconds = time.perf_counter() - started
        ours, grid = psnr(result.painting, image), psnr(grid_baseline(image8, n), image)
        rows.append({"strokes": n, "seconds": round(seconds, 1), "psnr": round(ours, 2),
                     "grid_psnr": round(grid, 2), "stages": result.report["stages"]})
        print(f"| {n} | {seconds:.1f} | {ours:.2f} | {grid:.2f} | {ours - grid:+.2f} |", flush=True)
        if args.out:
            painting = np.clip(np.rint(result.painting * 255), 0, 255).astype(np.uint8)
            Image.fromarray(painting).save(args.out / f"painting_{n}.png")
            (args.out / f"strokes_{n}.svg").write_text(to_svg(result.strokes, args.size, args.size))
    if args.out:
        (args.out / "paint_bench.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
