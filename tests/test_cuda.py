"""The engine on a CUDA GPU: the same answers as on the CPU, reproducible, and usable from the
CLI and the engine process. Skipped without a CUDA device (marker `gpu`, tests/conftest.py).

The whole-engine tests also run on a GPU with their CPU thresholds:
`DIA_TEST_DEVICE=cuda pytest -m slow tests/test_known_answer.py tests/test_animate.py …`
(the session's `engine` fixture loads VGG-19 on that device).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import known_answer as ka
import numpy as np
import pytest
import torch
from test_known_answer import THRESHOLDS

from analogy_engine import AnalogyParams, Engine, analogy
from analogy_engine.imageio import load_image
from analogy_engine.vgg import preprocess

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[1]
# Convolutions on CUDA run in TF32 by default (cuDNN's allow_tf32): about 10 bits of mantissa per
# product, so features five blocks deep differ from the CPU's float32 ones by ~1e-3 relative.
FEATURE_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def cuda_engine() -> Engine:
    return Engine.load("cuda")


def test_features_agree_with_the_cpu(engine: Engine, cuda_engine: Engine) -> None:
    image = load_image(REPO / "examples" / "a.jpg", "A")[:224, :224]
    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    cpu_engine = engine if engine.device.type == "cpu" else Engine.load("cpu")
    with torch.no_grad():
        on_cpu = cpu_engine.vgg.features(preprocess(rgb))
        on_cuda = cuda_engine.vgg.features(preprocess(rgb.cuda()))
    for level, (cpu, gpu) in enumerate(zip(on_cpu, on_cuda, strict=True)):
        error = float((gpu.cpu() - cpu).norm() / cpu.norm())
        assert error < FEATURE_TOLERANCE, f"level {level}: relative difference {error:.2e}"


@pytest.mark.parametrize("name", ["shift", "rotation", "face"])
def test_known_answers_hold_on_cuda(cuda_engine: Engine, name: str) -> None:
    """The CPU's thresholds (tests/test_known_answer.py), on the GPU: its random numbers differ
    from the CPU's, so the results do too, but not their quality."""
    case = ka.CASES[name]()
    result = ka.run(case, AnalogyParams(mode="photo-to-style", preset="balanced", size=ka.SIZE), cuda_engine)
    scores = ka.evaluate(case, result)
    assert result.report["device"] == "cuda"
    for got, least, what in zip(scores, THRESHOLDS[name], scores._fields, strict=True):
        assert got >= least, f"{name} {what}: {got:.3f} < {least} ({scores})"


def test_same_seed_gives_the_same_result_on_cuda(cuda_engine: Engine) -> None:
    """A user re-running a job with its seed gets the same layers, on the GPU as on the CPU."""
    case = ka.shift_case(side=96)
    params = AnalogyParams(mode="photo-to-style", preset="fast", size=96, seed=5)
    first, second = (analogy(case.a, case.b_prime, params, engine=cuda_engine) for _ in range(2))
    np.testing.assert_array_equal(first.a_prime, second.a_prime)
    np.testing.assert_array_equal(first.b, second.b)
    np.testing.assert_array_equal(first.flow_ab, second.flow_ab)


def test_report_holds_the_gpu_memory_peak(cuda_engine: Engine) -> None:
    case = ka.shift_case(side=96)
    result = analogy(case.a, case.b_prime, AnalogyParams(preset="fast", size=96), engine=cuda_engine)
    assert result.report["device_name"] == torch.cuda.get_device_name(0)
    assert result.report["peak_memory_mb"]["cuda_allocated"] > 50  # VGG-19 alone is ~80 MB


def test_cli_runs_on_cuda(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "analogy_engine", str(REPO / "examples" / "a.jpg"),
         str(REPO / "examples" / "b_prime.png"), "--out", str(tmp_path),
         "--size", "128", "--preset", "fast", "--device", "cuda"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["device"] == "cuda"
    for name in ("a_prime.png", "b.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_engine_process_runs_a_job_on_cuda(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from server_harness import Engine as EngineProcess

    case = ka.shift_case(side=96)
    server = EngineProcess(tmp_path, "--device", "cuda").start(timeout=120)
    try:
        assert server.health()["device"] == "cuda"
        job = server.job(case.a, case.b_prime, {"size": 96, "preset": "fast"})
        status, _ = server.wait(job, timeout=120)
        assert status["state"] == "done", status
        a_prime = server.result(job, "a_prime")
        assert a_prime.shape[:2] == case.a.shape[:2]
        assert ka.psnr(a_prime[..., :3], case.a_prime_truth, case.valid_a) > 25
    finally:
        assert server.stop() == 0, server.log()
