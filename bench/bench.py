"""Benchmark the Deep Image Analogy engine: time per stage, and against plain VGG-19 passes.

    .venv/bin/python bench/bench.py                       # 224² and 448², presets fast + balanced
    .venv/bin/python bench/bench.py --faithful            # also the reference parameters (slow)
    .venv/bin/python bench/bench.py --sizes 64 --presets fast
    .venv/bin/python bench/bench.py --megapixels 0.25 1 4 12 --presets balanced --device cuda
    .venv/bin/python bench/bench.py --json bench/results/run.json
    .venv/bin/python bench/bench.py --sizes 448 --presets balanced --threads 1   # shared machine

Inputs are the bundled example pair (examples/a.jpg as A, examples/b_prime.png as B′), resized.
Each working-size run does both directions (A→B′ and B′→A: `analogy` always does) and reports
report["seconds"] per stage. "2×VGG" is the time of two VGG-19 forward passes to relu5_1 at the
same size, measured in the same process and on the same device; "ratio" = total / 2×VGG, a
hardware-independent measure of how much work the algorithm adds on top of feature extraction.

--megapixels runs take full-resolution inputs (square, N megapixels) at the working size of
--mp-size (default: the original's rule) and report time and peak memory. Each runs in its own
process (unless --no-isolate) so that the peak resident memory is that run's own.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analogy_engine import AnalogyParams, Engine, analogy  # noqa: E402
from analogy_engine.params import PRESET_NAMES  # noqa: E402
from analogy_engine.vgg import preprocess  # noqa: E402

EXAMPLE_A = ROOT / "examples" / "a.jpg"
EXAMPLE_B_PRIME = ROOT / "examples" / "b_prime.png"
STAGES = ("features", "matching", "inversion", "reconstruction")


def load_pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The example pair resized to width × height (Lanczos; bicubic above 4 MP for speed)."""
    resample = Image.Resampling.LANCZOS if width * height <= 4_000_000 else Image.Resampling.BICUBIC
    out = []
    for path in (EXAMPLE_A, EXAMPLE_B_PRIME):
        with Image.open(path) as image:
            out.append(np.asarray(image.convert("RGB").resize((width, height), resample)).copy())
    return out[0], out[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def vgg_two_passes(engine: Engine, size: int, repeat: int = 3) -> float:
    """Median seconds of two VGG-19 forward passes to relu5_1 on size × size inputs."""
    device = engine.device
    a, b_prime = load_pair(size, size)
    inputs = [
        preprocess(torch.from_numpy(x).to(device).permute(2, 0, 1)[None].float() / 255.0)
        for x in (a, b_prime)
    ]
    times = []
    with torch.no_grad():
        for i in range(repeat + 1):
            sync(device)
            started = time.perf_counter()
            for x in inputs:
                engine.vgg.run(x, 0, 5)
            sync(device)
            if i > 0:  # the first round warms up
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_once(
    engine: Engine, a: np.ndarray, b_prime: np.ndarray, preset: str, size: int | None, device: str, seed: int
) -> dict[str, Any]:
    params = AnalogyParams(preset=preset, size=size, device=device, seed=seed)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = analogy(a, b_prime, params, engine=engine)
    wall = time.perf_counter() - started
    report = result.report
    return {
        "seconds": {stage: report["seconds"].get(stage, 0.0) for stage in STAGES},
        "total": report["total_seconds"],
        "wall": round(wall, 3),
        "working_size": report["working_size"],
        "peak_memory_mb": report["peak_memory_mb"],
    }


def working_rows(args: argparse.Namespace, engine: Engine) -> list[dict[str, Any]]:
    rows = []
    vgg_cache: dict[int, float] = {}
    for size in args.sizes:
        a, b_prime = load_pair(size, size)
        for preset in args.presets:
            runs = []
            for _ in range(args.repeat):
                print(f"… {preset} at {size}²", file=sys.stderr, flush=True)
                runs.append(run_once(engine, a, b_prime, preset, size, args.device, args.seed))
            best = min(runs, key=lambda r: r["total"])
            if size not in vgg_cache:
                vgg_cache[size] = vgg_two_passes(engine, size)
            two_vgg = vgg_cache[size]
            rows.append({
                "preset": preset,
                "size": size,
                **best,
                "totals": [r["total"] for r in runs],
                "two_vgg_seconds": round(two_vgg, 4),
                "ratio": round(best["total"] / two_vgg, 1),
            })
    return rows


def megapixel_row(args: argparse.Namespace, engine: Engine | None, preset: str, mp: float) -> dict[str, Any]:
    side = max(8, round(math.sqrt(mp * 1e6)))
    if engine is None:  # isolated: one fresh process per run, for its own peak memory
        command = [
            sys.executable, str(Path(__file__).resolve()), "--one-megapixel", str(mp), "--presets", preset,
            "--device", args.device, "--seed", str(args.seed),
        ]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        if args.mp_size is not None:
            command += ["--mp-size", str(args.mp_size)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            return {"preset": preset, "megapixels": mp, "side": side, "error": tail[0]}
        return json.loads(done.stdout)
    a, b_prime = load_pair(side, side)
    print(f"… {preset} at {side}×{side} ({mp:g} MP)", file=sys.stderr, flush=True)
    try:
        run = run_once(engine, a, b_prime, preset, args.mp_size, args.device, args.seed)
    except (MemoryError, torch.cuda.OutOfMemoryError) as error:
        return {"preset": preset, "megapixels": mp, "side": side, "error": f"out of memory: {error}"[:200]}
    return {"preset": preset, "megapixels": mp, "side": side, **run}


def markdown_working(rows: list[dict[str, Any]]) -> str:
    head = ("| preset | size | " + " | ".join(STAGES)
            + " | total s | 2×VGG s | ratio | peak RSS MB | peak CUDA MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        stages = " | ".join(f"{r['seconds'][s]:.2f}" for s in STAGES)
        lines.append(
            f"| {r['preset']} | {r['size']}² | {stages} | {r['total']:.2f} | {r['two_vgg_seconds']:.4f} "
            f"| {r['ratio']:.0f}× | {_peak(r)} | {_cuda_peak(r)} |"
        )
    return "\n".join(lines)


def markdown_megapixels(rows: list[dict[str, Any]]) -> str:
    head = "| preset | MP | input | working (A) | total s | reconstruction s | peak RSS MB | peak CUDA MB |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['megapixels']:g} | {r['side']}² | – | {r['error']} | | | |")
            continue
        w, h = r["working_size"]["a"]
        lines.append(
            f"| {r['preset']} | {r['megapixels']:g} | {r['side']}² | {w}×{h} | {r['total']:.2f} "
            f"| {r['seconds']['reconstruction']:.2f} | {_peak(r)} | {_cuda_peak(r)} |"
        )
    return "\n".join(lines)


def _peak(row: dict[str, Any]) -> str:
    return f"{row['peak_memory_mb'].get('process_rss', float('nan')):.0f}"


def _cuda_peak(row: dict[str, Any]) -> str:
    """Most GPU memory torch held at once in the run (its allocator's peak), or – on the CPU."""
    peak = row["peak_memory_mb"].get("cuda_allocated")
    return "–" if peak is None else f"{peak:.0f}"


def environment(engine: Engine) -> dict[str, Any]:
    device = engine.device
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[224, 448],
                        help="working sizes (longest side); none with --megapixels only")
    parser.add_argument("--presets", nargs="+", choices=PRESET_NAMES, default=None,
                        help="presets to time (default: fast balanced, plus faithful with --faithful)")
    parser.add_argument("--faithful", action="store_true", help="also time the reference parameters (slow)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--megapixels", type=float, nargs="*", default=[],
                        help="full-resolution runs at these input sizes, e.g. 0.25 1 4 12")
    parser.add_argument("--mp-size", type=int, default=None,
                        help="working size for --megapixels runs (default: the original's rule)")
    parser.add_argument("--no-isolate", action="store_true", help="run --megapixels runs in this process")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per working-size cell (the fastest counts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: the engine's, one per core); on a shared "
                        "machine one thread keeps the timings from waiting on preempted threads")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write all results as JSON")
    parser.add_argument("--one-megapixel", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.presets is None:
        args.presets = ["fast", "balanced"] + (["faithful"] if args.faithful else [])
    elif args.faithful and "faithful" not in args.presets:
        args.presets.append("faithful")
    if min(args.sizes, default=32) < 32 or args.repeat < 1 or (args.threads is not None and args.threads < 1):
        parser.error("sizes must be ≥ 32, --repeat and --threads ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine = Engine.load(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # Warm-up: first-call costs (allocator, autograd, kernels) should not count against a preset.
    a, b_prime = load_pair(64, 64)
    analogy(a, b_prime, AnalogyParams(preset="fast", size=32, device=args.device), engine=engine)
    if args.one_megapixel is not None:  # child process of an isolated megapixel run
        print(json.dumps(megapixel_row(args, engine, args.presets[0], args.one_megapixel)))
        return 0

    env = environment(engine)
    print(f"device: {env['device_name']} ({env['device']}), {env['threads']} threads, torch {env['torch']}")
    results: dict[str, Any] = {"environment": env, "working": [], "megapixels": []}
    if args.sizes:
        results["working"] = working_rows(args, engine)
        print("\n## Working size (both directions; example pair resized to size²)\n")
        print(markdown_working(results["working"]))
    if args.megapixels:
        rows = [
            megapixel_row(args, None if not args.no_isolate else engine, preset, mp)
            for preset in args.presets
            for mp in args.megapixels
        ]
        results["megapixels"] = rows
        print(f"\n## Full resolution (working size: {args.mp_size or 'the original rule'})\n")
        print(markdown_megapixels(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
