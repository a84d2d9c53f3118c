"""Remake the README's guidance figures (Pillow and the engine): examples/guidance.jpg (the
bundled pair with its region maps, A′ and B unguided and guided) and examples/collage.jpg (A,
the structure mask, A′ unguided and with the mask), at the engine's defaults:

    python examples/make_guidance_figure.py                   # runs the three analogies (minutes)
    python examples/make_guidance_figure.py PLAIN GUIDED COLLAGE  # from three CLI output folders
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
TILE = 256


Results = dict[str, Image.Image]


def results() -> tuple[Results, Results, Results]:
    if len(sys.argv) == 4:
        folders = [Path(arg) for arg in sys.argv[1:]]
        return tuple(  # type: ignore[return-value]
            {name: Image.open(folder / f"{name}.png").convert("RGB") for name in ("a_prime", "b")}
            for folder in folders
        )
    from analogy_engine import Engine, Guidance, analogy
    from analogy_engine.imageio import load_image

    a, b_prime = load_image(HERE / "a.jpg"), load_image(HERE / "b_prime.png")
    guidances = [
        None,
        Guidance(regions_a=load_image(HERE / "regions_a.png"), regions_b=load_image(HERE / "regions_b.png")),
        Guidance(structure=load_image(HERE / "structure_face.png")),
    ]
    engine = Engine.load("auto")
    runs = [analogy(a, b_prime, engine=engine, guidance=g) for g in guidances]
    return tuple(  # type: ignore[return-value]
        {"a_prime": Image.fromarray(r.a_prime), "b": Image.fromarray(r.b)} for r in runs
    )


def overlay(image: str, regions: str) -> Image.Image:
    photo = Image.open(HERE / image).convert("RGB")
    return Image.blend(photo, Image.open(HERE / regions).convert("RGB"), 0.45)


def sheet(tiles: list[tuple[str, Image.Image]], columns: int, path: Path) -> None:
    rows = (len(tiles) + columns - 1) // columns
    out = Image.new("RGB", (columns * TILE, rows * TILE), "white")
    draw = ImageDraw.Draw(out)
    for i, (label, tile) in enumerate(tiles):
        x, y = (i % columns) * TILE, (i // columns) * TILE
        out.paste(tile.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS), (x, y))
        # ASCII labels: Pillow's built-in font has no prime.
        draw.rectangle([x, y, x + 8 + 7 * len(label), y + 16], fill=(0, 0, 0))
        draw.text((x + 4, y + 2), label, fill=(255, 255, 255))
    out.save(path, quality=88)
    print(f"wrote {path} ({out.width}×{out.height})")


def main() -> None:
    plain, guided, collage = results()
    sheet([
        ("A + regions", overlay("a.jpg", "regions_a.png")),
        ("A' unguided", plain["a_prime"]),
        ("A' guided", guided["a_prime"]),
        ("B' + regions", overlay("b_prime.png", "regions_b.png")),
        ("B unguided", plain["b"]),
        ("B guided", guided["b"]),
    ], 3, HERE / "guidance.jpg")
    sheet([
        ("A", Image.open(HERE / "a.jpg")),
        ("structure mask", Image.open(HERE / "structure_face.png")),
        ("A' unguided", plain["a_prime"]),
        ("A' with the mask", collage["a_prime"]),
    ], 4, HERE / "collage.jpg")


if __name__ == "__main__":
    main()
