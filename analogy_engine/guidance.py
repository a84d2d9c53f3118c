"""What the user tells the matcher: paired region maps, a structure mask, more references.

Region maps are images the user paints: equal colours in A's map and a reference's map are
regions that must correspond, so a cell of A in region k is only ever matched to cells of region
k (and the other way round). They arrive as (H, W, 3) uint8 colour images and become integer
label maps here, with labels shared by all the maps of one job. A colour covering a sliver of
one map (under `EDGE_FRACTION` of its pixels) that the other side lacks is taken for the
anti-aliased edge between two painted regions and joins its neighbours; any other colour on one
side only is an error, never a silent fallback.

`structure` (H_A, W_A) uint8 scales the blend weight of A′'s own features per pixel: 255 keeps
A's structure (the default), 0 lets A′ take the reference's content there (a collage).

Everything is checked by `prepare()` before any work starts; the pipeline then asks for the
labels on each grid of its plan (`labels_on`) and PatchMatch keeps every match inside its
region (`match.patchmatch(regions=…)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .contract import MAX_REFERENCES, MAX_REGIONS
from .types import InputError

EDGE_FRACTION = 0.002  # a one-sided colour below this share of its map's pixels is an edge
WILDCARD = -1  # a source cell whose region has no cells on the target's grid matches anywhere


@dataclass
class Guidance:
    """The optional guidance of one analogy; every image is uint8 and at its image's size."""

    regions_a: np.ndarray | None = None  # (H_A, W_A, 3): colours = regions
    regions_b: np.ndarray | None = None  # (H_B′, W_B′, 3)
    structure: np.ndarray | None = None  # (H_A, W_A) grey (or (H_A, W_A, 3), read as grey)
    references: list[np.ndarray] = field(default_factory=list)  # B′2, B′3, … (H, W, 3)
    regions_refs: list[np.ndarray] = field(default_factory=list)  # their region maps, same order


@dataclass
class Prepared:
    """Guidance checked and turned into tensors on the engine's device.

    `labels_a` (H_A, W_A) and `labels_refs[i]` (H_i, W_i) are long label maps at full size (None
    without region maps); `structure` is (H_A, W_A) float in 0..1 (None: keep A's structure).
    `colours[k]` is label k's colour, for messages.
    """

    labels_a: Tensor | None
    labels_refs: list[Tensor | None]
    structure: Tensor | None
    colours: list[str]

    @property
    def guided(self) -> bool:
        return self.labels_a is not None

    def allowed(self, ref: int) -> Tensor | None:
        """(H_A, W_A) bool: the pixels of A whose region reference `ref` has (None: all)."""
        labels_ref = self.labels_refs[ref]
        if self.labels_a is None or labels_ref is None:
            return None
        present = torch.zeros(len(self.colours), dtype=torch.bool, device=self.labels_a.device)
        present[labels_ref.unique()] = True
        return present[self.labels_a]


def hex_colour(packed: int) -> str:
    return f"#{packed:06x}"


def _pack(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _check_map(image: np.ndarray, hw: tuple[int, int], name: str, of: str, grey: bool = False) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"{name} must be a uint8 numpy array")
    shapes_ok = image.ndim == 3 and image.shape[2] == 3 or (grey and image.ndim == 2)
    if not shapes_ok:
        raise InputError(f"{name} must have shape (height, width{'' if grey else ', 3'}), got {image.shape}")
    if image.shape[:2] != hw:
        raise InputError(
            f"{name} is {image.shape[1]}×{image.shape[0]} pixels but {of} is {hw[1]}×{hw[0]}: "
            "it must be the same size"
        )


