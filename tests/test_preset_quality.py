"""The default preset must match `faithful` (the original's parameters) in quality.

Issue targets: PSNR of A′ and B within 0.5 dB of `faithful` and the share of pixels matched
within 3 px within 2 points, on the known-answer cases (B′ = warp(change(A)), truth known).
Measured at working size 96 (faithful ≈ 13 s a case on 2 cores), photo-to-style, seed 0:

    case      preset     PSNR A′  PSNR B  ≤3px A→B′  ≤3px B′→A
    shift     faithful   16.50    16.43   0.850      0.845
    shift     balanced   16.43    16.51   0.878      0.859
    rotation  faithful   20.40    19.45   0.782      0.744
    rotation  balanced   20.38    19.58   0.818      0.784
"""

from __future__ import annotations

import pytest
from known_answer import CASES, score

from analogy_engine import AnalogyParams, Engine

SIZE = 96


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load("cpu")


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_balanced_matches_faithful(case_name: str, engine: Engine) -> None:
    case = CASES[case_name]()
    faithful = score(case, AnalogyParams(mode="photo-to-style", preset="faithful", size=SIZE), engine)
    balanced = score(case, AnalogyParams(mode="photo-to-style", preset="balanced", size=SIZE), engine)
    report = f"faithful {faithful}, balanced {balanced}"
    assert balanced.psnr_a_prime >= faithful.psnr_a_prime - 0.5, report
    assert balanced.psnr_b >= faithful.psnr_b - 0.5, report
    assert balanced.share_within_3px_ab >= faithful.share_within_3px_ab - 0.02, report
    assert balanced.share_within_3px_ba >= faithful.share_within_3px_ba - 0.02, report
