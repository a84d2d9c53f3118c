"""Remake examples/guidance.jpg, the README's region-map example (Pillow and the engine).

The bundled pair with its region maps (examples/make_regions.py), then A′ and B unguided and
guided, at the engine's defaults:

    python examples/make_guidance_figure.py            # runs both analogies (minutes on a CPU)
    python examples/make_guidance_figure.py PLAIN GUIDED   # from two existing CLI output folders
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
TILE = 256


def results() -> tuple[dict[str, Image.Image], dict[str, Image.Image]]:
    if len(sys.argv) == 3:
        folders = [Path(arg) for arg in sys.argv[1:]]
        return tuple(  # type: ignore[return-value]
            {name: Image.open(folder / f"{name}.png").convert("RGB") for name in ("a_prime", "b")}
            for folder in folders
        )
    from analogy_engine import Engine, Guidance, analogy
    from analogy_engine.imageio import load_image

    a, b_prime = load_image(HERE / "a.jpg"), load_image(HERE / "b_prime.png")
    guidance = Guidance(regions_a=load_image(HERE / "regions_a.png"),
                        regions_b=load_image(HERE / "regions_b.png"))
    engine = Engine.load("auto")
    runs = [analogy(a, b_prime, engine=engine), analogy(a, b_prime, engine=engine, guidance=guidance)]
    return tuple(  # type: ignore[return-value]
        {"a_prime": Image.fromarray(r.a_prime), "b": Image.fromarray(r.b)} for r in runs
    )


def overlay(image: str, regions: str) -> Image.Image:
    photo = Image.open(HERE / image).convert("RGB")
    return Image.blend(photo, Image.open(HERE / regions).convert("RGB"), 0.45)


def main() -> None:
    plain, guided = results()
    tiles = [
        ("A + regions", overlay("a.jpg", "regions_a.png")),
        ("A' unguided", plain["a_prime"]),
        ("A' guided", guided["a_prime"]),
        ("B' + regions", overlay("b_prime.png", "regions_b.png")),
        ("B unguided", plain["b"]),
        ("B guided", guided["b"]),
    ]
    sheet = Image.new("RGB", (3 * TILE, 2 * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, tile) in enumerate(tiles):
        x, y = (i % 3) * TILE, (i // 3) * TILE
        sheet.paste(tile.resize((TILE, TILE), Image.Resampling.LANCZOS), (x, y))
        # ASCII labels: Pillow's built-in font has no prime.
        draw.rectangle([x, y, x + 8 + 7 * len(label), y + 16], fill=(0, 0, 0))
        draw.text((x + 4, y + 2), label, fill=(255, 255, 255))
    sheet.save(HERE / "guidance.jpg", quality=88)
    print(f"wrote {HERE / 'guidance.jpg'} ({np.asarray(sheet).shape[1]}×{np.asarray(sheet).shape[0]})")


if __name__ == "__main__":
    main()
