#!/usr/bin/env python3
"""Deep Image Analogy for GIMP 3: two layers in, A′ and B out as editable layers (optionally A′
painted with brush strokes, the strokes as paths); and an animation's frames in, a new image of
stylised frames out.

The heavy lifting happens in a local engine process (server/ of this project) that the plug-in
talks to over HTTP; see dia_client.py. GIMP 3.0 and 3.2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
import dia_animation  # noqa: E402
import dia_client  # noqa: E402
import dia_guide  # noqa: E402
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
    elif arg.kind == "boolean":
        procedure.add_boolean_argument(arg.name, arg.label, arg.blurb, arg.default, rw)
    elif arg.kind == "string":
        procedure.add_string_argument(arg.name, arg.label, arg.blurb, arg.default, rw)
    elif arg.kind == "layer":
        procedure.add_layer_argument(arg.name, arg.label, arg.blurb, True, rw)
    elif arg.kind == "channel":
        procedure.add_channel_argument(arg.name, arg.label, arg.blurb, True, rw)
    else:
        raise ValueError(f"unknown argument kind {arg.kind!r}")


def failure(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


def guarded(procedure: Gimp.Procedure, work: Callable[[], Gimp.ValueArray]) -> Gimp.ValueArray:
    """`work()`, with every failure turned into an execution error whose message says what to do."""
    Gegl.init(None)
    try:
        return work()
    except (dia_client.EngineError, dia_layers.PluginError) as err:
        return failure(procedure, f"Deep Image Analogy: {err}")
    except Exception as err:  # a bug: still say what happened instead of GIMP's generic text
        return failure(procedure, f"Deep Image Analogy failed unexpectedly: {err!r}. Nothing was "
                       "changed; please report this message.")


def tell(notes: list[str | None]) -> None:
    """The engine's `degraded` notes (it had to shrink the working size or use the CPU)."""
    for note in notes:
        if note:
            Gimp.message(f"Deep Image Analogy: the engine had to adapt the job: {note}")


class DeepImageAnalogy(Gimp.PlugIn):
    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_query_procedures(self) -> list[str]:
        return [opts.PROCEDURE_NAME, opts.ANIMATION_PROCEDURE_NAME]

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        if name == opts.ANIMATION_PROCEDURE_NAME:
            return self.animation_procedure(name)
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
            "in a new layer group, each with an editable layer mask; with Painting strokes, A′ is "
            "also painted with brush strokes: a Painting layer plus the strokes as paths. Runs in a "
            "local engine process that the plug-in starts when needed.",
            name)
        procedure.set_attribution("Deep Image Analogy for GIMP contributors", "MIT", "2025")
        for arg in opts.ARGUMENTS:
            declare(procedure, arg)
        return procedure

    def animation_procedure(self, name: str) -> Gimp.Procedure:
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run_animation, None)
        procedure.set_image_types("RGB*, GRAY*")
        # The frames are all the image's layers, whatever is selected.
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES)
        procedure.set_menu_label("Deep Image _Analogy…")
        procedure.add_menu_path("<Image>/Filters/Animation")
        procedure.set_documentation(
            "Give every frame of an animation a reference layer's look, without flicker",
            "The image's top-level layers are the frames (bottom layer = first frame). Each frame "
            "gets the reference layer's look (any open image; a layer of this image used as the "
            "reference is not a frame), temporally coherent so that the result does not flicker. "
            "The stylised frames land in a new image with the frames' names (and so their "
            "timings) and order.",
            name)
        procedure.set_attribution("Deep Image Analogy for GIMP contributors", "MIT", "2025")
        for arg in opts.ANIMATION_ARGUMENTS:
            declare(procedure, arg)
        procedure.add_image_return_value("new-image", "New image", "The stylised animation", False,
                                         GObject.ParamFlags.READWRITE)
        return procedure

    def run(self, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
            drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
        def work() -> Gimp.ValueArray:
            dia_layers.check_selection(drawables)  # before the dialog, not after the user's choices
            if run_mode == Gimp.RunMode.INTERACTIVE:
                import dia_ui  # GTK only when there is a dialog to show

                if not dia_ui.ask_options(procedure, config, image, drawables):
                    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            tell(analogy(image, drawables, config))
            return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)

        return guarded(procedure, work)

    def run_animation(self, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
                      drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig,
                      data: object) -> Gimp.ValueArray:
        def work() -> Gimp.ValueArray:
            frames = dia_animation.frame_layers(image, None)  # before the dialog: enough frames?
            if run_mode == Gimp.RunMode.INTERACTIVE:
                import dia_ui

                if not dia_ui.ask_animation_options(procedure, config, image, len(frames)):
                    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
            new, notes = animation(image, config)
            if run_mode != Gimp.RunMode.NONINTERACTIVE:  # also Filters ▸ Repeat (last values)
                Gimp.Display.new(new)
                Gimp.displays_flush()
            tell(notes)
            return Gimp.ValueArray.new_from_values([
                GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
                GObject.Value(Gimp.Image, new),
            ])

        return guarded(procedure, work)


