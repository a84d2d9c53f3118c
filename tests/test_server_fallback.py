"""The out-of-memory fallback plan, in process with a simulated GPU (no CUDA on the test machine)."""

from __future__ import annotations

import pytest
import torch

from analogy_engine import AnalogyParams
from server.fallback import Attempt, plan, run_with_fallback

SHAPES = [(1200, 1600), (900, 900)]


def fake_gpu(fits_size: int | None):
    """A `run` that behaves like a GPU on which only working sizes ≤ fits_size fit (None: none)."""
    calls: list[Attempt] = []

    def run(attempt: Attempt) -> str:
        calls.append(attempt)
        size = attempt.params.size or 700
        if attempt.device == "cuda" and (fits_size is None or size > fits_size):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return f"ran {attempt.device} {size}"

    return run, calls


def test_plan_shrinks_then_moves_to_cpu() -> None:
    attempts = plan(AnalogyParams(), "cuda", SHAPES)
    assert [(a.device, a.params.size) for a in attempts] == [
        ("cuda", None),
        ("cuda", 480),
        ("cuda", 336),
        ("cpu", None),
    ]
    assert attempts[0].degraded is None
    assert attempts[-1].params.device == "cpu"
    assert "ran at working size 480" in attempts[1].degraded


def test_plan_counts_the_ratio_in_messages() -> None:
    attempts = plan(AnalogyParams(mode="style-to-photo", size=512, ratio=0.5), "cuda", SHAPES)
    assert "at working size 256; ran at working size 176" in attempts[1].degraded


def test_plan_on_cpu_has_no_device_fallback() -> None:
    assert all(a.device == "cpu" for a in plan(AnalogyParams(size=64), "cpu", SHAPES))
    assert len(plan(AnalogyParams(size=32), "cpu", SHAPES)) == 1  # nothing smaller than the minimum


def test_no_fallback_when_it_fits() -> None:
    run, calls = fake_gpu(fits_size=10_000)
    assert run_with_fallback(run, AnalogyParams(), "cuda", SHAPES) == ("ran cuda 700", None)
    assert len(calls) == 1


def test_smaller_working_size_after_oom() -> None:
    run, calls = fake_gpu(fits_size=500)
    retried: list[Attempt] = []
    result, degraded = run_with_fallback(run, AnalogyParams(), "cuda", SHAPES, on_retry=retried.append)
    assert result == "ran cuda 480"
    assert "out of GPU memory" in degraded and "480" in degraded
    assert retried == calls[1:]


def test_cpu_after_all_gpu_attempts_fail() -> None:
    run, calls = fake_gpu(fits_size=None)
    result, degraded = run_with_fallback(run, AnalogyParams(seed=7), "cuda", SHAPES)
    assert result == "ran cpu 700"
    assert "on the CPU" in degraded
    assert calls[-1].params.seed == 7 and calls[-1].params.size is None


def test_other_errors_are_not_retried() -> None:
    calls = []

    def run(attempt: Attempt) -> str:
        calls.append(attempt)
        raise ValueError("bad")

    with pytest.raises(ValueError):
        run_with_fallback(run, AnalogyParams(), "cuda", SHAPES)
    assert len(calls) == 1


def test_last_oom_propagates() -> None:
    def run(attempt: Attempt) -> str:
        raise torch.cuda.OutOfMemoryError("always")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_fallback(run, AnalogyParams(size=64), "cpu", SHAPES)
