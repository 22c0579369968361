"""Parameter counts and GFLOPs of a model's parts, for ``diffpose model-info`` and the benchmarks.

Convention: **GFLOPs are multiply-accumulates (MACs) / 1e9**, as the pose literature quotes them
(ViTPose-B: ~17.1 GFLOPs at 256x192). They are counted with ``torch.utils.flop_counter.FlopCounterMode``,
whose count (2 per multiply-add) is halved. Only matrix products and convolutions are counted (the
flop counter's registry); norms, activations and element-wise sums are not.

The counting runs on the ``meta`` device: shapes propagate, nothing is computed or allocated, so the
``paper`` model (~86M backbone parameters, 17 GFLOPs per frame) is measured in well under a second.
On the meta device ``scaled_dot_product_attention`` is decomposed into counted matrix products; on a
real CPU it dispatches to a fused kernel that the flop counter does not see, which is another reason to
count on meta.

What is counted is each graph of prediction (:class:`~diffpose.models.graphs.Graph`, listed by the estimator)
at batch 1, called once per frame, per clip or per denoising step of every hypothesis; a clip with ``T``
frames, ``S`` steps and ``K`` hypotheses costs ``T x per-frame + per-clip + S x K x per-step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

FLOPS_PER_MAC = 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_gflops(fn: Callable[..., Any], *args: Any) -> float:
    """GFLOPs (MACs / 1e9) of ``fn(*args)`` as counted by ``FlopCounterMode``, halved (see module docstring)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() / FLOPS_PER_MAC / 1e9


@dataclass(frozen=True)
class Part:
    """One graph's cost: ``params`` (None when its parameters are counted in another part) and ``gflops`` (GMACs
    at batch 1), paid once per ``per`` (``"frame"``, ``"clip"`` or ``"step"``)."""

    part: str
    label: str
    per: str
    params: int | None
    gflops: float


@dataclass
class Complexity:
    """The parts of one model and its total parameter count."""

    parts: list[Part]
    total_params: int

    @property
    def params(self) -> dict[str, int]:
        """``{part: parameters}`` for the parts that hold their own, then ``"total"``."""
        return {**{p.part: p.params for p in self.parts if p.params is not None}, "total": self.total_params}

    @property
    def gflops(self) -> dict[str, float]:
        """``{"<part>_per_<frame|clip|step>": GFLOPs}``, e.g. ``backbone_per_frame``."""
        return {f"{p.part}_per_{p.per}": p.gflops for p in self.parts}

    def clip_gflops(self, num_frames: int, steps: int = 1, hypotheses: int = 1) -> float:
        """GFLOPs of one clip: ``T`` per-frame parts, the per-clip parts and ``S * K`` per-step parts."""
        times = {"frame": num_frames, "clip": 1, "step": steps * hypotheses}
        return sum(times[p.per] * p.gflops for p in self.parts)
