"""The plug-in's options follow the engine: nicks and limits from the shared contract module,
the procedure's arguments from one table (dia_options.ARGUMENTS)."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from analogy_engine import contract, params

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "gimp_plugin" / "deep_image_analogy"
sys.path.insert(0, str(PLUGIN_DIR))
import dia_options as opts  # noqa: E402


def test_plugin_contract_is_the_engines_file() -> None:
    """One file, not a copy: in the checkout the plug-in's dia_contract.py is a link to it."""
    link = PLUGIN_DIR / "dia_contract.py"
    assert link.is_symlink()
    assert link.resolve() == REPO / "analogy_engine" / "contract.py"


def test_contract_needs_only_the_standard_library(tmp_path: Path) -> None:
    """GIMP's Python has no numpy or torch, and the file is imported alone beside the plug-in."""
    source = (REPO / "analogy_engine" / "contract.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import breaks the copy beside the plug-in"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in sys.stdlib_module_names | {"__future__"}, name
    (tmp_path / "dia_contract.py").write_text(source, encoding="utf-8")
    check = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import dia_contract as c; "
             "assert c.MODES and 'numpy' not in sys.modules; "
             "print(c.runtime_file_path({'DIA_RUNTIME_FILE': '/x/engine.json'}))")
    out = subprocess.run([sys.executable, "-I", "-c", check], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "/x/engine.json"


def test_choices_follow_the_contract() -> None:
    assert opts.nicks(opts.MODE_CHOICES) == contract.MODES == params.MODES
    assert opts.nicks(opts.PRESET_CHOICES) == contract.PRESET_NAMES == tuple(params.PRESETS)
    assert opts.nicks(opts.DEVICE_CHOICES) == contract.DEVICES


def test_defaults_equal_params() -> None:
    default = params.AnalogyParams()
    o = opts.Options()
    assert (o.mode, o.preset, o.device) == (default.mode, default.preset, default.device)
    assert o.engine_params()["size"] is default.size is None


@pytest.mark.parametrize("size", [0, 1, 31, 32, 64, 700, 2048])
@pytest.mark.parametrize("mode", params.MODES)
def test_engine_params_are_valid(size: int, mode: str) -> None:
    for preset in params.PRESET_NAMES:
        for device in params.DEVICES:
            sent = opts.Options(mode=mode, preset=preset, size=size, device=device).engine_params()
            parsed = params.AnalogyParams.from_dict(sent)  # raises ParamsError when invalid
            assert parsed.size == (None if size == 0 else max(params.MIN_SIZE, size))


PROCEDURES = {"analogy": opts.ARGUMENTS, "animation": opts.ANIMATION_ARGUMENTS}


def test_arguments_make_the_options() -> None:
    """Every Options field is an argument of a procedure (and back), each default is one of its
    choices."""
    fields = {f.name.replace("_", "-") for f in dataclasses.fields(opts.Options)}
    declared = set(opts.option_arguments(opts.ARGUMENTS) + opts.option_arguments(opts.ANIMATION_ARGUMENTS))
    assert declared == fields
    assert opts.OPTION_ARGUMENTS == opts.option_arguments(opts.ARGUMENTS)
    for arguments in PROCEDURES.values():
        assert len({arg.name for arg in arguments}) == len(arguments)
        for arg in arguments:
            assert arg.kind in ("choice", "int", "boolean", "string", "layer", "channel"), arg
            if arg.kind == "choice":
                assert arg.default in opts.nicks(arg.choices), arg
            if arg.kind == "int":
                assert arg.low <= arg.default <= arg.high, arg
    size = next(arg for arg in opts.ARGUMENTS if arg.name == "size")
    assert (size.low, size.high) == (opts.AUTO_SIZE, contract.MAX_SIZE)
    # Painting is for the pair procedure, frame coherence for the animation one.
    assert {"paint-strokes", "paint-brush"} <= {a.name for a in opts.ARGUMENTS}
    assert "independent" not in {a.name for a in opts.ARGUMENTS}
    assert {a.name for a in opts.ANIMATION_ARGUMENTS} == {
        "reference", "mode", "preset", "size", "independent", "device", "engine"}


@pytest.mark.parametrize("procedure", sorted(PROCEDURES))
def test_mnemonics_are_unique_and_avoid_the_buttons(procedure: str) -> None:
    """Each dialog label has one mnemonic, none shared, none of the dialog buttons' (Load, Save,
    Reset, Cancel, OK, Help, and the main dialog's Pre_view: alt+v must press it)."""
    keys = []
    for arg in PROCEDURES[procedure]:
        assert arg.label.count("_") == 1, arg.label
        keys.append(arg.label[arg.label.index("_") + 1].lower())
    assert len(set(keys)) == len(keys), keys
    assert not set(keys) & set("lsrcohv"), keys


def test_painting_follows_the_painter() -> None:
    """Brush nicks, the smallest image and the stroke limit are the painter's own."""
    import inspect

    from analogy_engine import paint

    assert opts.nicks(opts.BRUSH_CHOICES) == tuple(paint.BRUSHES)
    assert opts.PAINT_MIN_SIDE == paint.MIN_SIDE
    assert paint.MIN_STROKES <= 1 and opts.MAX_PAINT_STROKES <= paint.MAX_STROKES
    sent = opts.Options(paint_strokes=50, paint_brush="marker", device="cpu").paint_params()
    assert set(sent) <= set(inspect.signature(paint.paint).parameters)
    assert sent == {"strokes": 50, "brush": "marker", "device": "cpu"}


def test_painting_only_with_a_prime() -> None:
    """The painting is of A′: without A′ among the results there is nothing to paint."""
    assert opts.Options(paint_strokes=10, results="both").want_painting
    assert opts.Options(paint_strokes=10, results="a-prime").want_painting
    assert not opts.Options(paint_strokes=10, results="b").want_painting
    assert not opts.Options(paint_strokes=0).want_painting


def test_animation_params_are_the_analogys_plus_independent() -> None:
    o = opts.Options(mode="style-to-style", preset="fast", size=64, independent=True)
    sent = o.animation_params()
    assert sent.pop("independent") is True
    assert params.AnalogyParams.from_dict(sent).size == 64


def test_guidance_arguments_follow_the_contract() -> None:
    """A reference picker and a region map picker for each reference after B′, up to the limit."""
    names = {a.name for a in opts.ARGUMENTS}
    numbers = range(2, contract.MAX_REFERENCES + 1)
    assert {f"reference-{n}" for n in numbers} | {f"regions-ref-{n}" for n in numbers} <= names
    assert {"regions", "regions-a", "regions-b", "structure", "structure-channel", "mix"} <= names
    extra = next(a for a in opts.ARGUMENTS if a.name == "extra-references")
    assert (extra.low, extra.high) == (0, contract.MAX_REFERENCES - 1)
    assert not {a.name for a in opts.ANIMATION_ARGUMENTS} & {"regions", "structure", "mix"}


@pytest.mark.parametrize("text, count, sent", [
    ("1,1", 2, "1,1"), (" 2 , 0.5 ", 2, "2,0.5"), ("1,.25,0", 3, "1,0.25,0"), ("3", 1, "3"),
])
def test_mix_is_sent_as_the_engine_takes_it(text: str, count: int, sent: str) -> None:
    o = opts.Options(extra_references=count - 1, mix=text)
    got = o.engine_params().get("mix")
    if count == 1:
        assert got is None  # without extra references the mix means nothing and is not sent
        assert opts.parse_mix(text, count) == sent
        return
    assert got == sent
    assert params.AnalogyParams.from_dict(o.engine_params()).mix == sent


@pytest.mark.parametrize("text, count, words", [
    ("1,2,3", 2, "3 weights for 2 references"), ("1", 2, "1 weight for 2"), ("a,b", 2, "not a list"),
    ("-1,2", 2, "not a list"), ("0,0", 2, "weight 0"), ("1e3,1", 2, "not a list"),
])
def test_mix_errors_say_why(text: str, count: int, words: str) -> None:
    with pytest.raises(opts.MixError, match=words):
        opts.parse_mix(text, count)


def test_preview_params_are_fast_and_small() -> None:
    sent = opts.Options(mode="style-to-style", preset="faithful", size=700).preview_params()
    parsed = params.AnalogyParams.from_dict(sent)
    assert (parsed.preset, parsed.size, parsed.mode) == ("fast", opts.PREVIEW_SIZE, "style-to-style")


def test_fallback_switch_reaches_the_engine_only_when_off() -> None:
    """"Minimize blotches" is the engine's `fallback`: on by default on both sides, sent when off."""
    assert opts.Options().fallback is params.AnalogyParams().fallback is True
    assert "fallback" not in opts.Options().engine_params()
    sent = opts.Options(fallback=False).engine_params()
    assert sent["fallback"] is False
    assert params.AnalogyParams.from_dict(sent).fallback is False
    assert "fallback" in {a.name for a in opts.ARGUMENTS}
