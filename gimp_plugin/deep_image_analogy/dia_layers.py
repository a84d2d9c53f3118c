"""GIMP side: which layers are A and B′, their pixels, and the result layers.

Pixels travel as 8-bit sRGB bytes ("R'G'B'A u8"); GEGL converts from and to whatever precision,
colour model and bit depth the image has, so grayscale and high-bit-depth images need no code.
"""

from __future__ import annotations

from dataclasses import dataclass

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from dia_client import RawImage, RawResult  # noqa: E402
from dia_contract import InputSizeError, b_name, check_input_size  # noqa: E402
from dia_options import GROUP_NAME, PAINT_MIN_SIDE, PAINTING_NAME, Options  # noqa: E402
from dia_pixels import preview_scale, scaled_size  # noqa: E402
from dia_strokes import Stage, StrokesError, parse_strokes, path_name, stage_svg  # noqa: E402
from gi.repository import Gegl, Gimp  # noqa: E402

RGBA = "R'G'B'A u8"
RGB = "R'G'B' u8"
# Masks are written as linear "Y": a value v then makes the layer v/255 opaque, like the
# layer's opacity slider (written as "Y'" a mid-gray would give only about 21 %).
MASK = "Y u8"


class PluginError(Exception):
    """Bad input or a changed image, explained for the user."""


@dataclass
class Source:
    """A source layer as it was when the filter started (the user may change it meanwhile)."""

    layer: Gimp.Layer
    name: str
    offsets: tuple[int, int]
    raw: RawImage

    @property
    def alpha(self) -> bytes:
        return self.raw.rgba[3::4]


class Progress:
    """GIMP's progress bar, driven from the main thread (the GIMP API is not thread-safe)."""

    def __init__(self, text: str) -> None:
        Gimp.progress_init(text)

    def __call__(self, fraction: float | None, text: str) -> None:
        Gimp.progress_set_text(text)
        if fraction is None:
            Gimp.progress_pulse()
        else:
            Gimp.progress_update(min(1.0, max(0.0, fraction)))

    def end(self) -> None:
        Gimp.progress_end()


def check_selection(drawables: list[Gimp.Drawable]) -> list[Gimp.Layer]:
    """The selected layers, top first: one or two ordinary layers, else a message."""
    layers = []
    for drawable in drawables:
        if not drawable.is_layer():
            raise PluginError("Select layers, not a layer mask or channel: click the layer's "
                              "thumbnail in the Layers dock, then run the filter again.")
        if drawable.is_group_layer():
            raise PluginError(f"'{drawable.get_name()}' is a layer group. Select ordinary layers "
                              "(merge the group first: Layer ▸ Merge Layer Group).")
        layers.append(drawable)
    if not 1 <= len(layers) <= 2:
        raise PluginError(f"{len(layers) or 'No'} layers are selected: select exactly two layers "
                          "(A and B′), or one layer and choose a reference layer in the dialog. More "
                          "references are chosen in the dialog's More references tab.")
    return layers


def pick_pair(drawables: list[Gimp.Drawable], reference: Gimp.Layer | None,
              options: Options) -> tuple[Gimp.Layer, Gimp.Layer]:
    """(A, B′): two selected layers, or one selected layer and the reference layer."""
    layers = check_selection(drawables)
    if len(layers) == 2:
        pair = (layers[0], layers[1])
    else:
        if reference is None or not reference.is_valid():
            raise PluginError("Only one layer is selected: choose a reference layer in the dialog "
                              "(it may be in another open image), or select two layers "
                              "(Ctrl+click in the Layers dock) and run the filter again.")
        if reference.get_id() == layers[0].get_id():
            raise PluginError("The reference layer is the selected layer itself; choose another one.")
        if not reference.is_layer() or reference.is_group_layer():
            raise PluginError("The reference must be an ordinary layer, not a layer group.")
        pair = (layers[0], reference)
    return pair if options.a_layer == "first" else (pair[1], pair[0])


GROUP_ADVICE = "choose an ordinary layer (or merge the group: Layer ▸ Merge Layer Group)"


def check_layer(layer: Gimp.Layer, what: str, group_advice: str = GROUP_ADVICE) -> None:
    """An ordinary layer of an RGB or grey image; `what` names it in the messages, `group_advice`
    says what to do instead of a layer group."""
    if not layer.is_valid():
        raise PluginError(f"{what} no longer exists; choose it again.")
    if not layer.is_layer() or layer.is_group_layer():
        raise PluginError(f"{what} is a layer group: {group_advice}.")
    if layer.get_image().get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise PluginError(f"{what} is in an indexed image, which is not supported: convert that image "
                          "with Image ▸ Mode ▸ RGB first.")


