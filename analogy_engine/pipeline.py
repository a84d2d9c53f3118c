"""Deep Image Analogy end to end: features → match → invert → reconstruct.

`analogy(a, b_prime, params)` returns A′ (A's structure, B′'s look) and B (B′'s structure, A's
look) at the inputs' full resolution, with both fields and per-pixel match confidences.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import match
from .imageio import check_size
from .invert import invert
from .params import (
    AnalogyParams,
    ParamsError,
    Settings,
    resolve,
    working_size,
)
from .reconstruct import refine, vote, warp
from .types import AnalogyResult, CancelFn, Cancelled, InputError, ProgressFn
from .upscale import upscale
from .vgg import CHANNELS, VGG19, preprocess

MASK_THRESHOLD = 0.05  # of the min–max-normalised squared feature magnitude (the paper's τ)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device 'cuda' was asked for but this PyTorch sees no CUDA GPU; use auto or cpu")
    return torch.device(name)


@dataclass
class Engine:
    """The loaded network on one device; load once, run many analogies."""

    vgg: VGG19
    device: torch.device

    @classmethod
    def load(cls, device: str = "auto") -> Engine:
        dev = pick_device(device)
        if dev.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        engine = cls(vgg=VGG19.pretrained(dev), device=dev)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One tiny forward and backward pass, so that the first real job does not pay the
        one-time set-up of the convolution kernels (seconds on a CPU) while the user waits."""
        x = torch.zeros(1, 3, 32, 32, device=self.device, requires_grad=True)
        with torch.enable_grad():
            self.vgg.run(x, 0, 5).sum().backward()

    def serves(self, device: str) -> bool:
        return device == "auto" or self.device.type == device


def check_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(f"{name} must be a uint8 numpy array")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{name} must have shape (height, width, 3), got {image.shape}")
    check_size(image.shape[1], image.shape[0], name)


class _Work:
    """Progress over weighted units of work; also the place where cancellation is polled."""

    def __init__(self, total: float, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self.total = max(total, 1e-9)
        self.done = 0.0
        self.stage = "starting"
        self.progress = progress
        self.cancel = cancel
        self.last_report = 0.0

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled")

    def begin(self, stage: str) -> None:
        self.stage = stage
        self._report(force=True)

    def add(self, units: float) -> None:
        self.done = min(self.total, self.done + units)
        self._report()

    def _report(self, force: bool = False) -> None:
        self.check()
        now = time.monotonic()
        if self.progress is not None and (force or now - self.last_report > 0.05):
            self.last_report = now
            self.progress(min(1.0, self.done / self.total), self.stage)


@dataclass
class _Timer:
    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


def _to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1).float().div_(255.0)


