"""Draw the bundled pair's region maps: examples/regions_a.png and regions_b.png.

Four regions, the same colour on both sides: the face (skin only), the top of the head (A's hair,
B′'s cap), the flag, and the rest (clothes and backdrop, where the unguided match already does
well and stays free). Unguided, B's face takes the spacesuit's orange; paired faces give it
skin. They are what a user paints in GIMP with a hard brush; here they are polygons and
ellipses so that anyone can remake them (`python examples/make_regions.py`, Pillow only).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = (512, 512)
REST = (128, 128, 128)
FLAG = (40, 60, 220)
HAIR = (240, 200, 40)
FACE = (220, 40, 40)


def regions_a() -> Image.Image:
    image = Image.new("RGB", SIZE, REST)
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, 0), (62, 0), (92, 110), (100, 230), (60, 250), (22, 300), (0, 330)], fill=FLAG)
    draw.ellipse([150, 12, 302, 186], fill=HAIR)
    draw.ellipse([170, 58, 284, 190], fill=FACE)
    return image


def regions_b() -> Image.Image:
    image = Image.new("RGB", SIZE, REST)
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, 0), (182, 0), (165, 120), (152, 200), (178, 262), (150, 332), (60, 336),
                  (0, 362)], fill=FLAG)
    draw.polygon([(160, 122), (178, 22), (232, 2), (322, 4), (352, 28), (372, 122)], fill=HAIR)
    draw.ellipse([158, 118, 366, 340], fill=FACE)
    return image


def main() -> None:
    regions_a().save(HERE / "regions_a.png", optimize=True)
    regions_b().save(HERE / "regions_b.png", optimize=True)


if __name__ == "__main__":
    main()