def region_labels(
    maps: list[np.ndarray], names: list[str], sides: list[int]
) -> tuple[list[np.ndarray], list[str]]:
    """Label maps (int32) sharing labels across `maps`, and each label's colour.

    `sides[i]` is 0 for A's map and 1 for a reference's: a region must be on both sides. Colours
    on one side only are edges (joined to a neighbouring region) when they are slivers, else
    an InputError that names the colour and the map.
    """
    packed = [_pack(m) for m in maps]
    counts = [dict(zip(*np.unique(p, return_counts=True), strict=True)) for p in packed]
    on_side = [set(), set()]  # type: list[set[int]]
    for side, count in zip(sides, counts, strict=True):
        on_side[side].update(int(c) for c in count)
    both = on_side[0] & on_side[1]
    for name, count, side, p in zip(names, counts, sides, packed, strict=True):
        for colour, n in sorted(count.items(), key=lambda item: -item[1]):
            if int(colour) not in both and n >= EDGE_FRACTION * p.size:
                other = "any reference's region map" if side == 0 else "the region map of A"
                raise InputError(
                    f"region colour {hex_colour(int(colour))} covers {n} pixels of {name} but is not "
                    f"in {other}: paint each region in the same colour on both sides"
                )
    ordered = sorted(both)
    if len(ordered) > MAX_REGIONS:
        raise InputError(
            f"the region maps have {len(ordered)} colours in common; the limit is {MAX_REGIONS}"
        )
    if not ordered:
        raise InputError("the region maps have no colour in common: paint paired regions in the same colour")
    lookup = {colour: label for label, colour in enumerate(ordered)}
    labels = []
    for p in packed:
        flat_colours, inverse = np.unique(p, return_inverse=True)
        table = np.array([lookup.get(int(c), WILDCARD) for c in flat_colours], dtype=np.int32)
        labels.append(_absorb_edges(table[inverse.reshape(p.shape)]))
    return labels, [hex_colour(c) for c in ordered]


def _absorb_edges(labels: np.ndarray) -> np.ndarray:
    """Edge pixels (WILDCARD) take a neighbouring region's label, growing inwards from the regions."""
    if (labels >= 0).all():
        return labels
    t = torch.from_numpy(labels.astype(np.int64))[None, None] + 1  # 0: still unlabelled
    while bool((t == 0).any()):
        grown = F.max_pool2d(t.float(), 3, stride=1, padding=1).long()
        if bool((grown == t).all()):  # cannot happen with at least one region; guards the loop
            break
        t = torch.where(t == 0, grown, t)
    return (t[0, 0] - 1).numpy().astype(np.int32)


def labels_on(labels: Tensor, hw: tuple[int, int]) -> Tensor:
    """A label map on a coarser (h, w) grid: each cell takes the region covering most of it.

    Computed a region at a time (area shares), so memory stays that of two float maps.
    """
    if tuple(labels.shape) == hw:
        return labels
    best = torch.full(hw, -1.0, device=labels.device)
    out = torch.zeros(hw, dtype=torch.long, device=labels.device)
    for k in labels.unique().tolist():
        share = F.interpolate((labels == k).float()[None, None], size=hw, mode="area")[0, 0]
        take = share > best
        best = torch.where(take, share, best)
        out = torch.where(take, torch.full_like(out, k), out)
    return out