def _to_numpy(image: Tensor) -> np.ndarray:
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def _resize(image: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(image.shape[1:]) == hw:
        return image
    return F.interpolate(image[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]


def _blend_weight(features: Tensor, alpha: float) -> Tensor:
    """W = α·M with M = 1 where the normalised squared magnitude reaches the threshold."""
    magnitude = features.pow(2).sum(0, keepdim=True)
    low, high = magnitude.min(), magnitude.max()
    normalised = (magnitude - low) / (high - low).clamp_min(1e-12)
    return alpha * (normalised >= MASK_THRESHOLD).to(features.dtype)


def _hw(t: Tensor) -> tuple[int, int]:
    return (t.shape[-2], t.shape[-1])


def _plan(settings: Settings, vgg: VGG19, a_hw: tuple[int, int], b_hw: tuple[int, int]) -> dict:
    """Work units per stage, in multiply-adds, so the progress bar moves at an even pace."""
    preset = settings.preset
    units: dict = {"features": 2 * vgg.flops(0, 5, *a_hw) + vgg.flops(0, 5, *b_hw), "match": {}, "invert": {}}
    for i, level in enumerate(range(5, 0, -1)):
        scale = 2 ** (level - 1)
        for name, src, tgt in (("ab", a_hw, b_hw), ("ba", b_hw, a_hw)):
            hw = (src[0] // scale, src[1] // scale)
            radius = preset.search_radii[i] or max(tgt[0] // scale, tgt[1] // scale)
            n = match.count_candidates(hw, preset.pm_iterations[i], radius, preset.propagation_jumps[i])
            dims = min(preset.match_dims[i] or 2 * CHANNELS[level], 2 * CHANNELS[level])
            # Gathers run at about 1/40 of a convolution's multiply-add rate, and each of the k²
            # gathers has a fixed cost of some tens of microseconds (measured on CPU).
            per = preset.patch_sizes[i] ** 2 * (hw[0] * hw[1] * dims * 40 + 2e6)
            units["match"][(level, name)] = (n + 1, per)
            if level > 1:
                depth = min(preset.invert_depth[i], level)
                low = level - depth
                low_hw = (src[0] // 2 ** max(low - 1, 0), src[1] // 2 ** max(low - 1, 0))
                evals = max(1, preset.lbfgs_iterations[i] * 5 // 4)
                units["invert"][(level, name)] = (evals, 3 * vgg.flops(low, level, *low_hw))
    return units


def analogy(
    a: np.ndarray,
    b_prime: np.ndarray,
    params: AnalogyParams | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    engine: Engine | None = None,
) -> AnalogyResult:
    """Deep Image Analogy of A (content) and B′ (reference), both (H, W, 3) uint8 RGB.

    Raises InputError/ParamsError for unusable input (nothing is computed), Cancelled when
    `cancel()` returns True (polled about every pass of the network).
    """
    params = params if params is not None else AnalogyParams()
    settings = resolve(params)
    preset = settings.preset
    check_image(a, "A")
    check_image(b_prime, "B′")
    if engine is None or not engine.serves(params.device):
        engine = Engine.load(params.device)
    vgg, device = engine.vgg, engine.device
    timer = _Timer(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(params.seed)

    a_full, b_full = _to_tensor(a, device), _to_tensor(b_prime, device)
    a_hw = working_size(*a.shape[:2], params.size, settings.ratio)
    b_hw = working_size(*b_prime.shape[:2], params.size, settings.ratio)
    plan = _plan(settings, vgg, a_hw, b_hw)
    total = plan["features"] + sum(n * per for n, per in plan["match"].values())
    total += sum(n * per for n, per in plan["invert"].values())
    reconstruct_units = 0.05 * total
    work = _Work(total + reconstruct_units, progress, cancel)

    with torch.no_grad():
        work.begin("features")
        t = time.perf_counter()
        a_small, b_small = _resize(a_full, a_hw), _resize(b_full, b_hw)
        feat_a = [f[0] for f in vgg.features(preprocess(a_small[None]))]
        work.check()
        feat_bp = [f[0] for f in vgg.features(preprocess(b_small[None]))]
        work.add(plan["features"])
        t = timer.add("features", t)

        # The unknown images' features: A′ and B start as copies of A and B′ at the top level.
        feat_ap: dict[int, Tensor] = {5: feat_a[5]}
        feat_b: dict[int, Tensor] = {5: feat_bp[5]}
        field_ab = match.identity_field(_hw(feat_a[5]), _hw(feat_bp[5]), device)
        field_ba = match.identity_field(_hw(feat_bp[5]), _hw(feat_a[5]), device)
        sim_ab = sim_ba = None

        for i, level in enumerate(range(5, 0, -1)):
            patch = preset.patch_sizes[i]
            work.check()
            stack_a, stack_b = match.project(
                match.stack_pairs(feat_a[level], feat_ap[level]),
                match.stack_pairs(feat_b[level], feat_bp[level]),
                preset.match_dims[i],
            )
            fields = {}
            for name, src, tgt, init in (
                ("ab", stack_a, stack_b, field_ab),
                ("ba", stack_b, stack_a, field_ba),
            ):
                n, per = plan["match"][(level, name)]
                work.begin(f"matching level {level} ({'A→B′' if name == 'ab' else 'B′→A'})")
                radius = preset.search_radii[i] or max(tgt.shape[0], tgt.shape[1])
                fields[name] = match.patchmatch(
                    src, tgt, init, patch, preset.pm_iterations[i], radius,
                    preset.propagation_jumps[i], generator, step=lambda per=per: work.add(per),
                )
            (field_ab, sim_ab), (field_ba, sim_ba) = fields["ab"], fields["ba"]
            t = timer.add("matching", t)
            if level == 1:
                break

            # R at level − 1 from the other image's features warped through the field, blended with
            # the image's own features where they are strong (structure kept, detail transferred).
            alpha = settings.alphas[i]
            depth = min(preset.invert_depth[i], level)
            for name, fld, own, other, out in (
                ("ab", field_ab, feat_a, feat_bp, feat_ap),
                ("ba", field_ba, feat_bp, feat_a, feat_b),
            ):
                n, per = plan["invert"][(level, name)]
                work.begin(f"inverting level {level} → {level - 1} ({'A′' if name == 'ab' else 'B'})")
                target = vote(other[level], fld, patch)
                low = level - depth
                start_field = match.upsample_field(fld, _hw(own[low]), _hw(other[low]), _hw(other[level]))
                start = warp(other[low], start_field)
                r = invert(
                    vgg, target, start, level, depth, preset.lbfgs_iterations[i], preset.lbfgs_history,
                    step=lambda _evals, per=per: work.add(per),
                )
                work.check()
                weight = _blend_weight(own[level - 1], alpha)
                out[level - 1] = own[level - 1] * weight + r * (1 - weight)
            t = timer.add("inversion", t)
            field_ab = match.upsample_field(
                field_ab, _hw(feat_a[level - 1]), _hw(feat_bp[level - 1]), _hw(feat_bp[level])
            )
            field_ba = match.upsample_field(
                field_ba, _hw(feat_bp[level - 1]), _hw(feat_a[level - 1]), _hw(feat_a[level])
            )

        work.begin("reconstructing at full resolution")
        outputs = {}
        for name, fld, src_full, tgt_full, tgt_hw, sim in (
            ("ab", field_ab, a_full, b_full, b_hw, sim_ab),
            ("ba", field_ba, b_full, a_full, a_hw, sim_ba),
        ):
            flow, image = upscale(fld, tgt_hw, _hw(src_full), tgt_full, preset.full_res_patch, work.check)
            if settings.refine:
                image = refine(src_full, image, step=work.check)
            confidence = F.interpolate(
                sim[None, None], size=_hw(src_full), mode="bilinear", align_corners=False
            )[0, 0].clamp(0, 1)
            outputs[name] = (image, flow, confidence)
            work.add(reconstruct_units / 2)
        timer.add("reconstruction", t)

    total_seconds = time.perf_counter() - started
    (a_prime, flow_ab, conf_a), (b_img, flow_ba, conf_b) = outputs["ab"], outputs["ba"]
    report = {
        "params": params.to_dict(),
        "preset": preset.name,
        "alphas": list(settings.alphas),
        "ratio": settings.ratio,
        "refine": settings.refine,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "input_size": {"a": [a.shape[1], a.shape[0]], "b_prime": [b_prime.shape[1], b_prime.shape[0]]},
        "working_size": {"a": [a_hw[1], a_hw[0]], "b_prime": [b_hw[1], b_hw[0]]},
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "total_seconds": round(total_seconds, 3),
        "peak_memory_mb": _peak_memory_mb(device),
        "torch": torch.__version__,
    }
    if progress is not None:
        progress(1.0, "done")
    return AnalogyResult(
        a_prime=_to_numpy(a_prime),
        b=_to_numpy(b_img),
        flow_ab=_flow_xy(flow_ab),
        flow_ba=_flow_xy(flow_ba),
        confidence_a_prime=conf_a.float().cpu().numpy(),
        confidence_b=conf_b.float().cpu().numpy(),
        report=report,
    )


def _flow_xy(flow_yx: Tensor) -> np.ndarray:
    return np.ascontiguousarray(flow_yx.flip(-1).float().cpu().numpy(), dtype=np.float32)


def _peak_memory_mb(device: torch.device) -> dict[str, float]:
    peak = {"process_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        peak["cuda_allocated"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak

