"""GIMP side of guidance (docs/guidance.md): more references, region maps and the structure mask
read from layers, channels and the selection — every one checked before any job, with a message
that names the layer and says why — and the selection on A that limits A′'s mask.

Each guidance image travels as one more image part of the analogy job (dia_contract's
reference_part, regions_ref_part, GUIDE_PARTS), as raw RGBA at its image's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from dia_contract import reference_part, regions_ref_part  # noqa: E402
from dia_http import RawImage  # noqa: E402
from dia_layers import PluginError, Source, check_layer, read_source, scale_for  # noqa: E402
from dia_options import MixError, Options, parse_mix  # noqa: E402
from dia_pixels import grey_rgba, invert, nearest, opaque  # noqa: E402
from gi.repository import Gegl, Gimp  # noqa: E402

# A region map's colours, transparent pixels black: read premultiplied, an erased (transparent)
# part of a painted layer is no region's colour any more, whatever colour it kept.
REGION_FORMAT = "R'aG'aB'aA u8"
GREY = "Y u8"  # a mask's strength, as GIMP applies layer masks (see dia_layers.MASK)


@dataclass
class Guide:
    """A job's guidance, read and checked: the extra references (as sources, for their B), the
    job's extra image parts, the selection on A (one byte a pixel at A's size, or None) and, for
    the engine's messages, how they name each map → the map's role and layer (most precise first)."""

    references: list[Source] = field(default_factory=list)
    parts: list[tuple[str, RawImage]] = field(default_factory=list)
    limit: bytes | None = None
    words: dict[str, str] = field(default_factory=dict)

    def explain(self, message: str) -> str:
        """An engine message with the layers' names beside the maps it names."""
        for words, layer_words in self.words.items():
            message = message.replace(words, layer_words)
        return message


def gather(config: Gimp.ProcedureConfig, options: Options, a: Source, b_prime: Source,
           longest: int | None = None) -> Guide:
    """Everything the dialog asks for besides A and B′. `longest` reads it scaled down like A and
    B′ (the preview), which needs no selection limit."""
    guide = Guide(references=read_references(config, options, longest))
    sources = [b_prime, *guide.references]
    roles = [("layer A", a.layer), ("layer B′", b_prime.layer)]
    roles += [(f"Reference {n}", ref.layer) for n, ref in enumerate(guide.references, start=2)]
    guide.parts += [(reference_part(n), ref.raw) for n, ref in enumerate(guide.references, start=2)]
    if options.regions:
        maps = region_layers(config, len(guide.references))
        roles += [(what, layer) for what, _part, layer in maps]
        check_distinct(roles)
        for (what, part, layer), target, side in zip(maps, [a, *sources], ["A", *side_names(sources)],
                                                     strict=True):
            guide.parts.append((part, region_map(layer, what, target, side)))
            # The server says "regions_a (the region map of A)"; the engine alone, the latter.
            named = f"{what} '{layer.get_name()}'"
            guide.words.update({f"{part} ({engine_words(part)})": named, part: named,
                                engine_words(part): named})
    else:
        check_distinct(roles)
    if options.structure != "none":
        guide.parts.append(("structure", structure_mask(config, options, a)))
    if options.extra_references and options.mix.strip():
        try:
            parse_mix(options.mix, 1 + options.extra_references)
        except MixError as err:
            raise PluginError(f"{err} (Mix weights).") from None
    if longest is None and options.structure != "selection":
        guide.limit = selection_under(a)
    return guide


def read_references(config: Gimp.ProcedureConfig, options: Options, longest: int | None) -> list[Source]:
    references = []
    for n in range(2, 2 + options.extra_references):
        layer = config.get_property(f"reference-{n}")
        if layer is None:
            raise PluginError(f"Extra references is {options.extra_references}: choose Reference {n} "
                              "in the dialog, or lower Extra references.")
        references.append(read_source(layer, f"reference {n}", scale_for(layer, longest)))
    return references


def region_layers(config: Gimp.ProcedureConfig, extra: int) -> list[tuple[str, str, Gimp.Layer]]:
    """(what, part, layer) of every region map: A's, B′'s, then each extra reference's."""
    wanted = [("Regions of A", "regions_a", "regions-a"), ("Regions of B′", "regions_b", "regions-b")]
    wanted += [(f"Regions of reference {n}", regions_ref_part(n), f"regions-ref-{n}")
               for n in range(2, 2 + extra)]
    maps = []
    for what, part, argument in wanted:
        layer = config.get_property(argument)
        if layer is None:
            raise PluginError(f"Guide by region maps is on, but {what} is not chosen: choose a layer "
                              "painted in flat colours (one colour per region), or turn region maps "
                              "off." + (" With region maps, every reference needs its own."
                                        if part.startswith("regions_ref") else ""))
        maps.append((what, part, layer))
    return maps


