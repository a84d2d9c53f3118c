#!/usr/bin/env python3
"""Deep Image Analogy for GIMP 3: two layers in, A′ and B out as editable layers.

The heavy lifting happens in a local engine process (server/ of this project) that the plug-in
talks to over HTTP; see dia_client.py. GIMP 3.0 and 3.2.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
import dia_client  # noqa: E402
import dia_layers  # noqa: E402
import dia_options as opts  # noqa: E402
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402


def choice(options: tuple[opts.Choice, ...]) -> Gimp.Choice:
    result = Gimp.Choice.new()
    for index, (nick, label, help_text) in enumerate(options):
        result.add(nick, index, label, help_text)
    return result


def declare(procedure: Gimp.Procedure, arg: opts.Argument) -> None:
    rw = GObject.ParamFlags.READWRITE
    if arg.kind == "choice":
        procedure.add_choice_argument(arg.name, arg.label, arg.blurb, choice(arg.choices), arg.default, rw)
    elif arg.kind == "int":
        procedure.add_int_argument(arg.name, arg.label, arg.blurb, arg.low, arg.high, arg.default, rw)
    elif arg.kind == "string":
        procedure.add_string_argument(arg.name, arg.label, arg.blurb, arg.default, rw)
    elif arg.kind == "layer":
        procedure.add_layer_argument(arg.name, arg.label, arg.blurb, True, rw)
    else:
        raise ValueError(f"unknown argument kind {arg.kind!r}")


def options_from(config: Gimp.ProcedureConfig) -> opts.Options:
    values = {name.replace("-", "_"): config.get_property(name) for name in opts.OPTION_ARGUMENTS}
    values["engine"] = values["engine"] or ""  # an empty string argument arrives as None
    return opts.Options(**values)


def failure(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


class DeepImageAnalogy(Gimp.PlugIn):
    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_query_procedures(self) -> list[str]:
        return [opts.PROCEDURE_NAME]

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES)
        procedure.set_menu_label("Deep Image _Analogy…")
        procedure.add_menu_path("<Image>/Filters/Map")
        procedure.set_documentation(
            "Transfer the look between two layers with Deep Image Analogy",
            "Select two layers, A and B′ (or one layer plus a reference layer). A′ gets A's content "
            "with B′'s look, B gets B′'s content with A's look (Liao et al. 2017). The results land "
            "in a new layer group, each with an editable layer mask. Runs in a local engine process "
            "that the plug-in starts when needed.",
            name)
        procedure.set_attribution("Deep Image Analogy for GIMP contributors", "MIT", "2025")
        for arg in opts.ARGUMENTS:
            declare(procedure, arg)
        return procedure

    def run(self, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
            drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
        Gegl.init(None)
        try:
            dia_layers.check_selection(drawables)  # before the dialog, not after the user's choices
            if run_mode == Gimp.RunMode.INTERACTIVE:
                import dia_ui  # GTK only when there is a dialog to show

                if not dia_ui.ask_options(procedure, config, drawables):
                    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            job = analogy(image, drawables, config)
        except (dia_client.EngineError, dia_layers.PluginError) as err:
            return failure(procedure, f"Deep Image Analogy: {err}")
        except Exception as err:  # a bug: still say what happened instead of GIMP's generic text
            return failure(procedure, f"Deep Image Analogy failed unexpectedly: {err!r}. Nothing was "
                           "changed; please report this message.")
        if job.get("degraded"):
            Gimp.message(f"Deep Image Analogy: the engine had to adapt the job: {job['degraded']}")
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


def analogy(image: Gimp.Image, drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig) -> dict:
    """Sources → engine → result layers; the image changes only once every result is here."""
    progress = dia_layers.Progress("Deep Image Analogy")
    try:
        options = options_from(config)
        a, b_prime = dia_layers.read_sources(image, drawables, config.get_property("reference"), options)
        engine = dia_client.connect(options.engine, notify=progress)
        results, job = dia_client.run_job(engine, a.raw, b_prime.raw, options.engine_params(),
                                          dia_layers.result_names(options), notify=progress)
        dia_layers.add_results(image, a, b_prime, results, options)
        return job
    finally:
        progress.end()


Gimp.main(DeepImageAnalogy.__gtype__, sys.argv)
