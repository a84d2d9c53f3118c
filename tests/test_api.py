"""The library API: analogy() results, progress, cancellation, parameter validation, determinism."""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analogy_engine import AnalogyParams, Cancelled, Engine, InputError, ParamsError, analogy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CANCEL_LATENCY_S = 1.5  # "stops within about a second"; some slack for a loaded 2-core CPU


@pytest.fixture(scope="module")
def engine(engine: Engine) -> Engine:
    """The session's CPU model (conftest.py), warmed up."""
    # Warm-up: a process's first backward pass costs ~1 s once (autograd set-up); the cancel
    # tests measure the steady state (a fresh server pays it once per launch).
    analogy(example("a.jpg", 48, 48), example("b_prime.png", 48, 48), AnalogyParams(size=32, preset="fast"),
            engine=engine)
    return engine


@lru_cache(maxsize=8)
def example(name: str, width: int, height: int) -> np.ndarray:
    with Image.open(EXAMPLES / name) as image:
        array = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    array.setflags(write=False)
    return array


# ------------------------------------------------------------------------- results and progress


def test_results_and_progress(engine: Engine) -> None:
    a, b_prime = example("a.jpg", 96, 64), example("b_prime.png", 80, 120)  # different shapes
    calls: list[tuple[float, str]] = []
    result = analogy(
        a, b_prime, AnalogyParams(size=64, preset="fast"), progress=lambda f, s: calls.append((f, s)),
        engine=engine,
    )
    assert result.a_prime.shape == a.shape and result.b.shape == b_prime.shape
    assert result.a_prime.dtype == np.uint8 and result.b.dtype == np.uint8
    assert result.flow_ab.shape == (64, 96, 2) and result.flow_ba.shape == (120, 80, 2)
    assert result.flow_ab.dtype == np.float32 and result.flow_ba.dtype == np.float32
    assert result.flow_ab[..., 0].max() <= 80 - 0.5 and result.flow_ab[..., 1].max() <= 120 - 0.5
    assert result.flow_ba[..., 0].max() <= 96 - 0.5 and result.flow_ba[..., 1].max() <= 64 - 0.5
    assert min(result.flow_ab.min(), result.flow_ba.min()) >= -0.5
    for confidence, shape in ((result.confidence_a_prime, (64, 96)), (result.confidence_b, (120, 80))):
        assert confidence.shape == shape and confidence.dtype == np.float32
        assert confidence.min() >= 0 and confidence.max() <= 1
    assert result.report["working_size"] == {"a": [64, 48], "b_prime": [48, 64]}  # (w, h), ×16
    assert not np.shares_memory(result.a_prime, a)

    fractions = [f for f, _ in calls]
    assert len(calls) >= 10
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(later >= earlier for earlier, later in zip(fractions, fractions[1:], strict=False))
    assert calls[-1] == (1.0, "done")
    assert fractions.count(1.0) <= 2  # 1.0 only at the very end
    stages = {s for _, s in calls}
    for word in ("features", "matching level 5", "matching level 1", "inverting", "reconstructing"):
        assert any(word in s for s in stages), f"no stage with {word!r} in {sorted(stages)}"
    # The bar moves at an even-ish pace: no single step jumps over half of it.
    assert max(b - a for a, b in zip(fractions, fractions[1:], strict=False)) < 0.5


