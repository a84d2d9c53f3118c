"""Bidirectional-ready PatchMatch on deep features, vectorised as whole-field tensor operations.

A field is a (H, W, 2) long tensor: for each source cell (y, x) the matched target cell (y, x).
The score of a field at p is the patch similarity Σ_o ⟨S(p+o), T(field(p)+o)⟩ over the k×k
offsets o, where S and T are channel-normalised features stacked over both image pairs
(A with A′ against B with B′), so one dot product is the paper's two-pair cosine similarity.

Propagation is done for every pixel at once ("jump flooding"): each pixel tries its neighbours'
matches at distances 8, 4, 2, 1 in four directions, and random search tries offsets whose
radius halves down to 1. Each candidate field is scored whole and kept where it improves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .fields import clamp_field, pad_edges, shift

# The score of a candidate outside its cell's region: below any patch similarity (those lie in
# [−1, 1]) plus any bonus (coherence, prior), so it is never taken.
OUT_OF_REGION = -1e4
# The four neighbours whose matches the coherence term compares, as (dy, dx).
NEIGHBOURS = ((0, -1), (-1, 0), (0, 1), (1, 0))


def normalize(features: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each feature vector of a (C, H, W) map to unit length."""
    # A sum over the channels runs vectorised over the cells; `norm(dim=0)` is slower here.
    return features / features.pow(2).sum(0, keepdim=True).sqrt().clamp_min(eps)


def stack_pairs(first: Tensor, second: Tensor, first_weight: Tensor | None = None) -> Tensor:
    """(C, H, W) × 2 → (H, W, 2C) of normalised features, channels last for row gathers.

    Each half is scaled by 1/√2 so that the dot product of two stacks is the mean of the two
    cosine similarities, in [−1, 1]. `first_weight` (1, H, W) scales the first half per cell:
    where it is 0 a match is judged on the second pair alone (the structure mask's collage).
    """
    c, h, w = first.shape
    stacked = torch.empty(h, w, c + second.shape[0], device=first.device, dtype=first.dtype)
    head = normalize(first) if first_weight is None else normalize(first) * first_weight
    # Each half scaled straight into its channels-last place (no concatenated copy to permute).
    torch.mul(head.permute(1, 2, 0), 0.5**0.5, out=stacked[..., :c])
    torch.mul(normalize(second).permute(1, 2, 0), 0.5**0.5, out=stacked[..., c:])
    return stacked


