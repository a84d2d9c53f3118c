"""Runs inside a real GIMP (python-fu-eval batch): builds images, calls the plug-in, dumps results.

Input: the JSON file named by $DIA_TEST_SPEC: {"out": dir, "cases": [case, ...]}, a case being
  {"name", "image": {"width", "height", "base": "rgb"|"gray", "precision": "u8"|"u16"|"float"},
   "layers": [{"name", "file" (raw RGBA u8), "width", "height", "x", "y"}, ...] (top first),
   "select": [layer names], "reference": layer spec in a second image or null,
   "args": {procedure argument: value}, "procedure": "analogy" (default) or "animation",
   guidance: "layer_args": {argument: layer name (of any image of the case)},
   "channels": [{"name", "file" (raw Y u8 at the image's size)}], "channel_args": {argument: channel
   name}, "selection": [x, y, width, height], "extra_images": [{"image": spec (base may be
   "indexed"), "layers": [...]}]; a layer spec with "group": true is an empty layer group}
Output, per case in OUT/NAME/: result.json (status, error message, layer trees before and after,
hashes of the sources' pixels before and after, the image's paths before and after), the sources'
pixels as the plug-in reads them (source-NAME.rgba) and raw dumps of every new layer and its mask
(layerID.rgba, layerID.mask); for the animation procedure also the new image's layer tree and
each of its layers' pixels (new-layerID.rgba).
"""

import hashlib
import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

PROCEDURES = {
    "analogy": "plug-in-deep-image-analogy",
    "animation": "plug-in-deep-image-analogy-animation",
}
PRECISIONS = {
    "u8": Gimp.Precision.U8_NON_LINEAR,
    "u16": Gimp.Precision.U16_NON_LINEAR,
    "float": Gimp.Precision.FLOAT_LINEAR,
}


def pixels(drawable, fmt="R'G'B'A u8"):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))


def new_image(spec):
    base = Gimp.ImageBaseType.GRAY if spec.get("base") == "gray" else Gimp.ImageBaseType.RGB
    precision = PRECISIONS[spec.get("precision", "u8")]
    return Gimp.Image.new_with_precision(spec["width"], spec["height"], base, precision)


def add_layer(image, spec, position):
    if spec.get("group"):
        group = Gimp.GroupLayer.new(image, spec["name"])
        image.insert_layer(group, None, position)
        return group
    gray = image.get_base_type() == Gimp.ImageBaseType.GRAY
    kind = Gimp.ImageType.GRAYA_IMAGE if gray else Gimp.ImageType.RGBA_IMAGE
    layer = Gimp.Layer.new(image, spec["name"], spec["width"], spec["height"], kind, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, position)
    layer.set_offsets(spec.get("x", 0), spec.get("y", 0))
    with open(spec["file"], "rb") as f:
        data = f.read()
    rect = Gegl.Rectangle.new(0, 0, spec["width"], spec["height"])
    buffer = layer.get_buffer()
    buffer.set(rect, "R'G'B'A u8", data)
    buffer.flush()
    return layer


def tree(image):
    """Every layer, depth first, with where it sits."""
    rows = []

    def walk(layers, parent, depth):
        for index, layer in enumerate(layers):
            ok, x, y = layer.get_offsets()
            row = {
                "id": layer.get_id(), "name": layer.get_name(), "parent": parent, "depth": depth,
                "position": index, "group": layer.is_group_layer(), "x": x, "y": y,
                "width": layer.get_width(), "height": layer.get_height(),
                "mask": layer.get_mask() is not None,
            }
            rows.append(row)
            if layer.is_group_layer():
                walk(layer.get_children(), layer.get_name(), depth + 1)

    walk(image.get_layers(), None, 0)
    return rows


def paths(image):
    """Every path: name, its strokes' control points (GIMP's cubic form), visibility."""
    rows = []
    for path in image.get_paths():
        strokes = []
        for stroke in path.get_strokes():
            _kind, points, closed = path.stroke_get_points(stroke)
            strokes.append({"points": list(points), "closed": closed})
        rows.append({"id": path.get_id(), "name": path.get_name(), "strokes": strokes})
    return rows


def build(case):
    """The case's image(s): (image, layers by name (of every image), the other images, reference,
    selected)."""
    image = new_image(case["image"])
    layers = {}
    for position, spec in enumerate(case["layers"]):
        layers[spec["name"]] = add_layer(image, spec, position)
    other = None
    reference = None
    if case.get("reference"):
        spec = case["reference"]
        other = new_image({"width": spec["width"] + spec.get("x", 0) + 4,
                           "height": spec["height"] + spec.get("y", 0) + 4})
        reference = add_layer(other, spec, 0)
        layers[spec["name"]] = reference
    if case.get("reference_in_image"):
        reference = layers[case["reference_in_image"]]
    others = [other] if other is not None else []
    for extra in case.get("extra_images", []):
        more = new_image(extra["image"])
        for position, spec in enumerate(extra["layers"]):
            layers[spec["name"]] = add_layer(more, spec, position)
        if extra["image"].get("base") == "indexed":
            more.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 16,
                                 False, False, "")
        others.append(more)
    for spec in case.get("channels", []):
        add_channel(image, spec)
    if case.get("selection"):
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *case["selection"])
    selected = [layers[name] for name in case["select"]]
    image.set_selected_layers(selected)
    return image, layers, others, reference, selected