def test_same_seed_same_result(engine: Engine) -> None:
    a, b_prime = example("a.jpg", 64, 64), example("b_prime.png", 64, 64)
    params = AnalogyParams(size=48, preset="fast", seed=7)
    first = analogy(a, b_prime, params, engine=engine)
    second = analogy(a, b_prime, params, engine=engine)
    for name in ("a_prime", "b", "flow_ab", "flow_ba", "confidence_a_prime", "confidence_b"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name


# ------------------------------------------------------------------------------- cancellation


def _cancel_after(
    trigger: float | str, a: np.ndarray, b_prime: np.ndarray, params: AnalogyParams, engine: Engine
) -> tuple[float, float]:
    """Run with a cancel() that turns True `trigger` seconds after the start (a float) or once a
    stage whose text starts with `trigger` has been reported (a str), as a user pressing Cancel.

    Returns (seconds from the start to that moment, seconds from that moment to Cancelled): the
    second is the latency the user sees, whenever cancel() happens to be polled.
    """
    started = time.perf_counter()
    due: dict[str, float] = {}
    if isinstance(trigger, float):
        due["at"] = started + trigger

    def progress(_fraction: float, stage: str) -> None:
        if isinstance(trigger, str) and stage.startswith(trigger) and "at" not in due:
            due["at"] = time.perf_counter()

    def cancel() -> bool:
        return "at" in due and time.perf_counter() >= due["at"]

    with pytest.raises(Cancelled):
        analogy(a, b_prime, params, progress=progress, cancel=cancel, engine=engine)
    ended = time.perf_counter()
    assert "at" in due, "the trigger never came"
    print(f"cancel at {due['at'] - started:.2f} s ({trigger!r}): stopped {ended - due['at']:.2f} s later")
    return due["at"] - started, ended - due["at"]


def test_cancel_stops_within_about_a_second(engine: Engine) -> None:
    # faithful at 160: minutes of work on this CPU, so the cancel lands mid-run.
    a, b_prime = example("a.jpg", 160, 160), example("b_prime.png", 160, 160)
    params = AnalogyParams(size=160, preset="faithful")
    _, latency = _cancel_after(0.5, a, b_prime, params, engine)
    assert latency < CANCEL_LATENCY_S, f"analogy ran on {latency:.2f} s after cancel() said True"


def test_cancel_during_inversion(engine: Engine) -> None:
    a, b_prime = example("a.jpg", 160, 160), example("b_prime.png", 160, 160)
    params = AnalogyParams(size=160, preset="faithful")
    _, latency = _cancel_after("inverting level 5", a, b_prime, params, engine)
    assert latency < CANCEL_LATENCY_S, f"analogy ran on {latency:.2f} s after cancel() said True"


def test_cancel_during_full_resolution_reconstruction(engine: Engine) -> None:
    a, b_prime = example("a.jpg", 1200, 800), example("b_prime.png", 1200, 800)
    params = AnalogyParams(size=48, preset="fast", mode="photo-to-photo")
    _, latency = _cancel_after("reconstructing", a, b_prime, params, engine)
    assert latency < CANCEL_LATENCY_S, f"analogy ran on {latency:.2f} s after cancel() said True"


def test_cancel_before_start_computes_nothing(engine: Engine) -> None:
    a, b_prime = example("a.jpg", 64, 64), example("b_prime.png", 64, 64)
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        analogy(a, b_prime, AnalogyParams(size=64, preset="faithful"), cancel=lambda: True, engine=engine)
    assert time.perf_counter() - started < 0.5


# ------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "image, word",
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64), np.uint8), "shape"),
        (np.zeros((64, 64, 4), np.uint8), "shape"),
        (np.zeros((4, 64, 3), np.uint8), "at least"),
    ],
)
def test_unusable_images_raise_input_error(image: np.ndarray, word: str, engine: Engine) -> None:
    with pytest.raises(InputError, match=word):
        analogy(image, example("b_prime.png", 64, 64), AnalogyParams(size=64), engine=engine)
    with pytest.raises(InputError, match=word):
        analogy(example("a.jpg", 64, 64), image, AnalogyParams(size=64), engine=engine)


# ------------------------------------------------------------------------- params validation


BAD_PARAMS = [
    ("mode", "photo-to-nothing"),
    ("mode", None),
    ("preset", "ultra"),
    ("size", 5),
    ("size", 31),
    ("size", 4096),
    ("size", 100.0),
    ("size", True),
    ("size", "128"),
    ("device", "tpu"),
    ("seed", -1),
    ("seed", 2**31),
    ("seed", 1.5),
    ("seed", "1"),
    ("weight", 0),
    ("weight", 4),
    ("weight", 2.0),
    ("ratio", 0.05),
    ("ratio", 1.5),
    ("ratio", math.nan),
    ("ratio", math.inf),
    ("ratio", True),
    ("ratio", "0.5"),
    ("refine", "yes"),
    ("refine", 1),
]


