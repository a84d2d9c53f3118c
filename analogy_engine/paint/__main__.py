"""`python -m analogy_engine.paint IMAGE --out DIR`: painting.png, strokes.svg, report.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..cli import progress_bar, run_guarded
from ..devices import resolve_device
from ..imageio import load_image, save_png
from ..params import DEVICES
from ..types import InputError
from . import BRUSHES, MAX_STROKES, MAX_WORK_SIDE, MIN_SIDE, OUTPUTS, paint, to_svg
from .optimise import check_inputs


class _Parser(argparse.ArgumentParser):
    """Bad options end in a one-line error (exit 2), not argparse's usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m analogy_engine.paint",
                     description="Paint an image with brush strokes; write the strokes as SVG paths.")
    parser.add_argument("image", metavar="IMAGE", help="the image to paint")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--strokes", type=int, default=1000, metavar="N",
                        help=f"stroke count, 1–{MAX_STROKES}")
    parser.add_argument("--brush", choices=tuple(BRUSHES), default="oil",
                        help="oil: bristle streaks; marker: flat colour (exactly what the SVG draws)")
    parser.add_argument("--size", type=int, default=None, metavar="N",
                        help=f"longest side the strokes are fitted at ({MIN_SIDE}–{MAX_WORK_SIDE}; "
                        "default min(512, the image's)); painting.png is always the image's size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", metavar="FILE", default=None,
                        help="reference image: adds a VGG-19 Gram (style) loss towards its look")
    parser.add_argument("--style-weight", type=float, default=0.02, metavar="W")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    device = resolve_device(args.device)
    image = load_image(args.image, "IMAGE")
    style = load_image(args.style, "--style") if args.style else None
    check_inputs(image, args.strokes, args.brush, args.size)  # before the progress bar starts
    with progress_bar(args.quiet) as progress:
        result = paint(image, args.strokes, brush=args.brush, size=args.size, seed=args.seed, style=style,
                       style_weight=args.style_weight, progress=progress, device=device)
    out.mkdir(parents=True, exist_ok=True)
    height, width = image.shape[:2]
    save_png(out / "painting.png", np.clip(np.rint(result.painting * 255), 0, 255).astype(np.uint8))
    (out / "strokes.svg").write_text(to_svg(result.strokes, width, height))
    inputs = {"image": str(args.image), "style": args.style}
    report = dict(result.report, inputs=inputs, outputs=list(OUTPUTS))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, report = run_guarded(lambda: run(args), "a smaller --size or fewer strokes")
    if report is not None and not args.quiet:
        print(f"wrote {', '.join(OUTPUTS)} to {args.out}: {report['strokes']} strokes, "
              f"{report['psnr']:.2f} dB, {report['seconds']:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
