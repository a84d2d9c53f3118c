"""`python -m analogy_engine.paint IMAGE --out DIR`: painting.png, strokes.svg, report.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import Parser, add_params_arguments, params_from, progress_bar, run_guarded, write_report
from ..devices import resolve_device
from ..imageio import load_image
from ..types import InputError
from . import OUTPUTS, PaintParams, paint_image, write_painting
from .optimise import check_inputs


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m analogy_engine.paint",
                    description="Paint an image with brush strokes; write the strokes as SVG paths.")
    parser.add_argument("image", metavar="IMAGE", help="the image to paint")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--style", metavar="FILE", default=None,
                        help="reference image: adds a VGG-19 Gram (style) loss towards its look")
    add_params_arguments(parser, PaintParams)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> dict:
    params = params_from(args, PaintParams)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    resolve_device(params.device)  # a missing GPU is a one-line error before any work
    image = load_image(args.image, "IMAGE")
    style = load_image(args.style, "--style") if args.style else None
    check_inputs(image, params.strokes, params.brush, params.size)  # before the progress bar starts
    with progress_bar(args.quiet) as progress:
        result = paint_image(image, params, style=style, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    report = write_painting(out, result, image.shape[:2])
    report["inputs"] = {"image": str(args.image), "style": args.style}
    report["outputs"] = list(OUTPUTS)
    write_report(out, report)
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
