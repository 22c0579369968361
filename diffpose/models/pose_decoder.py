"""Pose-Decoder ``f(x_t, cond, t) -> x0_hat`` (method §2.3), split into "build once, query many".

:meth:`PoseDecoder.prepare` builds the x_t-independent condition pyramid once per clip (RAFT's
``CorrBlock`` structure); :meth:`PoseDecoder.forward` runs once per denoising step::

    x_t (B, J, H, W) --3x3 conv--> (B, c, H, W) --FiLM(t)--> xbar_3            # (a) step rescaling
    xbar_3 --conv s2--> xbar_2 (B, c, H/2, W/2) --conv s2--> xbar_1 (B, c, h, w)   # (b) heatmap pyramid
    cond (B, C, h, w) --1x1--> F_1 (B, C1, h, w) --deconv--> F_2 (B, C2, 2h, 2w)
                                              --deconv--> F_3 (B, C3, 4h, 4w)  # (b) condition pyramid
    out_j = LMSFI_j(xbar_j, F_j), each brought to (B, C3, H, W)                # (c) j = 1 transformer, 2-3 conv
    x0_hat = Conv3x3(out_1 + out_2 + out_3) -> (B, J, H, W)                    # (d)

With ``step="light"`` (see :mod:`diffpose.models.lmsfi`, "The light step") the per-step path is cheaper: a 1x1
heat embedding, depthwise-separable stride-2 downsampling, and scales that keep their own resolution, merged
top-down with one deconvolution unit per x2 (``y = out_3 + Up_3(out_2 + Up_2(out_1))``, as a feature pyramid
network) instead of an Up stack per scale; the per-clip pyramid then also holds the masked half of each
scale's first Fuse layer.

The heatmap must be 4x the token grid (``H = 4h``, ``W = 4w``), as in the paper (64x48 vs 16x12).
The decoder never sees a noise schedule, only the step number ``t``. What it predicts (``predicts``):

* ``"signal"``: ``x0`` in the diffused signal space ``(2h - 1) * s`` (the first checkpoints);
* ``"heatmap"``: ``x0`` as heatmaps in ``[0, 1]``, with the output layer starting at the background (weights
  ``N(0, 0.001)``, bias 0, as ViTPose's head): a signal-space output layer with the default initialisation
  starts at heatmap 0.5 everywhere, a first loss ~30x that of predicting the empty heatmap.

With ``self_condition`` (needs ``"heatmap"``) the decoder also reads its previous estimate of ``x0`` (a heatmap;
zeros at the first DDIM step), concatenated to ``x_t``: trained on its own estimates half of the time, it
learns to correct them instead of trusting ``x_t`` built from the ground truth (Chen et al. 2023, "Analog
Bits"). See :meth:`PoseDecoder.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from diffpose.errors import DiffPoseError
from diffpose.models.embeddings import FiLM, TimestepEmbedder
from diffpose.models.lmsfi import ConvScale, TransformerScale, conv_unit, deconv_unit, group_norm, separable_unit

PYRAMID_FIELDS = ("f1", "f2", "f3", "p1_masked", "p1_plain", "q2", "q3")  # ConditionPyramid's tensors, in order
OUTPUT_SPACES = ("signal", "heatmap")
STEPS = ("full", "light")  # the per-step path: the paper's layers, or the light one (module docstring)
FUSIONS = ("lmsfi", "concat")
HEAD_INIT_STD = 0.001  # a heatmap-space output layer starts near the background, as ViTPose's head


@dataclass
class ConditionPyramid:
    """The x_t-independent part of the decoder for ``B`` clips, computed once per clip.

    Attributes:
        f1: ``(B, C1, h, w)``; f2: ``(B, C2, 2h, 2w)``; f3: ``(B, C3, 4h, 4w)`` -- the condition at three scales.
        p1_masked, p1_plain: ``(B, C1, h, w)`` Trans's input projection of ``F_1`` (masked and plain halves).
        q2: ``(B, C2, 2h, 2w)``; q3: ``(B, C3, 4h, 4w)`` -- the ``F_j`` half of the first Fuse conv at scales 2, 3.
            With the light step, ``f2`` and ``f3`` hold that conv's masked half ``W_a F_j`` instead of ``F_j``.
        hypotheses: ``K``, the rows each clip serves (row ``b*K + k`` is hypothesis ``k`` of clip ``b``); the
            tensors keep batch ``B`` and are broadcast by the decoder, never copied per hypothesis.
    """

    f1: torch.Tensor
    f2: torch.Tensor
    f3: torch.Tensor
    p1_masked: torch.Tensor
    p1_plain: torch.Tensor
    q2: torch.Tensor
    q3: torch.Tensor
    hypotheses: int = 1

    @property
    def clips(self) -> int:
        """``B``."""
        return self.f1.shape[0]

    @property
    def batch_size(self) -> int:
        """``B * K``, the rows of ``x_t`` this pyramid serves."""
        return self.f1.shape[0] * self.hypotheses

    def expand(self, k: int) -> ConditionPyramid:
        """The same pyramid serving ``K`` hypotheses per clip (``B*K`` rows); nothing is copied or recomputed."""
        if k < 1:
            raise DiffPoseError(f"hypotheses must be >= 1, got {k}", field="hypotheses")
        return replace(self, hypotheses=int(k))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors in :data:`PYRAMID_FIELDS` order (the ONNX decoder graphs' inputs)."""
        return tuple(getattr(self, name) for name in PYRAMID_FIELDS)

    @classmethod
    def from_tensors(cls, tensors: tuple[torch.Tensor, ...] | list[torch.Tensor], hypotheses: int = 1
                     ) -> ConditionPyramid:
        """Inverse of :meth:`tensors`."""
        return cls(*tensors, hypotheses=hypotheses)


