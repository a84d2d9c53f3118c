"""The options dialog (GimpUi.ProcedureDialog over the procedure's arguments)."""

from __future__ import annotations

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from dia_options import ANIMATION_PROCEDURE_NAME, EXTRA_REFERENCES, PROCEDURE_NAME  # noqa: E402
from dia_preview import Preview  # noqa: E402
from gi.repository import Gimp, GimpUi, Gtk  # noqa: E402


def describe_roles(drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig) -> str:
    """Which layer will be A and which B′, in words, for the label above the options."""
    names = [d.get_name() for d in drawables if d.is_valid()]
    reference = config.get_property("reference")
    if len(names) == 1:
        names.append(reference.get_name() if reference is not None and reference.is_valid() else None)
    if len(names) != 2:
        return "Select two layers, or one layer and a reference layer."
    first, second = names
    if config.get_property("a-layer") == "second":
        first, second = second, first
    show = [f"“{n}”" if n is not None else "(choose a reference layer)" for n in (first, second)]
    return f"A (content): {show[0]}\nB′ (look): {show[1]}"


def ask_options(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, image: Gimp.Image,
                drawables: list[Gimp.Drawable]) -> bool:
    """Show the dialog; True when the user pressed OK. GIMP remembers the values."""
    GimpUi.init(PROCEDURE_NAME)
    for name in ("engine", "mix"):  # an empty string argument arrives as None
        if config.get_property(name) is None:
            config.set_property(name, "")  # and GtkEntry complains about None
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config, title="Deep Image Analogy")
    roles = dialog.get_label("roles", describe_roles(drawables, config), False, False)
    roles.set_xalign(0.0)

    def update(*_args: object) -> None:
        roles.set_text(describe_roles(drawables, config))

    config.connect("notify::a-layer", update)
    config.connect("notify::reference", update)

    # GIMP 3.2 shows choices of two or three items as radio buttons, whose items would each need
    # a mnemonic; combo boxes keep the dialog compact and the same in 3.0 and 3.2.
    for name in ("a-layer", "mode", "preset", "results", "mask", "paint-brush", "device", "structure"):
        dialog.get_widget(name, Gtk.ComboBox.__gtype__)
    frame(dialog, "paint", "Painting (of A′)", ["paint-strokes", "paint-brush"])
    frame(dialog, "engine", "Engine", ["device", "engine"])
    # The reference chooser only matters when a single layer is selected.
    layers = ["a-layer"] if len(drawables) >= 2 else ["reference", "a-layer"]
    pages = {
        "options": ("Options", ["roles", *layers, "mode", "preset", "size", "results", "mask",
                                "fallback", "paint-frame", "engine-frame"]),
        "guidance": ("Guidance", ["regions", "regions-a", "regions-b", "structure", "structure-channel"]),
        "references": ("More references", ["extra-references", *(
            name for n in EXTRA_REFERENCES for name in (f"reference-{n}", f"regions-ref-{n}")), "mix"]),
    }
    for key, (title, names) in pages.items():
        dialog.get_label(f"{key}-tab", title, False, False)
        dialog.fill_box(f"{key}-page", names)
    # The region map choosers only matter with region maps on.
    for name in ("regions-a", "regions-b", *(f"regions-ref-{n}" for n in EXTRA_REFERENCES)):
        dialog.set_sensitive(name, True, config, "regions", False)
    tabs = dialog.fill_notebook("tabs", [f"{key}-tab" for key in pages], [f"{key}-page" for key in pages])
    dialog.fill(["tabs"])
    preview = Preview(image, drawables, config)
    beside(tabs, preview.widget)
    ok = dialog.run()
    preview.stop()
    dialog.destroy()
    return bool(ok)


def beside(widget: Gtk.Widget, other: Gtk.Widget) -> None:
    """`other` to the right of `widget` (the dialog stays low enough for small screens)."""
    parent = widget.get_parent()
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
    parent.remove(widget)
    row.pack_start(widget, True, True, 0)
    row.pack_start(other, False, False, 0)
    parent.pack_start(row, True, True, 0)
    row.show_all()


def frame(dialog: GimpUi.ProcedureDialog, key: str, title: str, names: list[str]) -> None:
    """A titled frame `KEY-frame` around the arguments `names`."""
    dialog.get_label(f"{key}-title", title, False, False)
    dialog.fill_box(f"{key}-box", names)
    dialog.fill_frame(f"{key}-frame", f"{key}-title", False, f"{key}-box")


def describe_frames(image: Gimp.Image, config: Gimp.ProcedureConfig, count: int) -> str:
    """What will happen, in words: how many frames, and which layer gives the look."""
    reference = config.get_property("reference")
    if reference is not None and reference.is_valid():
        if reference.get_image().get_id() == image.get_id() and reference.get_parent() is None:
            count -= 1  # a layer of this image used as the reference is not a frame
        look = f"“{reference.get_name()}”"
    else:
        look = "(choose a reference layer)"
    return (f"Frames: the image's {count} top-level layers, bottom layer first\nLook (B′): {look}\n"
            "The stylised frames open as a new image.")


def ask_animation_options(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, image: Gimp.Image,
                          count: int) -> bool:
    """The animation procedure's dialog; True when the user pressed OK."""
    GimpUi.init(ANIMATION_PROCEDURE_NAME)
    if config.get_property("engine") is None:
        config.set_property("engine", "")
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config,
                                    title="Deep Image Analogy: animation")
    about = dialog.get_label("about", describe_frames(image, config, count), False, False)
    about.set_xalign(0.0)
    config.connect("notify::reference", lambda *_args: about.set_text(describe_frames(image, config, count)))
    for name in ("mode", "preset", "device"):
        dialog.get_widget(name, Gtk.ComboBox.__gtype__)
    frame(dialog, "engine", "Engine", ["device", "engine"])
    dialog.fill(["about", "reference", "mode", "preset", "size", "independent", "engine-frame"])
    ok = dialog.run()
    dialog.destroy()
    return bool(ok)
