"""The whole engine on cases with a known answer: B′ = warp(look(A)) from a real photo.

Measured on the engine of this commit (preset "balanced", working size 128, photo-to-style,
seed 0, CPU; the network run channels last, which moved the last digits of these by float
rounding); "before" is the engine of 9229ccc on the same cases:

| case                                   | PSNR A′ | PSNR B  | ≤3 px A→B′ | ≤3 px B′→A | ≤1 px A→B′ |
|----------------------------------------|---------|---------|------------|------------|------------|
| shift (7, −5) + colour, 128 px         | 33.1 dB | 33.4 dB | 0.985      | 0.976      | 0.800      |
|   before (9229ccc)                     | 19.2 dB | 18.9 dB | 0.881      | 0.852      | 0.148      |
| rotation 6° ×1.08 + colour + texture   | 23.9 dB | 28.6 dB | 0.914      | 0.860      |            |
| face: rotation −4° ×1.05 + texture     | 24.7 dB | 31.3 dB | 0.879      | 0.803      |            |
| stereo (Middlebury Motorcycle, 256 px) |         |         | 0.900      |            | 0.789      |
|   before photo → photo's blend τ = 0   |         |         | 0.857      |            | 0.669      |

What bought it (shift case, A′ dB / ≤1 px): sub-cell positions between levels 19.2 → 22.9 /
0.15 → 0.49 (the odd shift was lost at level 2), inversion start read along them 23.6, the
coherence tie-break 23.2 / ≤3 px 0.88 → 0.95, the inversion target read along them 28.2 / 0.81,
sub-pixel final vote with A′ rebuilt before the last estimate 28.9, the target averaged over
patches (as the original does) at sub-cell positions 29.1, then (after B′ → A at half α, below)
three look-invariant Lucas–Kanade steps on the working-size fields (analogy_engine.subpixel)
28.9 / 28.7 → 32.3 / 32.6 dB for A′ / B, rotation 22.5 / 24.6 → 23.8 / 27.6, face 23.6 / 27.7
→ 24.7 / 30.1. The rotation's A′ is limited by B′'s hatching in the flat backdrop, where
nothing in A says which phase is right (the true field there gives 29.9 dB). The issue's targets (shift
≥ 30 dB and ≥ 0.95 both ways; rotation + texture ≥ 26 dB and ≥ 0.85; stereo ≥ 0.9) are not all
reached yet: the tests marked xfail below hold them, so that reaching them shows as XPASS.

The fine levels' features (relu1_1, relu2_1) come from reflection-padded convolutions
(vgg.FINE_LEVELS; the deeper ones keep the network's zero padding). B′ holds content beyond A's
edges here, and with zeros A's border cells did not look like it: shift 32.19 / 32.46 dB, 0.962 /
0.933 → 33.07 / 33.44, 0.984 / 0.976 (the shift's targets reached: its thresholds below now hold
them); rotation 23.83 / 27.83, 0.907 / 0.830 → 23.92 / 28.61, 0.911 / 0.859; face 24.66 / 30.31,
0.871 / 0.764 → 24.72 / 31.22, 0.878 / 0.803; stereo 0.851 → 0.857. Reflecting every level
instead gave the cases as much but broke B's faces on the paper's pairs (sheets).

The layout prior of B′ → A's coarsest match (Preset.layout_b, against B's blotches on real
pairs) cost the shift case's B 0.2 dB and its B′ → A share 0.005 (32.66 / 0.938 before);
rotation and face are unchanged. The table above is with it and the border of
subpixel.gradients as animate/motion has it (commit of this change).

B′ → A matching B at half the blend weight (params.B_ALPHA_SCALE) cost B 0.4 / 1.0 / 0.6 dB here
(29.2 / 25.6 / 28.3 before): on these cases B′'s own features are exact, warped copies of the
answer, so the less of them the match sees, the less precise it is. On real pairs they are
strokes and paper, and seeing less of them keeps B's regions semantic (faces take skin, not a
look-alike colour elsewhere: the sheets of issue 8). At scale 0 the shift case's B fell to 24.6 dB;
0 at levels 4, 3 only took rotation's ≤3 px A→B′ to 0.863, under its threshold: neither was kept.

B′ → A's coarsest match reads 5×5 patches only on grids at least 10 cells wide
(Preset.coarsest_patch_b): these cases' 8×8 relu5_1 grids keep 3×3, so they are unchanged by
it (everywhere, it gave the shift case 32.93 / 33.42 dB, 0.989 / 0.982, ≤1 px 0.791).

Photo → photo blends at τ = 0 (params.MODE_DEFAULTS, "mask"): between two photos a weak
texture is content both hold, and with R in its place the match only followed the coarser
field — the floor in front of the motorcycle stayed matched as a flat plane. Stereo 0.857 →
0.900 (seeds 1, 2: 0.899, 0.898); the exhaustive best match of level 2's features in ±6 cells
around the final field scored 0.888 on A's and B′'s own features, 0.847 on the τ = 0.05 blends:
the blend, not the search, held it. The other cases are photo → style: unchanged.

Doing nothing scores far lower: A′ = A gives 12.7 / 12.1 / 15.2 dB, A′ = B′ 9.8 / 12.2 /
14.8 dB; the identity flow is within 3 px for 0.0 (shift) and ~0.1 (rotations) of the pixels.
The thresholds below sit ~1 dB and ~0.02 under the measured values: room for float noise
across machines, far above anything a broken engine gets.
"""