def read_source(layer: Gimp.Layer, role: str, scale: float = 1.0) -> Source:
    """The layer's pixels; `scale` < 1 reads them scaled down (the dialog's preview)."""
    check_layer(layer, f"Layer {role} '{layer.get_name() if layer.is_valid() else ''}'")
    width, height = layer.get_width(), layer.get_height()
    name = layer.get_name()
    try:
        check_input_size(width, height, f"Layer {role} '{name}'")
    except InputSizeError as error:
        hint = " Scale it down (Layer ▸ Scale Layer)." if error.too_large else ""
        raise PluginError(f"{error}.{hint}") from None
    width, height = scaled_size(width, height, scale)
    rect = Gegl.Rectangle.new(0, 0, width, height)
    rgba = layer.get_buffer().get(rect, min(scale, 1.0), RGBA, Gegl.AbyssPolicy.CLAMP)
    _ok, x, y = layer.get_offsets()
    return Source(layer=layer, name=name, offsets=(x, y), raw=RawImage(width, height, bytes(rgba)))


def read_sources(image: Gimp.Image, drawables: list[Gimp.Drawable], reference: Gimp.Layer | None,
                 options: Options, longest: int | None = None) -> tuple[Source, Source]:
    """A and B′; `longest` reads them scaled down to that longest side (the preview)."""
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise PluginError("Indexed images are not supported: convert with Image ▸ Mode ▸ RGB first.")
    layer_a, layer_b = pick_pair(drawables, reference, options)
    return tuple(read_source(layer, role, scale_for(layer, longest))  # type: ignore[return-value]
                 for layer, role in ((layer_a, "A"), (layer_b, "B′")))


def scale_for(layer: Gimp.Layer, longest: int | None) -> float:
    return 1.0 if longest is None else preview_scale(layer.get_width(), layer.get_height(), longest)


