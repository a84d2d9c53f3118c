"""The plug-in's choices follow analogy_engine.params (the one typed definition of options)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from analogy_engine import params

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "gimp_plugin" / "deep_image_analogy"
sys.path.insert(0, str(PLUGIN_DIR))
import dia_options as opts  # noqa: E402


def test_choices_equal_params() -> None:
    assert opts.nicks(opts.MODE_CHOICES) == params.MODES
    assert opts.nicks(opts.PRESET_CHOICES) == params.PRESET_NAMES
    assert opts.nicks(opts.DEVICE_CHOICES) == params.DEVICES


def test_limits_equal_params() -> None:
    assert (opts.MIN_SIZE, opts.MAX_SIZE) == (params.MIN_SIZE, params.MAX_SIZE)
    assert opts.MIN_INPUT_SIDE == params.MIN_INPUT_SIDE
    assert opts.MAX_INPUT_PIXELS == params.MAX_INPUT_PIXELS


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


def test_dialog_arguments_use_these_choices_and_defaults() -> None:
    """The procedure declares its choices from dia_options, with defaults that exist."""
    tree = ast.parse((PLUGIN_DIR / "deep_image_analogy.py").read_text(encoding="utf-8"))
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_choice_argument":
            name = node.args[0].value
            source = node.args[3].args[0].attr  # choice(opts.X_CHOICES)
            default = node.args[4].value
            declared[name] = (source, default)
    assert declared == {
        "a-layer": ("A_LAYER_CHOICES", "first"),
        "mode": ("MODE_CHOICES", params.AnalogyParams().mode),
        "preset": ("PRESET_CHOICES", params.AnalogyParams().preset),
        "results": ("RESULT_CHOICES", "both"),
        "mask": ("MASK_CHOICES", "white"),
        "device": ("DEVICE_CHOICES", params.AnalogyParams().device),
    }
    for source, default in declared.values():
        assert default in opts.nicks(getattr(opts, source))


def test_mnemonics_are_unique_and_avoid_the_buttons() -> None:
    """Each dialog label has one mnemonic, none shared, none of Reset/Cancel/OK/Help's."""
    tree = ast.parse((PLUGIN_DIR / "deep_image_analogy.py").read_text(encoding="utf-8"))
    labels = [node.args[1].value for node in ast.walk(tree)
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "").startswith("add_")
              and getattr(node.func, "attr", "").endswith("_argument")]
    keys = []
    for label in labels:
        assert label.count("_") == 1, label
        keys.append(label[label.index("_") + 1].lower())
    assert len(set(keys)) == len(keys), keys
    assert not set(keys) & set("rcoh"), keys
