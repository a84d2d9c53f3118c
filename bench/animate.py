"""Animation benchmark: coherent vs independent frames on synthetic sequences with known motion.

    .venv/bin/python bench/animate.py --kind pan --frames 5 --size 128
    .venv/bin/python bench/animate.py --kind zoom --frames 6 --size 128 --strip /tmp/zoom.png

The camera (examples/make_sequence.py) pans or zooms over examples/a.jpg; B′ is the world with
tests/known_answer.stylise's look (colour and hatching), rotated 5° and scaled ×1.06, so every
frame's true A′ is known. Prints the warping error of both runs (and their ratio), each frame's
PSNR against its truth, and the later frames' mean seconds against one `analogy()` of a frame,
all in one process with one thread (timings on a shared machine are only comparable as ratios).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "examples")]

import make_sequence as ms  # noqa: E402
from known_answer import psnr, stylise  # noqa: E402

from analogy_engine import AnalogyParams, Engine, analogy  # noqa: E402
from analogy_engine.animate import Coherence, animate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("pan", "zoom"), default="pan")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--pull", type=float, default=Coherence().pull)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strip", default=None, help="PNG: coherent / independent / input rows")
    args = parser.parse_args()
    engine = Engine.load("cpu")
    torch.set_num_threads(args.threads)
    camera = (ms.pan if args.kind == "pan" else ms.zoom)(args.frames, args.size)
    world = ms.photo(camera.world_side)
    frames = camera.frames(world)
    truth = ms.known_answer(camera, world, stylise)
    params = AnalogyParams(size=args.size, preset=args.preset)
    runs = {}
    for independent in (False, True):
        coherence = Coherence(pull=args.pull)
        result = animate(frames, truth.b_prime, params, engine, independent, coherence=coherence)
        quality = [psnr(f, truth.truths[i], truth.valid[i]) for i, f in enumerate(result.frames)]
        runs[independent] = (result, quality)
        name = "independent" if independent else "coherent"
        print(f"{name:12s} warping error {result.report['warping_error']['mean']:.3f} "
              f"(inputs {result.report['warping_error']['input_mean']:.3f}), "
              f"later frames {result.report['seconds']['later_frames_mean']:.2f} s, "
              f"PSNR {np.round(quality, 2)}")
    t = time.perf_counter()
    analogy(frames[1], truth.b_prime, params, engine=engine)
    single = time.perf_counter() - t
    coherent, independent = runs[False], runs[True]
    ratio = coherent[0].report["warping_error"]["mean"] / independent[0].report["warping_error"]["mean"]
    cost = coherent[0].report["seconds"]["later_frames_mean"] / single
    dpsnr = np.array(coherent[1]) - np.array(independent[1])
    print(f"warping error ratio {ratio:.2f}; later-frame cost {cost:.2f}× one analogy ({single:.2f} s); "
          f"PSNR coherent − independent: worst {dpsnr[1:].min():+.2f} dB, mean {dpsnr[1:].mean():+.2f} dB")
    if args.strip:
        rows = [np.concatenate(r[0].frames, 1) for r in (coherent, independent)] + [np.concatenate(frames, 1)]
        Image.fromarray(np.concatenate(rows, 0)).save(args.strip)


if __name__ == "__main__":
    main()
