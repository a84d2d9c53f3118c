"""`python -m analogy_engine A B′ --out DIR`: the contract of docs/cli.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from .contract import MAX_REFERENCES, REF_AB, b_name
from .guidance import Guidance
from .imageio import load_image, save_png
from .paint.output import FILES as PAINT_FILES
from .paint.output import write_painting
from .paint.params import BRUSH_NAMES, PaintParams, paint_image
from .params import AnalogyParams, OptionParams, ParamsError
from .pipeline import Engine, analogy, check_guidance
from .types import Cancelled, InputError

P = TypeVar("P", bound=OptionParams)

OUTPUTS = ("a_prime.png", "b.png", "flow_ab.npy", "flow_ba.npy", "report.json")


class Parser(argparse.ArgumentParser):
    """Bad options end in the contract's one-line error, not argparse's usage dump (the analogy,
    paint and animate commands)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def add_params_arguments(parser: argparse.ArgumentParser, params: type[OptionParams] = AnalogyParams) -> None:
    """One flag per field of `params` (AnalogyParams, PaintParams), from the field's Option
    (params.py)."""
    for name, (option, default) in params.options().items():
        flag = "--" + name.replace("_", "-")
        if option.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=option.help)
            continue
        kwargs: dict = {"type": option.kind, "default": default, "help": option.help}
        if option.choices:
            kwargs["choices"] = option.choices
        if option.metavar:
            kwargs["metavar"] = option.metavar
        parser.add_argument(flag, **kwargs)


def params_from(args: argparse.Namespace, params: type[P] = AnalogyParams) -> P:  # type: ignore[assignment]
    return params(**{name: getattr(args, name) for name in params.options()})


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m analogy_engine",
        description="Deep Image Analogy: A′ (A's structure, B′'s look) and B (B′'s structure, A's look).",
    )
    parser.add_argument("a", metavar="A_IMAGE", help="content image A")
    parser.add_argument("b_prime", metavar="B_PRIME_IMAGE", help="reference image B′")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_params_arguments(parser)
    guide = parser.add_argument_group("guidance (docs/guidance.md)")
    guide.add_argument("--regions-a", metavar="FILE",
                       help="region map of A (any image, A's size): "
                       "equal colours = regions that must correspond")
    guide.add_argument("--regions-b", metavar="FILE",
                       help="region map of B′ (B′'s size), paired with --regions-a")
    guide.add_argument("--reference", action="append", default=[], metavar="FILE",
                       help=f"one more reference B′2, B′3, … (repeat; at most {MAX_REFERENCES - 1}): "
                       "A′ may draw from all of them")
    guide.add_argument("--regions-ref", action="append", default=[], metavar="FILE",
                       help="region map of each --reference, in the same order")
    guide.add_argument("--structure", metavar="FILE",
                       help="grey map of A's size: white keeps A's structure, "
                       "black takes B′'s content (collage)")
    parser.add_argument("--paint", type=int, default=0, metavar="N",
                        help="also paint A′ with N brush strokes: painting.png and strokes.svg (0: no)")
    parser.add_argument("--paint-brush", choices=BRUSH_NAMES, default="oil", help="brush of --paint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@contextlib.contextmanager
def progress_bar(quiet: bool) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr, as the engine's progress(fraction, stage) callback."""
    with tqdm(total=1000, unit="‰", disable=quiet, file=sys.stderr,
              bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:
        def progress(fraction: float, stage: str) -> None:
            bar.set_description(stage, refresh=False)
            bar.update(round(fraction * 1000) - bar.n)

        yield progress


def run_guarded(run: Callable[[], dict], too_big: str) -> tuple[int, dict | None]:
    """Run a CLI's job; every expected failure becomes the contract's one line on stderr and
    its exit code (2 bad input, 130 interrupted, 3 out of memory; `too_big` says what to shrink)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return 0, run()
    except (InputError, ParamsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2, None
    except (KeyboardInterrupt, Cancelled):
        print("error: interrupted", file=sys.stderr)
        return 130, None
    except torch.cuda.OutOfMemoryError:
        print("error: out of GPU memory; try --device cpu or a smaller --size", file=sys.stderr)
        return 3, None
    except MemoryError:
        print(f"error: out of memory; try {too_big}", file=sys.stderr)
        return 3, None


def write_report(out: Path, report: dict) -> None:
    """report.json of the analogy, paint and animate commands."""
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def paint_params_from(args: argparse.Namespace, params: AnalogyParams) -> PaintParams | None:
    """--paint N: A′ painted with N strokes, on the analogy's device and seed (None: no painting)."""
    if not args.paint:
        return None
    return PaintParams(strokes=args.paint, brush=args.paint_brush, seed=params.seed, device=params.device)


def run(args: argparse.Namespace) -> dict:
    params = params_from(args)
    painting = paint_params_from(args, params)  # bad --paint values fail before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    a = load_image(args.a, "A")
    b_prime = load_image(args.b_prime, "B′")
    guidance = guidance_from(args)
    check_guidance(a, b_prime, params, guidance)  # before the network loads
    engine = Engine.load(params.device)
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(args.quiet) as progress:
        # With --paint the bar runs over both jobs: the analogy to 80 %, the painting after it.
        share = 0.8 if painting else 1.0
        result = analogy(a, b_prime, params, engine=engine, guidance=guidance,
                         progress=lambda f, stage: progress(f * share, stage))
        if painting:
            painted = paint_image(
                result.a_prime, painting, progress=lambda f, stage: progress(share + f * (1 - share), stage)
            )
    save_png(out / "a_prime.png", result.a_prime)
    save_png(out / "b.png", result.b)
    np.save(out / "flow_ab.npy", result.flow_ab)
    np.save(out / "flow_ba.npy", result.flow_ba)
    outputs = list(OUTPUTS)
    for number, b in enumerate(result.b_more, start=2):
        save_png(out / f"{b_name(number)}.png", b)
        outputs.append(f"{b_name(number)}.png")
    if result.ref_ab is not None:
        np.save(out / f"{REF_AB}.npy", result.ref_ab)
        outputs.append(f"{REF_AB}.npy")
    inputs = {"a": str(args.a), "b_prime": str(args.b_prime)}
    for flag in ("regions_a", "regions_b", "structure", "reference", "regions_ref"):
        if getattr(args, flag):
            inputs[flag] = getattr(args, flag)
    report = dict(result.report, inputs=inputs, outputs=outputs)
    if painting:
        report["painting"] = write_painting(out, painted, result.a_prime.shape[:2])
        report["outputs"] += PAINT_FILES
    write_report(out, report)
    return report


def guidance_from(args: argparse.Namespace) -> Guidance:
    """The guidance files read (each named in its error messages); sizes are checked later, by
    `check_guidance`, against the images they go with."""
    if len(args.reference) + 1 > MAX_REFERENCES:
        raise InputError(f"{len(args.reference)} --reference given; the limit is {MAX_REFERENCES - 1}")

    def read(path: str | None, name: str) -> np.ndarray | None:
        return load_image(path, name) if path else None

    return Guidance(
        regions_a=read(args.regions_a, "--regions-a"),
        regions_b=read(args.regions_b, "--regions-b"),
        structure=read(args.structure, "--structure"),
        references=[load_image(p, f"--reference {p}") for p in args.reference],
        regions_refs=[load_image(p, f"--regions-ref {p}") for p in args.regions_ref],
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, report = run_guarded(lambda: run(args), "a smaller --size or smaller images")
    if report is not None and not args.quiet:
        written = ", ".join(report["outputs"])
        print(f"wrote {written} to {args.out} in {report['total_seconds']:.1f} s", file=sys.stderr)
    return code
