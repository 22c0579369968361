"""DiffPoseNet: the wiring of backbone, STRL and Pose-Decoder (method §2). No diffusion maths here.

Symbols: ``B`` clips, ``T`` frames, ``D`` backbone width, ``C`` condition width, ``h, w`` token grid,
``J`` joints, ``H, W`` heatmap (``H = 4h``, ``W = 4w``), ``K`` hypotheses.

The intended call pattern (what :mod:`diffpose.diffusion` does)::

    cond = net.encode_condition(frames)        # (B, C, h, w)   once per clip: backbone + STRL
    pyr = net.prepare(cond)                    # pyramid         once per clip: x_t-independent decoder part
    pyr_k = pyr.expand(K)                      # B*K rows        broadcast, not recomputed
    for each step: x0_hat = net.denoise(x_t, t, pyr_k)          # (B*K, J, H, W)

Inference may cache per-frame features across overlapping clips and call
:meth:`DiffPoseNet.condition_from_features` instead of :meth:`DiffPoseNet.encode_condition`.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.config import ModelConfig
from diffpose.models.build import build_backbone, build_decoder, build_strl, check_geometry
from diffpose.models.network import ClipNetwork
from diffpose.models.pose_decoder import ConditionPyramid, PoseDecoder
from diffpose.models.strl import STRL


class DiffPoseNet(ClipNetwork):
    """Backbone (per frame, shared weights) -> STRL (per clip) -> Pose-Decoder (per denoising step).

    Args:
        backbone: the ViT, ``(N, 3, H_in, W_in) -> (N, D, h, w)``; its parameters are ``backbone.*``.
        strl: ``(B, T, D, h, w) -> (B, C, h, w)``.
        decoder: :class:`PoseDecoder`.
        num_joints, num_frames: ``J`` and ``T``; heatmap_size: ``(H, W)``.
    """

    def __init__(self, backbone: nn.Module, strl: STRL, decoder: PoseDecoder, num_joints: int, num_frames: int,
                 heatmap_size: tuple[int, int], neighbour_grad: bool = True):
        super().__init__(backbone, num_joints, num_frames, heatmap_size, neighbour_grad)
        self.strl = strl
        self.decoder = decoder

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> DiffPoseNet:
        """The network of ``cfg`` (random initialisation)."""
        grid = check_geometry(cfg)
        return cls(build_backbone(cfg), build_strl(cfg, grid), build_decoder(cfg), cfg.num_joints, cfg.num_frames,
                   cfg.heatmap_size, cfg.backbone.neighbour_grad)

    @property
    def self_condition(self) -> bool:
        """Whether :meth:`denoise` reads the previous ``x0`` estimate (``prev``)."""
        return self.decoder.self_condition

    @property
    def predicts(self) -> str:
        """``"signal"`` or ``"heatmap"``: the space :meth:`denoise` predicts ``x0`` in."""
        return self.decoder.predicts

    # ------------------------------------------------------------------------------------------
    # Per clip
    # ------------------------------------------------------------------------------------------
    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> condition ``(B, C, h, w)`` (STRL)."""
        return self.strl(feats, key=self.key_index)  # (B, C, h, w)

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> the decoder's x_t-independent condition pyramid (once per clip)."""
        return self.decoder.prepare(cond)

    # ------------------------------------------------------------------------------------------
    # Per denoising step
    # ------------------------------------------------------------------------------------------
    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid | torch.Tensor,
                prev: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the clean heatmaps.

        Args:
            x_t: ``(B, J, H, W)`` noisy heatmaps in the diffused signal space.
            t: ``(B,)`` step numbers (or one number for the whole batch).
            cond: a :class:`ConditionPyramid` with batch ``B`` (preferred: built once per clip, expanded
                to ``B*K`` for an ensemble), or a raw condition ``(B, C, h, w)`` which is prepared here.
            prev: ``(B, J, H, W)`` the previous ``x0`` estimate as heatmaps (self-conditioning; else ignored).

        Returns:
            ``x0_hat (B, J, H, W)`` in the space of :attr:`predicts`.
        """
        pyramid = cond if isinstance(cond, ConditionPyramid) else self.prepare(cond)
        return self.decoder(x_t, t, pyramid, prev)  # (B, J, H, W)

    def forward(self, frames: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                self_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Training path (one step per clip): ``frames (B, T, 3, H_in, W_in)``, ``x_t (B, J, H, W)``, ``t (B,)``.

        With self-conditioning, ``self_cond (B,)`` bool marks the clips that first estimate ``x0`` without
        gradients and then refine with that estimate as ``prev`` (the others get ``prev`` = zeros, as the first
        DDIM step does); the condition is computed once for both passes.
        """
        pyramid = self.prepare(self.encode_condition(frames))
        prev = None
        if self.self_condition and self_cond is not None and bool(self_cond.any()):
            with torch.no_grad():
                first = self.decoder(x_t, t, pyramid).clamp(0, 1)  # (B, J, H, W) heatmaps
            prev = first * self_cond.to(first.dtype)[:, None, None, None]  # (B, J, H, W)
        return self.decoder(x_t, t, pyramid, prev)  # (B, J, H, W)