from __future__ import annotations

import dataclasses

import known_answer as ka
import numpy as np
import pytest

from analogy_engine import AnalogyParams, AnalogyResult, Engine, analogy

# Whole analogies at working size 128-256 on several cases: minutes on two cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(engine: Engine) -> dict[str, tuple[ka.Case, AnalogyResult]]:
    out = {}
    for name, make in ka.CASES.items():
        case = make()
        params = AnalogyParams(mode="photo-to-style", preset="balanced", size=ka.SIZE)
        out[name] = case, ka.run(case, params, engine)
    return out


@pytest.fixture(scope="module")
def shift(results: dict[str, tuple[ka.Case, AnalogyResult]]) -> tuple[ka.Case, AnalogyResult]:
    return results["shift"]


# (min PSNR A′, min PSNR B, min share ≤ 3 px A→B′, min share ≤ 3 px B′→A)
THRESHOLDS = {
    # At or above the issue's targets (30 dB, 0.95 both ways): reached, so held here.
    "shift": ka.Scores(32.0, 32.4, 0.96, 0.95),
    "rotation": ka.Scores(22.9, 27.6, 0.89, 0.84),
    "face": ka.Scores(23.7, 30.2, 0.86, 0.78),
}
# The issue's targets not reached yet (see the table above): rotation's A′ (23.9 of 26 dB).
TARGETS = {
    "rotation": ka.Scores(26.0, 26.0, 0.85, 0.85),
}
# Measured 0.900 (seeds 1, 2: 0.899, 0.898): the target is met on the nose, too close to hold
# across machines' float rounding, so the held threshold sits 0.02 under it.
STEREO_MIN, STEREO_TARGET = 0.88, 0.9


def test_cases_are_consistent() -> None:
    """The truths themselves: sampling B′ through the true flow gives change(A) back."""
    for name, make in ka.CASES.items():
        case = make()
        back = np.rint(ka.sample(case.b_prime, case.flow_ab.astype(np.float64)))
        limit = 90.0 if name == "shift" else 29.0  # exact for the shift; resampling blur for rotations
        assert ka.psnr(back, case.a_prime_truth, case.valid_a) > limit, name
        assert case.valid_a.mean() > 0.7 and case.valid_b.mean() > 0.7
        # The change is visible and the warp matters: copying an input scores far below the
        # thresholds (also checked against them in _check).
        assert ka.psnr(case.a, case.a_prime_truth, case.valid_a) < 16
        assert ka.psnr(case.b_prime, case.a_prime_truth, case.valid_a) < 16


def _check(name: str, case: ka.Case, result: AnalogyResult) -> None:
    assert result.a_prime.shape == case.a.shape and result.b.shape == case.b_prime.shape
    assert result.flow_ab.shape == (*case.a.shape[:2], 2)
    assert result.flow_ba.shape == (*case.b_prime.shape[:2], 2)
    scores = ka.evaluate(case, result)
    low = THRESHOLDS[name]
    message = f"{name}: {scores}"
    assert scores.share_within_3px_ab >= low.share_within_3px_ab, message
    assert scores.share_within_3px_ba >= low.share_within_3px_ba, message
    assert scores.psnr_a_prime >= low.psnr_a_prime, message
    assert scores.psnr_b >= low.psnr_b, message
    # A broken engine would not pass: the identity flow, or images that copy the inputs.
    identity_ab = ka.identity_flow(case.a.shape[:2], case.b_prime.shape[:2])
    identity_ba = ka.identity_flow(case.b_prime.shape[:2], case.a.shape[:2])
    assert ka.share_within(identity_ab, case.flow_ab, case.valid_a) < low.share_within_3px_ab - 0.3
    assert ka.share_within(identity_ba, case.flow_ba, case.valid_b) < low.share_within_3px_ba - 0.3
    for copy in (case.a, case.b_prime):
        if copy.shape == case.a.shape:
            assert ka.psnr(copy, case.a_prime_truth, case.valid_a) < low.psnr_a_prime - 4
        if copy.shape == case.b_prime.shape:
            assert ka.psnr(copy, case.b_truth, case.valid_b) < low.psnr_b - 4
    # The flows point inside the other image.
    for flow, other in ((result.flow_ab, case.b_prime), (result.flow_ba, case.a)):
        assert flow.dtype == np.float32 and np.isfinite(flow).all()
        # Pixel centres of the other image: [0, W−1] × [0, H−1] (issue 9: x was −0.5 at the edge).
        assert flow.min() >= 0 and flow[..., 0].max() <= other.shape[1] - 1
        assert flow[..., 1].max() <= other.shape[0] - 1


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_case_is_recovered(name: str, results: dict[str, tuple[ka.Case, AnalogyResult]]) -> None:
    _check(name, *results[name])