class PoseDecoder(nn.Module):
    """Predicts clean heatmaps from a noisy heatmap, the clip condition and the step.

    Args:
        num_joints: ``J``; cond_dim: condition width ``C``.
        heat_dim: ``c``, width of the embedded noisy heatmap.
        widths: condition widths ``(C1, C2, C3)`` at the x1, x2, x4 scales; ``C3`` is also the output width.
        seref_dim, seref_depth, fuse_depth, num_heads, mlp_ratio: the lowest-scale transformers.
        conv_depth: conv units per conv branch; time_dim: sinusoidal step-embedding width.
        predicts: ``"signal"`` or ``"heatmap"`` (see the module docstring).
        fusion, heat_path: LMSFI options (:mod:`diffpose.models.lmsfi`).
        self_condition: also read the previous ``x0`` estimate (needs ``predicts="heatmap"``).
        step: ``"full"`` (the paper's layers) or ``"light"`` (module docstring).
        residual: the output is a correction added to ``prev`` (needs ``self_condition``): a step starts from its
            previous estimate (the prior at a prior start, zeros from pure noise) instead of from nothing.
    """

    def __init__(self, num_joints: int, cond_dim: int, heat_dim: int = 64,
                 widths: tuple[int, int, int] = (256, 128, 64), seref_dim: int = 128, seref_depth: int = 2,
                 fuse_depth: int = 2, num_heads: int = 8, mlp_ratio: float = 4.0, conv_depth: int = 2,
                 time_dim: int = 128, predicts: str = "signal", fusion: str = "lmsfi", heat_path: bool = False,
                 self_condition: bool = False, step: str = "full", residual: bool = False):
        super().__init__()
        if (predicts not in OUTPUT_SPACES or fusion not in FUSIONS or step not in STEPS
                or (self_condition and predicts != "heatmap") or (residual and not self_condition)):
            raise DiffPoseError(f"decoder predicts {predicts!r} ({'/'.join(OUTPUT_SPACES)}), fusion {fusion!r} "
                                f"({'/'.join(FUSIONS)}), step {step!r} ({'/'.join(STEPS)}), self_condition "
                                f"{self_condition} (needs heatmap), residual {residual} (needs self_condition)",
                                field="model.decoder")
        c1, c2, c3 = widths
        self.num_joints = num_joints
        self.predicts, self.self_condition, self.residual = predicts, self_condition, residual
        self.light = step == "light"
        # Memory layout inside the decoder (values unchanged). Channels-last: 1x1 and depthwise convolutions run
        # several times faster so on CPU (benchmarks/fast_paths.py compares it with the default layout).
        self.memory_format = torch.channels_last
        # (a) step-conditioned rescaling of the embedded noisy heatmap (and of the previous estimate).
        k = 1 if self.light else 3
        self.heat_embed = nn.Conv2d(num_joints * (2 if self_condition else 1), heat_dim, kernel_size=k, padding=k // 2)
        self.time_embed = TimestepEmbedder(time_dim)
        self.film = FiLM(self.time_embed.out_dim, heat_dim)
        # (b) size-matched pyramids.
        down = separable_unit if self.light else conv_unit
        self.heat_down2 = down(heat_dim, heat_dim, stride=2)
        self.heat_down1 = down(heat_dim, heat_dim, stride=2)
        self.cond_1 = nn.Sequential(nn.Conv2d(cond_dim, c1, kernel_size=1, bias=False), group_norm(c1),
                                    nn.ReLU(inplace=True))
        self.cond_2 = deconv_unit(c1, c2)
        self.cond_3 = deconv_unit(c2, c3)
        # (c) LMSFI at three scales, each brought to (C3, H, W).
        self.scale1 = TransformerScale(heat_dim, c1, seref_dim, seref_depth, fuse_depth, num_heads, mlp_ratio,
                                       up_widths=[c1, c2, c3], fusion=fusion, heat_path=heat_path, light=self.light)
        self.scale2 = ConvScale(heat_dim, c2, conv_depth, up_widths=[c2, c3], fusion=fusion, heat_path=heat_path,
                                light=self.light)
        self.scale3 = ConvScale(heat_dim, c3, conv_depth, up_widths=[c3], fusion=fusion, heat_path=heat_path,
                                light=self.light)
        # light: the top-down merge, (C1, h, w) -> (C2, 2h, 2w) -> (C3, 4h, 4w)
        self.merge2 = deconv_unit(c1, c2) if self.light else None
        self.merge3 = deconv_unit(c2, c3) if self.light else None
        # (d) output.
        self.head = nn.Conv2d(c3, num_joints, kernel_size=3, padding=1)
        if predicts == "heatmap":
            nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(self.head.bias)

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> :class:`ConditionPyramid` (the x_t-independent part; once per clip)."""
        cond = cond.contiguous(memory_format=self.memory_format)  # (B, C, h, w); the pyramid is computed in it
        f1 = self.cond_1(cond)  # (B, C1, h, w)
        f2 = self.cond_2(f1)  # (B, C2, 2h, 2w)
        f3 = self.cond_3(f2)  # (B, C3, 4h, 4w)
        p1_masked, p1_plain = self.scale1.prepare(f1)  # (B, C1, h, w) x 2
        m2, q2 = self.scale2.prepare(f2)  # (B, C2, 2h, 2w) x 2; m2 is f2 itself, or W_a f2 (light)
        m3, q3 = self.scale3.prepare(f3)  # (B, C3, 4h, 4w) x 2; m3 is f3 itself, or W_a f3 (light)
        return ConditionPyramid(f1, m2, m3, p1_masked, p1_plain, q2, q3)  # in memory_format, as cond

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, pyramid: ConditionPyramid,
                prev: torch.Tensor | None = None) -> torch.Tensor:
        """``x_t (B*K, J, H, W)``, ``t (B*K,)``, a pyramid of ``B`` clips serving ``K`` rows each -> ``x0_hat``.

        ``prev (B*K, J, H, W)``: the previous ``x0`` estimate as heatmaps, read when the decoder self-conditions
        (None means none yet: zeros). Here ``B`` in the shape comments stands for all ``B*K`` rows; the pyramid
        is broadcast over them.
        """
        if x_t.ndim != 4 or x_t.shape[1] != self.num_joints:
            raise DiffPoseError(f"expected x_t of shape (B, J={self.num_joints}, H, W), got {tuple(x_t.shape)}",
                                field="x_t")
        if tuple(x_t.shape[-2:]) != tuple(pyramid.f3.shape[-2:]) or x_t.shape[0] != pyramid.batch_size:
            raise DiffPoseError(f"x_t {tuple(x_t.shape)} does not match the condition pyramid "
                                f"(batch {pyramid.batch_size}, heatmap {tuple(pyramid.f3.shape[-2:])}); "
                                "the heatmap must be 4x the token grid and the pyramid expanded to the batch",
                                field="x_t")
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t.reshape(-1)  # (B,)
        if self.self_condition:
            prev = torch.zeros_like(x_t) if prev is None else prev.to(x_t.dtype)  # (B, J, H, W) heatmaps
            x_t = torch.cat([x_t, prev], dim=1)  # (B, 2J, H, W)
        base = prev if self.residual else None  # (B, J, H, W): the estimate this step corrects
        x_t = x_t.contiguous(memory_format=self.memory_format)  # (B, J, H, W); channels-last: strides of (B, H, W, J)
        xbar3 = self.film(self.heat_embed(x_t), self.time_embed(t))  # (B, c, H, W)
        xbar2 = self.heat_down2(xbar3)  # (B, c, H/2, W/2)
        xbar1 = self.heat_down1(xbar2)  # (B, c, h, w)
        out1, _ = self.scale1(xbar1, (pyramid.p1_masked, pyramid.p1_plain))  # (B, C3, H, W); light (B, C1, h, w)
        out2, _ = self.scale2(xbar2, (pyramid.f2, pyramid.q2))  # (B, C3, H, W); light (B, C2, H/2, W/2)
        out3, _ = self.scale3(xbar3, (pyramid.f3, pyramid.q3))  # (B, C3, H, W)
        if self.light:  # top-down merge of the scales at their own resolutions
            out2 = out2 + self.merge2(out1)  # (B, C2, H/2, W/2)
            out = self.head(out3 + self.merge3(out2))  # (B, J, H, W)
        else:
            out = self.head(out1 + out2 + out3)  # (B, J, H, W)
        if base is not None:
            out = out + base  # a correction of the previous estimate
        return out.contiguous()  # back to the default layout
