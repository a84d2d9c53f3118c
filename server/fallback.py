"""Out of GPU memory: retry at a smaller working size, then on the CPU, and say what changed."""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from analogy_engine import AnalogyParams, AnalogyResult
from analogy_engine.params import MIN_SIZE, effective_size, resolve

log = logging.getLogger("server.fallback")

SHRINK = (0.7, 0.5)  # working-size factors tried on the same device before the CPU


@dataclass(frozen=True)
class Attempt:
    params: AnalogyParams
    device: str  # "cpu" or "cuda"
    degraded: str | None  # what this attempt changed, for the job status and report


def plan(params: AnalogyParams, device: str, shapes: list[tuple[int, int]]) -> list[Attempt]:
    attempts = [Attempt(params, device, None)]
    side = effective_size(params, shapes)
    ratio = resolve(params).ratio
    tried = {side}
    for factor in SHRINK:
        smaller = max(MIN_SIZE, int(side * factor) // 16 * 16)
        if smaller in tried:
            continue
        tried.add(smaller)
        note = (
            f"out of GPU memory at working size {round(side * ratio)}; "
            f"ran at working size {round(smaller * ratio)} instead"
        )
        attempts.append(Attempt(dataclasses.replace(params, size=smaller), device, note))
    if device != "cpu":
        cpu = dataclasses.replace(params, device="cpu")
        attempts.append(
            Attempt(cpu, "cpu", "out of GPU memory even at a smaller working size; ran on the CPU")
        )
    return attempts


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_fallback(
    run: Callable[[Attempt], AnalogyResult],
    params: AnalogyParams,
    device: str,
    shapes: list[tuple[int, int]],
    on_retry: Callable[[Attempt], None] | None = None,
) -> tuple[AnalogyResult, str | None]:
    """Run the first attempt; after each CUDA out-of-memory, the next one. Other errors propagate."""
    attempts = plan(params, device, shapes)
    for index, attempt in enumerate(attempts):
        try:
            return run(attempt), attempt.degraded
        except torch.cuda.OutOfMemoryError as error:
            if index + 1 == len(attempts):
                raise
            log.warning(
                "CUDA out of memory (%s); trying: %s",
                str(error).splitlines()[0][:200],
                attempts[index + 1].degraded,
            )
        # Outside the except block so the traceback (and the tensors it pins) is released first.
        free_memory()
        if on_retry is not None:
            on_retry(attempts[index + 1])
    raise AssertionError("unreachable")  # the loop returns or raises