@pytest.mark.xfail(reason="issue targets not reached yet: see the module docstring", strict=False)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_case_reaches_issue_target(name: str, results: dict[str, tuple[ka.Case, AnalogyResult]]) -> None:
    scores = ka.evaluate(*results[name])
    assert all(got >= want for got, want in zip(scores, TARGETS[name], strict=True)), scores


@pytest.fixture(scope="module")
def stereo(engine: Engine) -> tuple[ka.Stereo, AnalogyResult]:
    case = ka.stereo_case(256)
    if case is None:
        pytest.skip("scikit-image (the Middlebury Motorcycle pair) is not installed")
    params = AnalogyParams(mode="photo-to-photo", preset="balanced", size=256)
    return case, analogy(case.a, case.b_prime, params, engine=engine)


def test_stereo_pair_is_matched(stereo: tuple[ka.Stereo, AnalogyResult]) -> None:
    """A real stereo pair (photo → photo): the flow follows the measured disparity (measured
    0.900). The rest are mostly the floor beside the front wheel, matched with the wheel's
    disparity (a patch's support reaches across the edge), and the shelves' repeated boxes."""
    case, result = stereo
    share = ka.share_within(result.flow_ab, case.flow_ab, case.valid_a)
    nothing = ka.identity_flow(case.a.shape[:2], case.b_prime.shape[:2])
    identity = ka.share_within(nothing, case.flow_ab, case.valid_a)
    assert share >= STEREO_MIN and identity < STEREO_MIN - 0.3, (share, identity)


@pytest.mark.xfail(reason="issue target 0.9 within 3 px: measured 0.900, seeds 0.898-0.900", strict=False)
def test_stereo_pair_reaches_issue_target(stereo: tuple[ka.Stereo, AnalogyResult]) -> None:
    case, result = stereo
    assert ka.share_within(result.flow_ab, case.flow_ab, case.valid_a) >= STEREO_TARGET


def test_flows_agree_with_each_other(shift: tuple[ka.Case, AnalogyResult]) -> None:
    """Going A → B′ → A along the two flows lands near the start for most pixels."""
    case, result = shift
    xy = np.rint(result.flow_ab).astype(int)
    h, w = case.b_prime.shape[:2]
    back = result.flow_ba[xy[..., 1].clip(0, h - 1), xy[..., 0].clip(0, w - 1)]
    grid = np.stack(np.meshgrid(np.arange(case.a.shape[1]), np.arange(case.a.shape[0])), -1)
    error = np.linalg.norm(back - grid, axis=-1)
    assert np.mean(error[case.valid_a] <= 3) >= 0.75  # measured 0.96 (0.90 before the Lucas–Kanade steps)


def test_shift_is_recovered_to_one_pixel(shift: tuple[ka.Case, AnalogyResult]) -> None:
    """Odd shifts: the sub-cell positions carry (3.5, −2.5) at level 2 to (7, −5) at level 1.
    Measured 0.799 of the pixels within 1 px (0.782 before the reflection-padded fine levels,
    0.745 before the Lucas–Kanade steps, 0.03 before sub-cell positions)."""
    case, result = shift
    error = np.linalg.norm(result.flow_ab - case.flow_ab, axis=-1)[case.valid_a]
    assert np.mean(error <= 1.0) >= 0.78


def test_custom_preset_runs_in_a_slot_and_is_restored(engine: Engine) -> None:
    original = ka.params_module.PRESETS["fast"]
    tiny = dataclasses.replace(original, name="tiny", pm_iterations=(1, 1, 1, 1, 1))
    case = ka.shift_case(4, 4, side=64)
    with ka.custom_preset(tiny) as params:
        scores = ka.score(case, dataclasses.replace(params, size=64), engine)
        assert ka.run(case, dataclasses.replace(params, size=32), engine).report["preset"] == "tiny"
    assert ka.params_module.PRESETS["fast"] is original
    assert all(np.isfinite(v) or v == float("inf") for v in scores)
