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

from diffpose.errors import DiffPoseError
from diffpose.models.pose_decoder import ConditionPyramid, PoseDecoder
from diffpose.models.strl import STRL
from diffpose.models.vit import ViT


class DiffPoseNet(nn.Module):
    """Backbone (per frame, shared weights) -> STRL (per clip) -> Pose-Decoder (per denoising step).

    Args:
        backbone: the ViT, ``(N, 3, H_in, W_in) -> (N, D, h, w)``; its parameters are ``backbone.*``.
        strl: ``(B, T, D, h, w) -> (B, C, h, w)``.
        decoder: :class:`PoseDecoder`.
        num_joints, num_frames: ``J`` and ``T``; heatmap_size: ``(H, W)``.
    """

    def __init__(self, backbone: ViT, strl: STRL, decoder: PoseDecoder, num_joints: int, num_frames: int,
                 heatmap_size: tuple[int, int]):
        super().__init__()
        self.backbone = backbone
        self.strl = strl
        self.decoder = decoder
        self.num_joints = num_joints
        self.num_frames = num_frames
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))  # (H, W)
        self.backbone_frozen = False

    def train(self, mode: bool = True) -> DiffPoseNet:
        """As ``nn.Module.train``, but a frozen backbone stays in eval mode (no stochastic depth)."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------------------------------
    # Per clip
    # ------------------------------------------------------------------------------------------
    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B*T, 3, H_in, W_in)`` -> ``(B*T, D, h, w)`` (no gradient when the backbone is frozen)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise DiffPoseError(f"expected frames (N, 3, H, W), got {tuple(frames.shape)}", field="frames")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            return self.backbone(frames)  # (B*T, D, h, w)

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> condition ``(B, C, h, w)`` (STRL)."""
        return self.strl(feats)  # (B, C, h, w)

    def encode_condition(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B, T, 3, H_in, W_in)`` -> condition ``(B, C, h, w)``: backbone per frame, then STRL."""
        if frames.ndim != 5 or frames.shape[1] != self.num_frames or frames.shape[2] != 3:
            raise DiffPoseError(f"expected clips (B, T={self.num_frames}, 3, H, W), got {tuple(frames.shape)}",
                                field="frames")
        b, t = frames.shape[:2]
        feats = self.backbone_features(frames.flatten(0, 1))  # (B*T, D, h, w)
        feats = feats.reshape(b, t, *feats.shape[1:])  # (B, T, D, h, w)
        return self.condition_from_features(feats)  # (B, C, h, w)

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> the decoder's x_t-independent condition pyramid (once per clip)."""
        return self.decoder.prepare(cond)

    # ------------------------------------------------------------------------------------------
    # Per denoising step
    # ------------------------------------------------------------------------------------------
    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid | torch.Tensor) -> torch.Tensor:
        """Predict the clean heatmaps.

        Args:
            x_t: ``(B, J, H, W)`` noisy heatmaps (in the space the decoder was trained on).
            t: ``(B,)`` step numbers (or one number for the whole batch).
            cond: a :class:`ConditionPyramid` with batch ``B`` (preferred: built once per clip, expanded
                to ``B*K`` for an ensemble), or a raw condition ``(B, C, h, w)`` which is prepared here.

        Returns:
            ``x0_hat (B, J, H, W)``.
        """
        pyramid = cond if isinstance(cond, ConditionPyramid) else self.prepare(cond)
        return self.decoder(x_t, t, pyramid)  # (B, J, H, W)

    def forward(self, frames: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Training path (one step per clip): ``frames (B, T, 3, H_in, W_in)``, ``x_t (B, J, H, W)``, ``t (B,)``."""
        return self.denoise(x_t, t, self.encode_condition(frames))  # (B, J, H, W)