def side_names(sources: list[Source]) -> list[str]:
    return ["B′"] + [f"reference {n}" for n in range(2, len(sources) + 1)]


def engine_words(part: str) -> str:
    """How the engine names a region map in its messages (analogy_engine.guidance.prepare)."""
    if part == "regions_a":
        return "the region map of A"
    if part == "regions_b":
        return "the region map of B′"
    return f"the region map of reference {part.rsplit('_', 1)[1]}"


def check_distinct(roles: list[tuple[str, Gimp.Layer]]) -> None:
    """Every role needs its own layer."""
    seen: dict[int, str] = {}
    for what, layer in roles:
        first = seen.setdefault(layer.get_id(), what)
        if first != what:
            raise PluginError(f"'{layer.get_name()}' is used twice, as {first} and as {what}: every "
                              "role needs its own layer.")


def region_map(layer: Gimp.Layer, what: str, target: Source, side: str) -> RawImage:
    """A region map as opaque RGBA at the target's size (read as the target was: scaled or not)."""
    check_layer(layer, f"{what} '{layer.get_name()}'" if layer.is_valid() else what,
                "a region map is an ordinary layer painted in flat colours (merge the group first: "
                "Layer ▸ Merge Layer Group)")
    rgba = read_under(layer, f"{what} '{layer.get_name()}'", target, side, REGION_FORMAT, 4)
    return RawImage(target.raw.width, target.raw.height, opaque(rgba))


def structure_mask(config: Gimp.ProcedureConfig, options: Options, a: Source) -> RawImage:
    """The structure mask at A's size: white keeps A's structure, black takes B′'s content."""
    if options.structure == "selection":
        if Gimp.Selection.is_empty(a.layer.get_image()):
            raise PluginError("Structure mask is the selection, but nothing is selected in A's image: "
                              "select the part of A that should take B′'s content.")
        grey = invert(selection_under(a) or b"")
    elif options.structure == "layer-mask":
        mask = a.layer.get_mask()
        if mask is None:
            raise PluginError(f"Structure mask is A's layer mask, but layer A '{a.name}' has none: add "
                              "one (Layer ▸ Mask ▸ Add Layer Mask) and paint black where A′ should "
                              "take B′'s content.")
        grey = read_under(mask, f"The layer mask of A '{a.name}'", a, "A", GREY, 1)
    else:
        channel = config.get_property("structure-channel")
        if channel is None or not channel.is_valid():
            raise PluginError("Structure mask is 'Structure channel', but no channel is chosen: choose "
                              "a channel (Channels dock) or a layer mask as Structure channel.")
        grey = read_under(channel, f"Structure channel '{channel.get_name()}'", a, "A", GREY, 1)
    return RawImage(a.raw.width, a.raw.height, grey_rgba(grey))


def offsets(drawable: Gimp.Drawable) -> tuple[int, int]:
    """Where a drawable sits on its image's canvas (a layer mask sits where its layer does)."""
    owner = Gimp.Layer.from_mask(drawable) if drawable.is_layer_mask() else drawable
    _ok, x, y = owner.get_offsets()
    return x, y


def read_under(drawable: Gimp.Drawable, what: str, target: Source, side: str, fmt: str,
               channels: int) -> bytes:
    """`drawable`'s pixels for the target layer: all of it when it has the target's size, else the
    part under the target when it covers the target in the same image; then resampled to the
    size the target was read at (nearest: a region map keeps its own colours)."""
    layer = target.layer
    width, height = layer.get_width(), layer.get_height()
    x = y = 0
    if (drawable.get_width(), drawable.get_height()) != (width, height):
        dx, dy = offsets(drawable)
        x, y = target.offsets[0] - dx, target.offsets[1] - dy
        same = drawable.get_image().get_id() == layer.get_image().get_id()
        if not (same and x >= 0 and y >= 0 and x + width <= drawable.get_width()
                and y + height <= drawable.get_height()):
            raise PluginError(f"{what} is {drawable.get_width()}×{drawable.get_height()} pixels but "
                              f"layer {side} '{target.name}' is {width}×{height}: it must have {side}'s "
                              f"size, or cover {side}'s whole area in {side}'s image.")
    rect = Gegl.Rectangle.new(x, y, width, height)
    data = bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))
    return nearest(data, width, height, channels, target.raw.width, target.raw.height)


def selection_under(a: Source) -> bytes | None:
    """The selection over A's area (one byte a pixel, at the size A was read at), or None when
    nothing is selected. Outside the canvas nothing is selected."""
    image = a.layer.get_image()
    if Gimp.Selection.is_empty(image):
        return None
    width, height = a.layer.get_width(), a.layer.get_height()
    rect = Gegl.Rectangle.new(a.offsets[0], a.offsets[1], width, height)
    data = bytes(image.get_selection().get_buffer().get(rect, 1.0, GREY, Gegl.AbyssPolicy.NONE))
    return nearest(data, width, height, 1, a.raw.width, a.raw.height)
