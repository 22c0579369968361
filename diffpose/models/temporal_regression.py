"""Temporal heatmap regression: the DiffPose condition (backbone per frame, then the STRL) with ViTPose's head.

The ablation "what does diffusion add?": the same clip condition as :class:`~diffpose.models.diffpose.DiffPoseNet`,
but the heatmaps are regressed from it in one pass by a :class:`~diffpose.models.heads.ViTPoseHead` (two x2
deconvolutions and a 1x1 convolution), trained with the heatmap MSE like the single-frame baseline::

    clips (B, T, 3, H_in, W_in) --backbone--> (B, T, D, h, w) --STRL--> cond (B, C, h, w) --head--> (B, J, 4h, 4w)
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.config import ModelConfig
from diffpose.models.build import build_backbone, build_head, build_strl, check_geometry
from diffpose.models.heads import ViTPoseHead
from diffpose.models.network import ClipNetwork
from diffpose.models.strl import STRL


class TemporalRegressionNet(ClipNetwork):
    """Backbone (per frame) -> STRL (per clip) -> ViTPose head: ``clips (B, T, 3, H, W)`` -> ``(B, J, 4h, 4w)``.

    Args:
        backbone: the per-frame ViT; strl: ``(B, T, D, h, w) -> (B, C, h, w)``; head: a ViTPose head on ``C``.
        num_joints, num_frames: ``J`` and ``T``; heatmap_size: ``(H, W)``; neighbour_grad: see ``ClipNetwork``.
    """

    def __init__(self, backbone: nn.Module, strl: STRL, head: ViTPoseHead, num_joints: int, num_frames: int,
                 heatmap_size: tuple[int, int], neighbour_grad: bool = True):
        super().__init__(backbone, num_joints, num_frames, heatmap_size, neighbour_grad)
        self.strl = strl
        self.head = head

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> TemporalRegressionNet:
        """The network of ``cfg`` (random initialisation); the head is as wide as the baseline's."""
        grid = check_geometry(cfg)
        return cls(build_backbone(cfg), build_strl(cfg, grid), build_head(cfg, in_dim=cfg.strl.out_dim),
                   cfg.num_joints, cfg.num_frames, cfg.heatmap_size, cfg.backbone.neighbour_grad)

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> condition ``(B, C, h, w)`` (STRL)."""
        return self.strl(feats, key=self.key_index)  # (B, C, h, w)

    def heatmaps(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond (B, C, h, w)`` -> heatmaps ``(B, J, 4h, 4w)``."""
        return self.head(cond)  # (B, J, 4h, 4w)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, 3, H_in, W_in)`` -> heatmaps ``(B, J, H, W)``."""
        return self.heatmaps(self.encode_condition(clips))  # (B, J, H, W)
