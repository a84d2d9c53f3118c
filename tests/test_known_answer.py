"""The whole engine on cases with a known answer: B′ = warp(change(A)) from a real photo.

Measured with the engine of commits 8f56eb9 and cc3b119 (same numbers; preset "fast", working size
128, seed 0; CPU):

| case                         | mode           | PSNR A′ | PSNR B | ≤3 px A→B′ | ≤3 px B′→A |
|------------------------------|----------------|---------|--------|------------|------------|
| shift (7, −5), 128 px        | photo-to-photo | 23.5 dB | 23.3 dB | 0.815     | 0.804      |
| rotation 6° ×1.06, 160 px    | photo-to-style | 20.1 dB | 19.4 dB | 0.718     | 0.692      |
| (rotation, photo-to-photo)   |                | 23.8 dB | 24.2 dB |           |            |
| (balanced, photo-to-photo)   | shift          | 24.3 dB | 23.9 dB | 0.824     | 0.817      |
| (balanced, photo-to-photo)   | rotation       | 24.6 dB | 25.3 dB | 0.805     | 0.765      |

Doing nothing scores far lower: A′ = A gives 12.7 / 12.2 dB, A′ = B′ 9.8 / 12.6 dB, B = B′
12.4 / 12.2 dB; the identity flow (what an engine that matches nothing answers) is within 3 px
for 0.0 / 0.0 (shift) and 0.09 / 0.09 (rotation) of the pixels. The thresholds below sit ~0.1
(shares) and ~2.5 dB (PSNR) under the measured values — room for the presets' ongoing tuning,
far above anything a broken engine gets.
"""

from __future__ import annotations

import dataclasses

import known_answer as ka
import numpy as np
import pytest

from analogy_engine import AnalogyParams, AnalogyResult, Engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load("cpu")


@pytest.fixture(scope="module")
def shift(engine: Engine) -> tuple[ka.Case, AnalogyResult]:
    case = ka.CASES["shift"]()
    return case, ka.run(case, AnalogyParams(mode="photo-to-photo", preset="fast", size=ka.SIZE), engine)


@pytest.fixture(scope="module")
def rotation(engine: Engine) -> tuple[ka.Case, AnalogyResult]:
    case = ka.CASES["rotation"]()
    return case, ka.run(case, AnalogyParams(mode="photo-to-style", preset="fast", size=ka.SIZE), engine)


# (min PSNR A′, min PSNR B, min share ≤ 3 px A→B′, min share ≤ 3 px B′→A)
THRESHOLDS = {
    "shift": ka.Scores(21.0, 21.0, 0.70, 0.70),
    "rotation": ka.Scores(17.5, 17.0, 0.60, 0.58),
}


def test_cases_are_consistent() -> None:
    """The truths themselves: sampling B′ through the true flow gives change(A) back."""
    for name, make in ka.CASES.items():
        case = make()
        back = np.rint(ka.sample(case.b_prime, case.flow_ab.astype(np.float64)))
        limit = 90.0 if name == "shift" else 28.0  # exact for the shift; resampling blur for rotation
        assert ka.psnr(back, case.a_prime_truth, case.valid_a) > limit, name
        assert case.valid_a.mean() > 0.7 and case.valid_b.mean() > 0.7
        # The change is visible and the warp matters.
        assert ka.psnr(case.a, case.a_prime_truth, case.valid_a) < 14
        assert ka.psnr(case.b_prime, case.a_prime_truth, case.valid_a) < 14


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
        assert flow.min() >= -0.5 and flow[..., 0].max() <= other.shape[1] - 0.5
        assert flow[..., 1].max() <= other.shape[0] - 0.5


def test_shift_is_recovered(shift: tuple[ka.Case, AnalogyResult]) -> None:
    _check("shift", *shift)


def test_rotation_and_scale_are_recovered(rotation: tuple[ka.Case, AnalogyResult]) -> None:
    _check("rotation", *rotation)


def test_flows_agree_with_each_other(shift: tuple[ka.Case, AnalogyResult]) -> None:
    """Going A → B′ → A along the two flows lands near the start for most pixels."""
    case, result = shift
    xy = np.rint(result.flow_ab).astype(int)
    h, w = case.b_prime.shape[:2]
    back = result.flow_ba[xy[..., 1].clip(0, h - 1), xy[..., 0].clip(0, w - 1)]
    grid = np.stack(np.meshgrid(np.arange(case.a.shape[1]), np.arange(case.a.shape[0])), -1)
    error = np.linalg.norm(back - grid, axis=-1)
    assert np.mean(error[case.valid_a] <= 3) >= 0.75  # measured 0.90


@pytest.mark.xfail(
    reason="odd shifts are only recovered to ±1 px: the level-2 field can only hold even pixel "
    "shifts, and at level 1 the blended features (A′ = 0.2·A + 0.8·warp(B′), B likewise) make the "
    "upsampled field a fixed point of PatchMatch, so the true (7, −5) loses to (8, −4) "
    "(level-1 mean patch similarity 0.978 for the found field vs 0.889 for the true one). "
    "Measured: 3 % of pixels within 1 px, 81 % within 3 px.",
    strict=False,
)
def test_shift_is_recovered_to_one_pixel(shift: tuple[ka.Case, AnalogyResult]) -> None:
    case, result = shift
    error = np.linalg.norm(result.flow_ab - case.flow_ab, axis=-1)[case.valid_a]
    assert np.mean(error <= 1.0) >= 0.7


def test_custom_preset_runs_in_a_slot_and_is_restored(engine: Engine) -> None:
    original = ka.params_module.PRESETS["fast"]
    tiny = dataclasses.replace(original, name="tiny", pm_iterations=(1, 1, 1, 1, 1))
    case = ka.shift_case(4, 4, side=64)
    with ka.custom_preset(tiny) as params:
        scores = ka.score(case, dataclasses.replace(params, size=64), engine)
        assert ka.run(case, dataclasses.replace(params, size=32), engine).report["preset"] == "tiny"
    assert ka.params_module.PRESETS["fast"] is original
    assert all(np.isfinite(v) or v == float("inf") for v in scores)
