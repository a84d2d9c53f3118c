"""GIMP side of the animation procedure: the image's frames in, a new image of stylised frames out.

GIMP's convention for animations: every top-level layer is a frame, the bottom layer first, its
timing in its name ("Frame 1 (100ms)", "(combine)" / "(replace)"). The new image keeps the
names — and with them the timings — and the order.

Frames are read at the canvas size: each layer at its offsets on a transparent canvas (GEGL's
"none" abyss gives transparent pixels outside the layer), so layers of any size and position
become frames of one size, as the engine needs, and the new image has exactly the canvas's
geometry. Parts of the canvas a frame does not cover stay transparent in its result.
"""

from __future__ import annotations

from dataclasses import dataclass

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from dia_client import RawImage, RawResult, frame_name  # noqa: E402
from dia_contract import InputSizeError, check_input_size  # noqa: E402
from dia_layers import RGBA, PluginError  # noqa: E402
from dia_options import MAX_ANIMATION_PIXELS, MAX_FRAMES, MIN_FRAMES  # noqa: E402
from gi.repository import Gegl, Gimp  # noqa: E402


@dataclass
class Frame:
    """One frame as it was when the filter started."""

    name: str
    visible: bool
    raw: RawImage  # the canvas's size

    @property
    def alpha(self) -> bytes:
        return self.raw.rgba[3::4]


def frame_layers(image: Gimp.Image, reference: Gimp.Layer | None) -> list[Gimp.Layer]:
    """The image's top-level layers, bottom first, without the reference (a user may keep the
    look to copy as a hidden layer of the animation itself); layer groups are refused."""
    ref_id = reference.get_id() if reference is not None and reference.is_valid() else None
    layers = [layer for layer in reversed(image.get_layers()) if layer.get_id() != ref_id]
    for layer in layers:
        if layer.is_group_layer():
            raise PluginError(f"'{layer.get_name()}' is a layer group, not a frame. Each frame must "
                              "be one top-level layer: merge the group (Layer ▸ Merge Layer Group).")
    if len(layers) < MIN_FRAMES:
        have = f"{len(layers)} frame" if len(layers) == 1 else "no frames"
        raise PluginError(f"An animation needs at least {MIN_FRAMES} frames, and this image has {have}: "
                          "each top-level layer is a frame (bottom layer = first frame). Open or "
                          "add the frames as layers (File ▸ Open as Layers) and run it again.")
    if len(layers) > MAX_FRAMES:
        raise PluginError(f"The image has {len(layers)} frames; the engine takes at most {MAX_FRAMES}. "
                          "Split the animation into shorter parts.")
    return layers


def read_frames(image: Gimp.Image, reference: Gimp.Layer | None) -> list[Frame]:
    """Every frame's pixels at the canvas size, bottom (first) frame first."""
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise PluginError("Indexed images are not supported: convert with Image ▸ Mode ▸ RGB first "
                          "(Filters ▸ Animation ▸ Unoptimize also helps GIF animations).")
    layers = frame_layers(image, reference)
    width, height = image.get_width(), image.get_height()
    try:
        check_input_size(width, height, "The animation's canvas")
    except InputSizeError as error:
        hint = " Scale it down (Image ▸ Scale Image)." if error.too_large else ""
        raise PluginError(f"{error}.{hint}") from None
    if len(layers) * width * height > MAX_ANIMATION_PIXELS:
        # Checked before reading any pixels: the engine would refuse the upload anyway.
        raise PluginError(f"{len(layers)} frames of {width}×{height} pixels are more than the engine "
                          f"takes at once ({MAX_ANIMATION_PIXELS // 2**20} megapixels in all). Scale "
                          "the image down (Image ▸ Scale Image) or split the animation.")
    frames = []
    for layer in layers:
        _ok, x, y = layer.get_offsets()
        # Canvas coordinates in the layer's own: what lies outside the layer reads transparent.
        rect = Gegl.Rectangle.new(-x, -y, width, height)
        rgba = layer.get_buffer().get(rect, 1.0, RGBA, Gegl.AbyssPolicy.NONE)
        frames.append(Frame(layer.get_name(), layer.get_visible(), RawImage(width, height, bytes(rgba))))
    return frames


def check_reference(reference: Gimp.Layer | None) -> Gimp.Layer:
    if reference is None or not reference.is_valid():
        raise PluginError("Choose the reference layer (the look to give the frames) in the dialog; "
                          "it may be in any open image.")
    if not reference.is_layer() or reference.is_group_layer():
        raise PluginError("The reference must be an ordinary layer, not a layer group.")
    return reference


def new_animation(image: Gimp.Image, frames: list[Frame], results: dict[str, RawResult | str]) -> Gimp.Image:
    """A new image like `image` (size, colour model, precision, resolution) holding the stylised
    frames as layers with the frames' names, in the frames' order (the first at the bottom)."""
    width, height = image.get_width(), image.get_height()
    for index in range(1, len(frames) + 1):
        result = results[frame_name(index)]
        if not isinstance(result, RawResult) or (result.width, result.height) != (width, height):
            raise PluginError(f"The engine returned frame {index} at the wrong size; update the engine.")
    gray = image.get_base_type() == Gimp.ImageBaseType.GRAY
    new = Gimp.Image.new_with_precision(width, height, image.get_base_type(), image.get_precision())
    # A new image needs no history: its first undo step would only empty it.
    new.undo_disable()
    try:
        _ok, xres, yres = image.get_resolution()
        new.set_resolution(xres, yres)
        kind = Gimp.ImageType.GRAYA_IMAGE if gray else Gimp.ImageType.RGBA_IMAGE
        rect = Gegl.Rectangle.new(0, 0, width, height)
        for index, frame in enumerate(frames, start=1):
            layer = Gimp.Layer.new(new, frame.name, width, height, kind, 100.0, Gimp.LayerMode.NORMAL)
            new.insert_layer(layer, None, 0)  # each later frame above the one before
            result = results[frame_name(index)]
            assert isinstance(result, RawResult)
            buffer = layer.get_buffer()
            # The frame's transparency stays: outside a smaller layer, or a transparent frame.
            buffer.set(rect, RGBA, result.rgba(frame.alpha))
            buffer.flush()
            layer.set_visible(frame.visible)
    except Exception:
        new.delete()
        raise
    new.undo_enable()
    return new