def project(
    first: Tensor, second: Tensor, dims: int | None, sample: int = 8192,
    basis_of: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Project two (H, W, D) stacks onto the top `dims` eigenvectors of their joint second moment.

    Uncentred on purpose: the eigenvectors of E[x xᵀ] are the subspace that best preserves dot
    products, which is what the match scores. The moment is estimated on an even subsample, of
    `basis_of` when given (stacks whose subspace is to be used instead: a structure mask reweighs
    part of the stacks, and the basis must not move for the rest of the image).
    """
    d = first.shape[-1]
    if dims is None or dims >= d:
        return first, second
    moment_of = basis_of if basis_of is not None else (first, second)
    # Every step-th row of the two stacks one after the other, taken from each stack in place
    # rather than from a concatenated copy of both.
    upper, lower = moment_of[0].reshape(-1, d), moment_of[1].reshape(-1, d)
    step = max(1, (upper.shape[0] + lower.shape[0]) // sample)
    subset = torch.cat([upper[::step], lower[(-upper.shape[0]) % step :: step]])
    moment = subset.T @ subset
    # A flat image gives a moment of rank one, on which LAPACK's eigh may fail to converge. A
    # ridge of c·I leaves the eigenvectors as they are (it only shifts every eigenvalue by c).
    ridge = 1e-6 * float(moment.diagonal().mean().clamp_min(1e-12))
    moment = moment + ridge * torch.eye(d, dtype=moment.dtype, device=moment.device)
    try:
        _, vectors = torch.linalg.eigh(moment)
    except torch.linalg.LinAlgError:  # still no convergence: match on every channel instead
        return first, second
    basis = vectors[:, -dims:].to(first.dtype)
    return (first @ basis).contiguous(), (second @ basis).contiguous()


# Bytes of gathered target patches scored at once on the CPU: a block that stays in the caches
# (and below glibc's 32 MB mmap threshold, above which every temporary costs fresh page faults).
# On a GPU the whole map is one block.
CPU_BLOCK_BYTES = 4 << 20
GPU_BLOCK_BYTES = 1 << 30


class PatchScorer:
    """The patch similarity of fields from one source stack into one target stack.

    Made once per `patchmatch` (or `subcell`) call, it holds what every scored field shares:

    - the target padded by r = k // 2 with its border repeated, seen through an overlapping
      window view: with channels last, the k cells of one patch row are k·C consecutive floats,
      so one patch row is one gathered row of the view (no copy is made);
    - the source unfolded along x once: cell (y, x) of row y + r of `(H + 2r, W, k·C)` holds the
      k cells from x − r to x + r, so a patch row of a block of source rows is a plain slice.

    Scoring a field is then one gather of k rows of k·C floats per cell (instead of k² gathers
    of C) and one multiply and sum, in blocks of whole source rows. The result equals the k×k
    sum of channel dot products up to float summation order.
    """

    def __init__(self, source: Tensor, target: Tensor, patch: int) -> None:
        r = patch // 2
        h, w, c = source.shape
        self.patch = patch
        self.shape = (h, w)
        padded = pad_edges(target, r)
        self.padded_width = padded.shape[1]
        starts = padded.shape[0] * padded.shape[1] - patch + 1
        self.windows = padded.reshape(-1).as_strided((starts, patch * c), (c, 1))
        # unfold gives (H + 2r, W, C, k); cells of a window row must be consecutive: (…, k, C).
        unfolded = pad_edges(source, r).unfold(1, patch, 1).transpose(2, 3)
        self.rows = unfolded.reshape(h + 2 * r, w, patch * c).contiguous()
        self.row_offsets = torch.arange(patch, device=source.device) * self.padded_width
        budget = GPU_BLOCK_BYTES if source.device.type == "cuda" else CPU_BLOCK_BYTES
        self.block_rows = max(1, budget // (w * patch * patch * c * source.element_size()))

    def __call__(self, field: Tensor) -> Tensor:
        """(H, W) mean over the k×k patch of ⟨source(p + o), target(field(p) + o)⟩; `field` must
        lie inside the target (`clamp_field`)."""
        h, w = self.shape
        k = self.patch
        # The window of the patch's top row starts at padded (fy, fx): the target cell fy − r + r.
        start = field[..., 0] * self.padded_width + field[..., 1]
        out = torch.empty(h, w, device=self.rows.device, dtype=self.rows.dtype)
        kc = self.rows.shape[2]
        for y0 in range(0, h, self.block_rows):
            y1 = min(h, y0 + self.block_rows)
            n = (y1 - y0) * w
            index = (start[y0:y1].reshape(n, 1) + self.row_offsets).reshape(-1)
            gathered = self.windows.index_select(0, index).view(y1 - y0, w, k, kc)
            # Source patch row d of cell (y, x) is unfolded row y + d: a view with overlapping
            # rows, so the whole block is one multiply (into the gathered copy) and one sum.
            source = self.rows.as_strided((y1 - y0, w, k, kc), (w * kc, kc, w * kc, 1), y0 * w * kc)
            out[y0:y1] = gathered.mul_(source).view(y1 - y0, w, k * kc).sum(-1)
        return out / (k * k)


def patch_similarity(source: Tensor, target: Tensor, field: Tensor, patch: int) -> Tensor:
    """Mean over the k×k patch of ⟨source(p+o), target(field(p)+o)⟩ for every p: (H, W).

    `source` (H, W, C) and `target` (Ht, Wt, C) are stacks from `stack_pairs`; offsets that
    leave a map repeat its border. To score many fields of the same pair, make one
    `PatchScorer` (as `patchmatch` does).
    """
    return PatchScorer(source, target, patch)(field)


def _radii(start: int) -> list[int]:
    radii = []
    radius = start
    while radius >= 1:
        radii.append(radius)
        radius //= 2
    return radii


def _jumps(jumps: tuple[int, ...], h: int, w: int) -> list[int]:
    return [j for j in jumps if j < max(h, w)]


def count_candidates(hw: tuple[int, int], iterations: int, radius: int, jumps: tuple[int, ...]) -> int:
    """How many candidate fields `patchmatch` scores (for progress accounting)."""
    return iterations * (4 * len(_jumps(jumps, *hw)) + len(_radii(radius)))


def patchmatch(
    source: Tensor,
    target: Tensor,
    field: Tensor,
    patch: int,
    iterations: int,
    radius: int,
    jumps: tuple[int, ...] = (8, 4, 2, 1),
    generator: torch.Generator | None = None,
    step: Callable[[], None] | None = None,
    coherence: float = 0.0,
    prior: tuple[Tensor, Tensor] | None = None,
    regions: tuple[Tensor, Tensor] | None = None,
    reach: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Improve `field` (source → target) and return it with its per-cell patch similarity.

    `radius` is the largest random-search radius in target cells (it halves down to 1).
    `coherence` adds that much to a candidate's score for each of its four neighbours whose
    match has the same offset (÷ 4): it only decides between near ties, so in flat regions,
    where every match scores alike, the field takes its textured neighbours' offset instead of
    an arbitrary one. `prior` = (positions (H, W, 2) float target cells, weight (H, W)) pulls
    the field towards known positions (an animation's previous frame carried along the motion;
    the layout of B′ → A's coarsest match): a candidate gains weight × (1 − its distance to the
    prior / `reach` cells), so a match moves away only for a clearly better one.
    `regions` = (source labels (H, W), target labels (Ht, Wt)),
    long, from `guidance.pair_labels`: the field starts inside each cell's region
    (`place_in_regions`) and a candidate in another region is never taken, so propagation and
    random search stay within it (a source label of −1 matches anywhere). `step()` is called
    after each scored candidate field (progress, cancellation); there are
    `count_candidates(...)` of them.
    """
    tgt_hw = (target.shape[0], target.shape[1])
    field = clamp_field(field, tgt_hw)
    if regions is not None:
        field = place_in_regions(field, regions[0], regions[1], generator)
    scorer = PatchScorer(source, target, patch)
    best = scorer(field)
    h, w = field.shape[:2]
    # The coherence term compares offsets as one number per cell, key = y·K + x, one comparison
    # instead of two and an `all`. A neighbour's match minus its offset lies within one cell
    # of the target, so K = Wt + 2 keeps keys of different cells apart.
    width = tgt_hw[1] + 2

    def outside(candidate: Tensor) -> Tensor:
        assert regions is not None
        src_labels, tgt_labels = regions
        landed = tgt_labels.reshape(-1)[candidate[..., 0] * tgt_hw[1] + candidate[..., 1]]
        return (landed != src_labels) & (src_labels >= 0)

    def neighbours() -> list[Tensor]:
        """The key of the match each of the four neighbours' offsets gives this cell (the
        current field)."""
        key = field[..., 0] * width + field[..., 1]
        return [shift(key, dy, dx) - (dy * width + dx) for dy, dx in NEIGHBOURS]

    def agreement(candidate: Tensor, around: list[Tensor]) -> Tensor:
        key = candidate[..., 0] * width + candidate[..., 1]
        total = torch.zeros(h, w, device=field.device, dtype=best.dtype)
        for neighbour in around:
            total += (neighbour == key).to(best.dtype)
        return total * (coherence / 4)

    def pull(candidate: Tensor) -> Tensor:
        assert prior is not None
        distance = (candidate.to(prior[0].dtype) - prior[0]).abs().amax(-1)
        return prior[1] * (1 - distance / reach).clamp_min(0)

    def consider(candidate: Tensor) -> None:
        nonlocal field, best
        candidate = clamp_field(candidate, tgt_hw)
        score = scorer(candidate)
        if regions is not None:
            score = score.masked_fill(outside(candidate), OUT_OF_REGION)
        # Both sides' agreement is counted against the same neighbours: made once per candidate.
        around = neighbours() if coherence > 0 else []
        if prior is not None:
            bonus_now = agreement(field, around) if coherence > 0 else 0
            bonus = agreement(candidate, around) if coherence > 0 else 0
            better = score + pull(candidate) + bonus > best + pull(field) + bonus_now
        elif coherence > 0:
            better = score + agreement(candidate, around) > best + agreement(field, around)
        else:
            better = score > best
        field = torch.where(better.unsqueeze(-1), candidate, field)
        best = torch.where(better, score, best)
        if step is not None:
            step()

    for _ in range(iterations):
        for jump in _jumps(jumps, h, w):
            for dy, dx in ((0, -jump), (-jump, 0), (0, jump), (jump, 0)):
                offset = torch.tensor((dy, dx), device=field.device)
                consider(shift(field, dy, dx) - offset)
        for r in _radii(radius):
            noise = torch.randint(
                -r, r + 1, field.shape, device=field.device, generator=generator
            )
            consider(field + noise)
    return field, best


def place_in_regions(
    field: Tensor, source_labels: Tensor, target_labels: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Move every match that lies outside its cell's region into it.

    A moved cell keeps its relative place: it goes where it sits in its region's bounding box,
    in the same proportions, within the target region's bounding box (so two regions that are
    shifted or swapped start out aligned); where that spot is not in the region (regions that
    are not boxes), to a random cell of the region. Source cells labelled −1 stay as they are.
    """
    h, w = source_labels.shape
    th, tw = target_labels.shape
    flat_target = target_labels.reshape(-1)
    landed = flat_target[field[..., 0] * tw + field[..., 1]]
    wrong = (landed != source_labels) & (source_labels >= 0)
    if not bool(wrong.any()):
        return field
    count = int(max(source_labels.max().item(), target_labels.max().item())) + 1
    src_box = _boxes(source_labels, count)
    tgt_box = _boxes(target_labels, count)
    labels = source_labels.clamp_min(0)
    ys = torch.arange(h, device=field.device)[:, None].expand(h, w).float()
    xs = torch.arange(w, device=field.device)[None, :].expand(h, w).float()
    sb, tb = src_box[labels], tgt_box[labels]  # (H, W, 4): y0, x0, y1, x1
    scale_y = (tb[..., 2] - tb[..., 0] + 1) / (sb[..., 2] - sb[..., 0] + 1)
    scale_x = (tb[..., 3] - tb[..., 1] + 1) / (sb[..., 3] - sb[..., 1] + 1)
    ty = tb[..., 0] + (ys - sb[..., 0] + 0.5) * scale_y - 0.5
    tx = tb[..., 1] + (xs - sb[..., 1] + 0.5) * scale_x - 0.5
    placed = clamp_field(torch.stack((ty, tx), -1).round().long(), (th, tw))
    still = flat_target[placed[..., 0] * tw + placed[..., 1]] != source_labels
    # Random cells of a region: the target's cells sorted by label, a random index into the run.
    order = torch.argsort(flat_target, stable=True)
    sizes = torch.bincount(flat_target, minlength=count)
    starts = torch.cumsum(sizes, 0) - sizes
    draw = torch.rand(h, w, device=field.device, generator=generator)
    pick = starts[labels] + (draw * sizes[labels]).long().clamp_max((sizes[labels] - 1).clamp_min(0))
    cell = order[pick.clamp(0, order.numel() - 1)]
    random = torch.stack((cell // tw, cell % tw), -1)
    placed = torch.where(still.unsqueeze(-1), random, placed)
    return torch.where(wrong.unsqueeze(-1), placed, field)


def _boxes(labels: Tensor, count: int) -> Tensor:
    """(count, 4) float bounding boxes (y0, x0, y1, x1) of each label's cells (empty: 0, 0, −1, −1)."""
    h, w = labels.shape
    flat = labels.reshape(-1)
    keep = flat >= 0
    ys = torch.arange(h, device=labels.device).repeat_interleave(w)[keep].float()
    xs = torch.arange(w, device=labels.device).repeat(h)[keep].float()
    index = flat[keep]
    lo = torch.full((count, 2), float(max(h, w)), device=labels.device)
    hi = torch.full((count, 2), -1.0, device=labels.device)
    both = torch.stack((ys, xs), -1)
    lo = lo.scatter_reduce(0, index[:, None].expand(-1, 2), both, reduce="amin")
    hi = hi.scatter_reduce(0, index[:, None].expand(-1, 2), both, reduce="amax")
    return torch.cat((lo, hi), -1)


def subcell(source: Tensor, target: Tensor, field: Tensor, patch: int) -> Tensor:
    """The field with a sub-cell offset per cell: (H, W, 2) float target cells.

    A match can only name whole cells, so a true shift of 3.5 cells is found as 3 or 4, and once
    doubled on the next grid it can never become the true 7. The similarity one cell either side
    of the match, on each axis, locates the peak between cells (as sub-pixel stereo does);
    offsets are kept within half a cell and used only where the match is a peak on that axis.
    """
    tgt_hw = (target.shape[0], target.shape[1])
    scorer = PatchScorer(source, target, patch)
    best = scorer(field)
    offsets = []
    for axis in (0, 1):
        step = torch.zeros(2, dtype=field.dtype, device=field.device)
        step[axis] = 1
        below = scorer(clamp_field(field - step, tgt_hw))
        above = scorer(clamp_field(field + step, tgt_hw))
        # The similarity of shifted patches falls off like |x| near its peak, not like x², so the
        # peak is where two lines of equal and opposite slope through the three samples meet.
        drop = best - torch.minimum(below, above)
        delta = 0.5 * (above - below) / drop.clamp_min(1e-6)
        peak = (drop > 1e-6) & (best >= below) & (best >= above)
        offsets.append(torch.where(peak, delta.clamp(-0.5, 0.5), torch.zeros_like(delta)))
    return field.float() + torch.stack(offsets, dim=-1)
