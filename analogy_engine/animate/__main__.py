"""`python -m analogy_engine.animate B′ FRAME1 FRAME2 … --out DIR`: the contract of docs/animation.md.

Writes DIR/frame_0001.png … (each frame's A′, the frame's size) as each frame is done, and
DIR/report.json (per-frame seconds, the warping error between consecutive outputs). Exit code 0
on success, 2 with a one-line error for bad input, 130 when interrupted, 3 out of memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli import Parser, add_params_arguments, params_from, progress_bar, run_guarded, write_report
from ..contract import frame_name
from ..imageio import load_image, save_png
from ..pipeline import Engine
from ..types import InputError
from .coherent import animate_frames, build_report


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m analogy_engine.animate",
        description="Deep Image Analogy over animation frames with one reference B′, temporally coherent.",
    )
    parser.add_argument("b_prime", metavar="B_PRIME_IMAGE", help="reference image B′ (the look)")
    parser.add_argument("frames", metavar="FRAME", nargs="+", help="the frames, in order (at least 2)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_params_arguments(parser)
    parser.add_argument("--independent", action="store_true",
                        help="each frame on its own (the flickering baseline)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> dict:
    params = params_from(args)
    if len(args.frames) < 2:
        raise InputError(f"an animation needs at least 2 frames, got {len(args.frames)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    b_prime = load_image(args.b_prime, "B′")
    # Read every frame's header first, so that a bad frame fails before minutes of work.
    first = load_image(args.frames[0], "frame 1")
    for i, path in enumerate(args.frames[1:], start=2):
        frame = load_image(path, f"frame {i}")
        if frame.shape != first.shape:
            raise InputError(
                f"frame {i} ({path}) is {frame.shape[1]}×{frame.shape[0]}, frame 1 is "
                f"{first.shape[1]}×{first.shape[0]}: all frames must have one size"
            )
    frame_hw = (first.shape[0], first.shape[1])
    del first
    engine = Engine.load(params.device)
    out.mkdir(parents=True, exist_ok=True)
    n = len(args.frames)
    frames = (load_image(path, f"frame {i}") for i, path in enumerate(args.frames, start=1))
    started = time.perf_counter()
    results = []
    with progress_bar(args.quiet) as progress:
        for result in animate_frames(frames, b_prime, params, engine, args.independent, progress, count=n):
            save_png(out / f"{frame_name(result.index + 1)}.png", result.image)
            result.image = result.image[:0]  # written: keep only the numbers (memory stays bounded)
            results.append(result)
    report = build_report(results, params, engine, args.independent, b_prime, frame_hw,
                          time.perf_counter() - started)
    report["inputs"] = {"b_prime": str(args.b_prime), "frames": [str(f) for f in args.frames]}
    report["outputs"] = [f"{frame_name(k)}.png" for k in range(1, n + 1)] + ["report.json"]
    write_report(out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, report = run_guarded(lambda: run(args), "a smaller --size or smaller frames")
    if report is not None and not args.quiet:
        werr = report["warping_error"]["mean"]
        print(f"wrote {report['frames']} frames and report.json to {args.out} in "
              f"{report['seconds']['total']:.1f} s (warping error {werr})", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
