"""The measured match confidence and the colour-transfer fallback for regions without a counterpart."""

from __future__ import annotations

import torch

from analogy_engine import fallback_colour as fc
from analogy_engine import fields
from analogy_engine.reconstruct import box_filter

CPU = torch.device("cpu")


def scene(h: int = 64, w: int = 64) -> torch.Tensor:
    """A textured grey-ish structure image: stripes and a blob, values in 0.2..0.8 (3, H, W)."""
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    stripes = 0.5 + 0.2 * torch.sin(xs / 3.0) * torch.cos(ys / 5.0)
    blob = 0.15 * torch.exp(-((ys - h / 2) ** 2 + (xs - w / 3) ** 2) / 60.0)
    grey = (stripes + blob).clamp(0, 1)
    return torch.stack((grey, 0.9 * grey + 0.05, 0.8 * grey + 0.1))


def look(image: torch.Tensor) -> torch.Tensor:
    """A colour change that is affine in the structure image's colour (what the fallback can learn)."""
    m = torch.tensor([[0.2, 0.9, 0.1], [0.7, 0.1, 0.3], [0.1, 0.2, 0.5]])
    return (torch.einsum("ij,jhw->ihw", m, image) + torch.tensor([0.1, 0.0, 0.05])[:, None, None]).clamp(0, 1)


def flat_patch_rate(image: torch.Tensor, region: torch.Tensor) -> float:
    """Share of the region whose local (5×5) colour variation is nearly nil: a flat blotch."""
    variance = (box_filter(image * image, 2) - box_filter(image, 2) ** 2).sum(0)
    return float((variance[region] < 1e-5).float().mean())


def test_weight_is_a_smooth_step() -> None:
    conf = torch.tensor([-1.0, fc.LOW, (fc.LOW + fc.HIGH) / 2, fc.HIGH, 1.0])
    keep = fc.weight(conf)
    assert keep.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_round_trip_and_confidence_of_consistent_fields() -> None:
    """Fields that are inverses of each other come back where they started: confidence 1."""
    forward = fields.identity_field((16, 20), (16, 20), CPU).float() + torch.tensor([0.0, 0.0])
    assert torch.equal(fc.round_trip(forward, forward), forward)
    features = torch.rand(8, 4, 5, generator=torch.Generator().manual_seed(0))
    conf = fc.confidence(features, forward, forward)
    assert conf.shape == (16, 20)
    assert torch.allclose(conf, torch.ones_like(conf), atol=1e-5)


def test_confidence_is_low_where_the_round_trip_lands_somewhere_unlike() -> None:
    """Left half: textured; right half: another kind. Right-half cells matched to a target whose
    own match sends them back into the left half (no counterpart) get a low confidence."""
    h, w = 16, 16
    features = torch.zeros(4, h, w)
    features[0, :, : w // 2] = 1.0
    features[1, :, w // 2 :] = 1.0
    identity = fields.identity_field((h, w), (h, w), CPU).float()
    backward = identity.clone()
    backward[:, w // 2 :, 1] = 2.0  # every target cell of the right half leads back to column 2
    conf = fc.confidence(features, identity, backward)
    assert conf[:, : w // 2].min() > 0.99
    assert conf[:, w // 2 + 1 :].max() < 0.0


def test_confidence_from_the_gram_matrix_is_the_sampled_one(monkeypatch) -> None:
    """The two ways of computing it (the feature cells' Gram matrix, and sampling every channel
    at both ends, here 5 rows at a time) agree on random deep features and fields reaching past
    the borders."""
    monkeypatch.setattr(fc, "SAMPLED_FLOATS", 64 * 36 * 5)
    g = torch.Generator().manual_seed(4)
    features = torch.relu(torch.randn(64, 13, 9, generator=g))
    forward = torch.rand(52, 36, 2, generator=g) * torch.tensor([60.0, 44.0]) - 4
    backward = torch.rand(52, 36, 2, generator=g) * torch.tensor([58.0, 40.0]) - 3
    by_gram = fc.confidence(features, forward, backward, gram_cells=13 * 9)
    sampled = fc.confidence(features, forward, backward, gram_cells=0)
    assert sampled.std() > 0.1  # far from constant: a real comparison
    torch.testing.assert_close(by_gram, sampled, rtol=0, atol=1e-5)


def test_high_confidence_regions_are_unchanged() -> None:
    guide = scene()
    result = look(guide) * 0.7 + 0.1 * torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    conf = torch.ones(64, 64)
    out = fc.fill(guide, result, conf)
    assert torch.allclose(out, result, atol=1e-6)


def test_region_without_counterpart_gets_the_transferred_colour_without_flat_patches() -> None:
    """The right third was matched to one flat colour (a blotch) and has a low confidence: it
    takes the colour the confident matches taught (the look of its own structure), with its
    own texture, and the confident part stays as it was."""
    guide = scene()
    truth = look(guide)
    result = truth.clone()
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[:, 44:] = True
    result[:, region] = torch.tensor([0.95, 0.95, 0.9])[:, None]  # a white blotch
    conf = torch.where(region, torch.tensor(-0.2), torch.tensor(0.95))
    assert flat_patch_rate(result, region) > 0.85  # all but the 2 columns next to the edge
    out = fc.fill(guide, result, conf)
    inner = region.clone()
    inner[:, 44:48] = False  # the soft edge of the blend
    error_before = (result - truth).abs()[:, inner].mean()
    error_after = (out - truth).abs()[:, inner].mean()
    assert error_after < 0.05 < 0.3 < error_before, (error_before, error_after)  # measured 0.03, 0.37
    assert flat_patch_rate(out, inner) < 0.05
    keep = torch.zeros(64, 64, dtype=torch.bool)
    keep[:, :40] = True
    assert torch.allclose(out[:, keep], result[:, keep], atol=1e-6)


def test_fit_works_at_a_smaller_size_and_applies_at_full_resolution() -> None:
    """Models fitted on the working grid recolour the full-size guide, keeping its fine detail."""
    big = scene(128, 96)
    truth = look(big)
    conf = torch.ones(32, 24)
    out = fc.colour_transfer(big, truth, conf, (32, 24))
    assert out.shape == big.shape
    assert (out - truth).abs().mean() < 0.03


def test_no_confident_pixel_anywhere_still_gives_a_finite_image() -> None:
    guide = scene(32, 32)
    result = torch.full((3, 32, 32), 0.5)
    out = fc.fill(guide, result, torch.full((32, 32), -1.0))
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