def add_channel(image, spec):
    channel = Gimp.Channel.new(image, spec["name"], image.get_width(), image.get_height(), 100.0,
                               Gegl.Color.new("black"))
    image.insert_channel(channel, None, 0)
    with open(spec["file"], "rb") as f:
        data = f.read()
    buffer = channel.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, image.get_width(), image.get_height()), "Y u8", data)
    buffer.flush()
    return channel


def guide_args(image, layers, case):
    """The case's layer and channel arguments as GIMP objects."""
    args = {key: layers[name] for key, name in case.get("layer_args", {}).items()}
    channels = {c.get_name(): c for c in image.get_channels()}
    args.update({key: channels[name] for key, name in case.get("channel_args", {}).items()})
    return args


def run_procedure(image, selected, reference, args, run_mode=Gimp.RunMode.NONINTERACTIVE,
                  procedure="analogy", objects=None):
    """The procedure's return values (status first)."""
    proc = Gimp.get_pdb().lookup_procedure(PROCEDURES[procedure])
    config = proc.create_config()
    config.set_property("run-mode", run_mode)
    config.set_property("image", image)
    config.set_core_object_array("drawables", selected)
    for key, value in {**args, **(objects or {})}.items():
        config.set_property(key, value)
    if reference is not None:
        config.set_property("reference", reference)
    return proc.run(config)


def dump_new_image(values, out_dir, result):
    """The animation procedure's new image: its geometry, layers and pixels."""
    new = values.index(1) if values.length() > 1 else None
    if new is None:
        result["new_image"] = None
        return
    result["new_image"] = {
        "width": new.get_width(), "height": new.get_height(), "base": int(new.get_base_type()),
        "precision": int(new.get_precision()), "tree": tree(new), "images_open": len(Gimp.get_images()),
        "undo_enabled": new.undo_is_enabled(), "dirty": new.is_dirty(),
    }
    for row in result["new_image"]["tree"]:
        with open(os.path.join(out_dir, f"new-layer{row['id']}.rgba"), "wb") as f:
            f.write(pixels(Gimp.Item.get_by_id(row["id"])))
    new.delete()


def run_case(case, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    image, layers, others, reference, selected = build(case)
    before = {name: hashlib.sha256(pixels(layer)).hexdigest() for name, layer in layers.items()}
    # The sources as the plug-in reads them (8-bit sRGB whatever the image's own format).
    for name, layer in layers.items():
        with open(os.path.join(out_dir, f"source-{name}.rgba"), "wb") as f:
            f.write(pixels(layer))
    result = {"name": case["name"], "tree_before": tree(image), "paths_before": paths(image)}
    procedure = case.get("procedure", "analogy")
    images_before = len(Gimp.get_images())
    values = run_procedure(image, selected, reference, case.get("args", {}), procedure=procedure,
                           objects=guide_args(image, layers, case))
    result["error"] = Gimp.get_pdb().get_last_error()  # before any other PDB call resets it
    status = values.index(0)
    result["images_before"] = images_before
    result["images_after"] = len(Gimp.get_images())
    result["status"] = int(status)
    result["success"] = status == Gimp.PDBStatusType.SUCCESS
    result["tree_after"] = tree(image)
    result["paths_after"] = paths(image)
    result["sources_unchanged"] = {
        name: layer.is_valid() and hashlib.sha256(pixels(layer)).hexdigest() == before[name]
        for name, layer in layers.items()
    }
    result["precision"] = int(image.get_precision())
    # Dump the pixels of every layer the plug-in made.
    old_ids = {row["id"] for row in result["tree_before"]}
    dumps = {}
    for row in result["tree_after"]:
        if row["id"] in old_ids or row["group"]:
            continue
        layer = Gimp.Item.get_by_id(row["id"])
        stem = os.path.join(out_dir, f"layer{row['id']}")
        with open(stem + ".rgba", "wb") as f:
            f.write(pixels(layer))
        if layer.get_mask() is not None:
            with open(stem + ".mask", "wb") as f:
                f.write(pixels(layer.get_mask(), "Y u8"))
        dumps[row["name"]] = stem
    result["dumps"] = dumps
    if procedure == "animation" and result["success"]:
        dump_new_image(values, out_dir, result)
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    image.delete()
    for other in others:
        other.delete()


def main():
    with open(os.environ["DIA_TEST_SPEC"]) as f:
        spec = json.load(f)
    for case in spec["cases"]:
        out_dir = os.path.join(spec["out"], case["name"])
        try:
            run_case(case, out_dir)
        except Exception:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "crash.txt"), "w") as f:
                f.write(traceback.format_exc())


if __name__ == "__main__":  # python-fu-eval runs this file as __main__
    main()