def analogy(image: Gimp.Image, drawables: list[Gimp.Drawable],
            config: Gimp.ProcedureConfig) -> list[str | None]:
    """Sources → engine (analogy, then the painting of A′) → result layers; the image changes only
    once every result is here. Returns the engine's notes."""
    progress = dia_layers.Progress("Deep Image Analogy")
    try:
        options = opts.options_from(config)
        a, b_prime = dia_layers.read_sources(image, drawables, config.get_property("reference"), options)
        guide = dia_guide.gather(config, options, a, b_prime)  # every input checked before any job
        if options.want_painting:
            dia_layers.check_paintable(a)
        engine = dia_client.connect(options.engine, notify=progress)
        # One bar for both jobs: the painting's share is roughly its share of the time.
        share = opts.ANALOGY_SHARE if options.want_painting else 1.0
        job = dia_client.analogy_job(a.raw, b_prime.raw, options.engine_params(),
                                     dia_layers.result_names(options, len(guide.references)), guide.parts)
        try:
            results, info = dia_client.run_job(engine, job, notify=dia_client.within(progress, 0.0, share))
        except dia_client.EngineError as err:  # name the layers where the engine names the maps
            raise dia_client.EngineError(guide.explain(str(err))) from None
        notes = [info.get("degraded")]
        if options.want_painting:
            a_prime = dia_layers.image_result(results, "a_prime")
            paint = dia_client.paint_job(a_prime.image(), options.paint_params())
            painted, info = dia_client.run_job(engine, paint, notify=dia_client.within(progress, share, 1.0))
            results.update(painted)
            notes.append(info.get("degraded"))
        dia_layers.add_results(image, a, b_prime, results, options, guide.references, guide.limit)
        return notes
    finally:
        progress.end()


def animation(image: Gimp.Image, config: Gimp.ProcedureConfig) -> tuple[Gimp.Image, list[str | None]]:
    """Frames + reference → engine → a new image; the source image is only read."""
    progress = dia_layers.Progress("Deep Image Analogy: animation")
    try:
        options = opts.options_from(config, opts.ANIMATION_ARGUMENTS)
        reference = dia_animation.check_reference(config.get_property("reference"))
        frames = dia_animation.read_frames(image, reference)
        b_prime = dia_layers.read_source(reference, "B′ (the reference)")
        engine = dia_client.connect(options.engine, notify=progress)
        job = dia_client.animate_job(b_prime.raw, [frame.raw for frame in frames], options.animation_params())
        results, info = dia_client.run_job(engine, job, notify=progress)
        return dia_animation.new_animation(image, frames, results), [info.get("degraded")]
    finally:
        progress.end()


Gimp.main(DeepImageAnalogy.__gtype__, sys.argv)