def pair_labels(src: Tensor, tgt: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Both label maps on one step's grids (from `labels_on`); source cells whose region the
    target grid lacks become WILDCARD (a region too thin to survive a coarse grid is matched
    freely there, and held to its region again on the finer grids)."""
    present = torch.zeros(count, dtype=torch.bool, device=src.device)
    present[tgt.unique()] = True
    return torch.where(present[src], src, torch.full_like(src, WILDCARD)), tgt


def prepare(
    guidance: Guidance | None, a_hw: tuple[int, int], refs_hw: list[tuple[int, int]],
    working: list[tuple[tuple[int, int], tuple[int, int]]], device: torch.device,
) -> Prepared:
    """Check `guidance` against A's and the references' sizes; labels and mask as tensors.

    `refs_hw` are the sizes of B′ and each extra reference; `working[i]` the working sizes of A
    and reference i, on which every region must still have a cell.
    """
    g = guidance if guidance is not None else Guidance()
    n_refs = 1 + len(g.references)
    if n_refs > MAX_REFERENCES:
        raise InputError(
            f"{n_refs} references given (B′ and {n_refs - 1} more); the limit is {MAX_REFERENCES}"
        )
    if (g.regions_a is None) != (g.regions_b is None):
        given, missing = ("A", "B′") if g.regions_a is not None else ("B′", "A")
        raise InputError(f"a region map of {given} needs one of {missing} too: regions are paired")
    if g.regions_a is None and g.regions_refs:
        raise InputError("region maps of more references need the region maps of A and B′ too")
    if g.regions_a is not None and len(g.regions_refs) != len(g.references):
        raise InputError(
            f"{len(g.references)} more reference(s) but {len(g.regions_refs)} region map(s) for them: "
            "with region maps, every reference needs its own"
        )
    structure = None
    if g.structure is not None:
        _check_map(g.structure, a_hw, "the structure mask", "A", grey=True)
        grey = g.structure if g.structure.ndim == 2 else g.structure.mean(axis=2)
        structure = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0).to(device)
    if g.regions_a is None:
        return Prepared(None, [None] * n_refs, structure, [])
    assert g.regions_b is not None
    ref_names = ["B′"] + [f"reference {i + 2}" for i in range(len(g.references))]
    maps = [g.regions_a, g.regions_b, *g.regions_refs]
    names = ["the region map of A"] + [f"the region map of {n}" for n in ref_names]
    for image, name, hw, of in zip(maps, names, [a_hw, *refs_hw], ["A", *ref_names], strict=True):
        _check_map(image, hw, name, of)
    labels, colours = region_labels(maps, names, [0] + [1] * n_refs)
    tensors = [torch.from_numpy(m.astype(np.int64)).to(device) for m in labels]
    for i, (a_work, ref_work) in enumerate(working):
        for t, hw, name in ((tensors[0], a_work, names[0]), (tensors[i + 1], ref_work, names[i + 1])):
            lost = set(t.unique().tolist()) - set(labels_on(t, hw).unique().tolist())
            if lost:
                raise InputError(
                    f"region {', '.join(colours[k] for k in sorted(lost))} of {name} is too small to keep a "
                    f"single pixel at the working size ({hw[1]}×{hw[0]}): make it larger or raise the size"
                )
    return Prepared(tensors[0], tensors[1:], structure, colours)


@dataclass
class PairGuide:
    """The guidance of one pair (A and one reference) on the grids of its plan, cached per grid."""

    labels_a: Tensor | None = None  # (H_A, W_A) long, full size
    labels_b: Tensor | None = None  # the reference's
    count: int = 0
    structure: Tensor | None = None  # (H_A, W_A) float 0..1
    _cache: dict = field(default_factory=dict)

    def regions(
        self, a_hw: tuple[int, int], b_hw: tuple[int, int], direction: str
    ) -> tuple[Tensor, Tensor] | None:
        """(source, target) labels on a step's grids for direction "ab" (A → B′) or "ba"."""
        if self.labels_a is None or self.labels_b is None:
            return None
        key = ("regions", a_hw, b_hw, direction)
        if key not in self._cache:
            a, b = self._on("a", self.labels_a, a_hw), self._on("b", self.labels_b, b_hw)
            source, target = (a, b) if direction == "ab" else (b, a)
            self._cache[key] = pair_labels(source, target, self.count)
        return self._cache[key]

    def _on(self, side: str, labels: Tensor, hw: tuple[int, int]) -> Tensor:
        """One side's labels on a grid, made once for both directions."""
        key = ("labels", side, hw)
        if key not in self._cache:
            self._cache[key] = labels_on(labels, hw)
        return self._cache[key]

    def keep(self, a_hw: tuple[int, int]) -> Tensor | None:
        """The structure mask on A's grid (1, h, w): how much of A's own features A′ keeps."""
        if self.structure is None:
            return None
        key = ("keep", a_hw)
        if key not in self._cache:
            self._cache[key] = F.interpolate(self.structure[None, None], size=a_hw, mode="area")[0]
        return self._cache[key]


def pair_guide(prepared: Prepared, ref: int) -> PairGuide:
    return PairGuide(prepared.labels_a, prepared.labels_refs[ref], len(prepared.colours), prepared.structure)
