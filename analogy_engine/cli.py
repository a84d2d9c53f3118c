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

from .imageio import load_image, save_png
from .paint.output import FILES as PAINT_FILES
from .paint.output import write_painting
from .paint.params import BRUSH_NAMES, PaintParams, paint_image
from .params import AnalogyParams, OptionParams, ParamsError
from .pipeline import Engine, analogy
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
    engine = Engine.load(params.device)
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(args.quiet) as progress:
        # With --paint the bar runs over both jobs: the analogy to 80 %, the painting after it.
        share = 0.8 if painting else 1.0
        result = analogy(a, b_prime, params, engine=engine,
                         progress=lambda f, stage: progress(f * share, stage))
        if painting:
            painted = paint_image(
                result.a_prime, painting, progress=lambda f, stage: progress(share + f * (1 - share), stage)
            )
    save_png(out / "a_prime.png", result.a_prime)
    save_png(out / "b.png", result.b)
    np.save(out / "flow_ab.npy", result.flow_ab)
    np.save(out / "flow_ba.npy", result.flow_ba)
    inputs = {"a": str(args.a), "b_prime": str(args.b_prime)}
    report = dict(result.report, inputs=inputs, outputs=list(OUTPUTS))
    if painting:
        report["painting"] = write_painting(out, painted, result.a_prime.shape[:2])
        report["outputs"] += PAINT_FILES
    write_report(out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, report = run_guarded(lambda: run(args), "a smaller --size or smaller images")
    if report is not None and not args.quiet:
        print(f"wrote {', '.join(OUTPUTS)} to {args.out} in {report['total_seconds']:.1f} s", file=sys.stderr)
    return code