@pytest.mark.parametrize("field, value", BAD_PARAMS)
def test_bad_params_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ParamsError, match=field):
        AnalogyParams(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match=field):
        AnalogyParams.from_dict({field: value})


def test_good_params_round_trip() -> None:
    params = AnalogyParams(mode="style-to-photo", preset="fast", size=32, device="cpu", seed=2**31 - 1,
                           weight=1, ratio=0.1, refine=True)
    assert AnalogyParams.from_dict(params.to_dict()) == params
    assert AnalogyParams.from_dict({}) == AnalogyParams()
    assert AnalogyParams(ratio=1).ratio == 1  # an integer is a number


def test_from_dict_rejects_unknown_keys_and_non_objects() -> None:
    with pytest.raises(ParamsError, match="colour"):
        AnalogyParams.from_dict({"mode": "photo-to-style", "colour": "red"})
    for data in ([], "size=64", None, 3):
        with pytest.raises(ParamsError):
            AnalogyParams.from_dict(data)  # type: ignore[arg-type]


def test_schema_matches_validation() -> None:
    schema = AnalogyParams.schema()
    assert set(schema) == set(AnalogyParams().to_dict())
    for mode in schema["mode"]["choices"]:
        AnalogyParams(mode=mode)
    for size in (schema["size"]["min"], schema["size"]["max"]):
        AnalogyParams(size=size)
    for size in (schema["size"]["min"] - 1, schema["size"]["max"] + 1):
        with pytest.raises(ParamsError):
            AnalogyParams(size=size)


def test_one_definition_drives_validation_schema_and_cli() -> None:
    """Each AnalogyParams field's Option makes its CLI flag, its schema entry and its check."""
    from analogy_engine.cli import build_parser, params_from

    options = AnalogyParams.options()
    parser = build_parser()
    flags = {a.dest: a for a in parser._actions if a.option_strings}
    defaults = params_from(parser.parse_args(["a.png", "b.png", "--out", "o"]))
    assert defaults == AnalogyParams()
    json_schema = AnalogyParams.json_schema()
    for name, (option, default) in options.items():
        assert name in flags, name
        assert json_schema["properties"][name]["description"] == option.help
        assert AnalogyParams.schema()[name]["default"] == default
        if option.choices:
            assert tuple(flags[name].choices) == option.choices
            bad = "nonsense" if option.kind is str else 99
            with pytest.raises(ParamsError, match=f"^{name} must be"):
                AnalogyParams(**{name: bad})
    set_all = params_from(parser.parse_args(["a.png", "b.png", "--out", "o", "--mode", "style-to-photo",
                                             "--size", "64", "--weight", "2", "--ratio", "0.5", "--no-refine",
                                             "--seed", "7", "--preset", "fast", "--device", "cpu"]))
    assert set_all == AnalogyParams(mode="style-to-photo", size=64, weight=2, ratio=0.5, refine=False,
                                    seed=7, preset="fast", device="cpu")


# ------------------------------------------------------------------------------ public names


def test_every_public_name_resolves() -> None:
    """Each name in __all__ loads lazily from its module; to_rgb8 is what server/images.py
    decodes uploaded PNGs with, so it must stay public."""
    import analogy_engine
    from analogy_engine import imageio

    for name in analogy_engine.__all__:
        assert getattr(analogy_engine, name) is not None, name
    assert analogy_engine.to_rgb8 is imageio.to_rgb8
    grey16 = Image.fromarray(np.full((3, 4), 65535, np.uint16))
    assert analogy_engine.to_rgb8(grey16).tolist() == np.full((3, 4, 3), 255, np.uint8).tolist()


@pytest.mark.parametrize("preset", ["balanced", "fast"])
def test_flat_pair_is_not_an_internal_error(preset: str, engine: Engine) -> None:
    """Found by the API fuzz: two flat white images gave features whose second moment has rank
    one; torch.linalg.eigh did not converge in the principal-component projection and the job
    ended in an internal error. A flat pair has a flat analogy."""
    white = np.full((64, 64, 3), 255, np.uint8)
    result = analogy(white, white.copy(), AnalogyParams(size=32, preset=preset), engine=engine)
    assert (result.a_prime == 255).all() and (result.b == 255).all()