def multiply(values: bytes, alpha: bytes) -> bytes:
    """values × alpha / 255, per pixel; the common case (opaque source) costs nothing."""
    if not alpha.translate(None, b"\xff"):
        return values
    return bytes((v * a + 127) // 255 for v, a in zip(values, alpha, strict=True))


def anchor(image: Gimp.Image, sources: list[Source]) -> tuple[Gimp.Layer | None, int]:
    """Parent and position that put the group right above the uppermost surviving source."""
    for source in sources:  # top first
        layer = source.layer
        if layer.is_valid() and layer.get_image().get_id() == image.get_id():
            return layer.get_parent(), image.get_item_position(layer)
    return None, 0  # every source in this image was deleted meanwhile: top of the stack


def add_result(image: Gimp.Image, group: Gimp.Layer, position: int, name: str, source: Source,
               pixels: RawResult, mask: RawResult | None, limit: bytes | None = None) -> Gimp.Layer:
    """A result layer of the source's size at the source's offsets, with an editable mask
    (times `limit`, one byte a pixel, when given: the selection on A)."""
    if (pixels.width, pixels.height) != (source.raw.width, source.raw.height):
        raise PluginError(f"The engine returned {name} at {pixels.width}×{pixels.height}, not at the "
                          f"source's {source.raw.width}×{source.raw.height}; update the engine.")
    kind = Gimp.ImageType.GRAYA_IMAGE if image.get_base_type() == Gimp.ImageBaseType.GRAY \
        else Gimp.ImageType.RGBA_IMAGE
    width, height = pixels.width, pixels.height
    layer = Gimp.Layer.new(image, name, width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, group, position)
    # Follow the source if the user moved it meanwhile; else where it was.
    x, y = source.layer.get_offsets()[1:] if source.layer.is_valid() else source.offsets
    layer.set_offsets(x, y)
    rect = Gegl.Rectangle.new(0, 0, width, height)
    buffer = layer.get_buffer()
    buffer.set(rect, RGB if pixels.channels == 3 else RGBA, pixels.data)
    buffer.flush()
    visible = mask.data if mask is not None else b"\xff" * (width * height)
    layer_mask = layer.create_mask(Gimp.AddMaskType.WHITE)
    mask_buffer = layer_mask.get_buffer()
    # Transparent parts of the source stay transparent in its result.
    visible = multiply(visible, source.alpha)
    mask_buffer.set(rect, MASK, multiply(visible, limit) if limit is not None else visible)
    mask_buffer.flush()
    layer.add_mask(layer_mask)
    layer.update(0, 0, width, height)
    return layer


def check_paintable(a: Source) -> None:
    """Before any work: the painter needs a bigger A′ than the analogy does."""
    if min(a.raw.width, a.raw.height) < PAINT_MIN_SIDE:
        raise PluginError(f"Layer A '{a.name}' is {a.raw.width}×{a.raw.height} pixels; painting needs "
                          f"at least {PAINT_MIN_SIDE} a side. Set Painting strokes to 0 or use a "
                          "bigger layer.")


def painting_stages(a: Source, results: dict[str, RawResult | str]) -> list[Stage]:
    """The strokes of the painting, checked before anything is added to the image."""
    try:
        width, height, stages = parse_strokes(str(results["strokes"]))
    except StrokesError as err:
        raise PluginError(f"The engine sent unusable strokes: {err}. Update the engine.") from None
    if (width, height) != (a.raw.width, a.raw.height):
        raise PluginError(f"The engine painted {width}×{height} strokes for a {a.raw.width}×"
                          f"{a.raw.height} layer; update the engine.")
    return stages


def add_strokes(image: Gimp.Image, a: Source, stages: list[Stage], created: list[Gimp.Path]) -> None:
    """One path per stage over A's place, appended to `created` as soon as each exists (so that a
    failure half way can remove them all). Users stroke them with GIMP's own brushes."""
    x, y = a.layer.get_offsets()[1:] if a.layer.is_valid() else a.offsets
    for stage in stages:
        text = stage_svg(stage, image.get_width(), image.get_height(), x, y)
        ok, paths = image.import_paths_from_string(text, len(text.encode("utf-8")), True, False)
        created.extend(paths or [])
        if not ok or len(paths) != 1:
            raise PluginError(f"GIMP could not import stage {stage.number} of the strokes as a path.")
        paths[0].set_name(path_name(stage, len(stages)))


def add_results(image: Gimp.Image, a: Source, b_prime: Source, results: dict[str, RawResult | str],
                options: Options, references: list[Source] | None = None,
                limit: bytes | None = None) -> Gimp.Layer:
    """All results in one undo step, in a new group above the sources (and the painting's
    strokes as paths, when there is a painting): A′ on top, then B and the B of each extra
    reference. `limit` (the selection on A, one byte a pixel) limits A′'s mask."""
    if not image.is_valid():
        raise PluginError("The image was closed while the engine worked; the results were dropped.")
    stages = painting_stages(a, results) if "painting" in results else []
    stack = [a, b_prime] if options.a_layer == "first" else [b_prime, a]  # top first
    image.undo_group_start()
    group = Gimp.GroupLayer.new(image, GROUP_NAME)
    paths: list[Gimp.Path] = []
    try:
        parent, position = anchor(image, stack)
        image.insert_layer(group, parent, position)
        # The Bs go in first, last reference first, so that A′ (and its painting) end up on top.
        if options.want_b:
            sources = [b_prime, *(references or [])]
            for number in range(len(sources), 0, -1):
                name = b_name(number)
                add_result(image, group, 0, f"B ({sources[number - 1].name})", sources[number - 1],
                           image_result(results, name), mask_result(results, "mask_" + name))
        if options.want_a_prime:
            add_result(image, group, 0, f"A′ ({a.name})", a, image_result(results, "a_prime"),
                       mask_result(results, "mask_a_prime"), limit)
        if "painting" in results:
            add_result(image, group, 0, f"{PAINTING_NAME} ({a.name})", a,
                       image_result(results, "painting"), mask_result(results, "mask_a_prime"), limit)
            add_strokes(image, a, stages, paths)
    except Exception:
        # All or nothing: a half-built group would look like a result.
        for path in paths:
            if path.is_valid():
                image.remove_path(path)
        if group.is_valid() and group.get_image() is not None:
            image.delete_item(group)
        raise
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    return group


def image_result(results: dict[str, RawResult | str], name: str) -> RawResult:
    result = results[name]
    if not isinstance(result, RawResult):
        raise PluginError(f"The engine sent {name} as text, not as an image; update the engine.")
    return result


def mask_result(results: dict[str, RawResult | str], name: str) -> RawResult | None:
    return image_result(results, name) if name in results else None


def result_names(options: Options, extra_references: int = 0) -> list[str]:
    """What to fetch from the engine: the images (A′, B and the B of each extra reference) and,
    for a confidence mask, their masks."""
    names = []
    if options.want_a_prime:
        names.append("a_prime")
    if options.want_b:
        names += [b_name(number) for number in range(1, 2 + extra_references)]
    if options.mask == "confidence":
        names += ["mask_" + name for name in names]
    return names
