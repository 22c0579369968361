"""Single-frame baseline: the same ViT backbone with ViTPose's classic deconvolution head.

A full ViTPose checkpoint (backbone and ``keypoint_head``) loads into :class:`BaselineNet` key for key. It
reads one frame per clip (the key frame), so its condition is just that frame's backbone features, and it
regresses the heatmaps directly, with no diffusion. It exists for fair comparisons: every benchmark runs it
next to DiffPose with an identical backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.config import ModelConfig
from diffpose.errors import DiffPoseError
from diffpose.models.build import build_backbone, build_head, check_geometry
from diffpose.models.heads import ViTPoseHead
from diffpose.models.network import ClipNetwork


class BaselineNet(ClipNetwork):
    """Single-frame ViTPose: ``images (B, 3, H, W)`` or one-frame clips ``(B, 1, 3, H, W)`` -> ``(B, J, H_hm, W_hm)``.

    Args:
        backbone: the ViT; keypoint_head: :class:`~diffpose.models.heads.ViTPoseHead`.
        num_joints: ``J``; heatmap_size: ``(H_hm, W_hm)``.
    """

    def __init__(self, backbone: nn.Module, keypoint_head: ViTPoseHead, num_joints: int,
                 heatmap_size: tuple[int, int]):
        super().__init__(backbone, num_joints, 1, heatmap_size)
        self.keypoint_head = keypoint_head

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> BaselineNet:
        """The network of ``cfg`` (random initialisation)."""
        check_geometry(cfg)
        return cls(build_backbone(cfg), build_head(cfg), cfg.num_joints, cfg.heatmap_size)

    @property
    def head(self) -> ViTPoseHead:
        """The heatmap head (``keypoint_head``, ViTPose's name, which its checkpoints' keys carry)."""
        return self.keypoint_head

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, 1, D, h, w)`` -> ``(B, D, h, w)``: the key frame's features are the condition."""
        if feats.ndim != 5 or feats.shape[1] != 1:
            raise DiffPoseError(f"expected (B, T=1, D, h, w), got {tuple(feats.shape)}", field="features")
        return feats[:, 0]  # (B, D, h, w)

    def heatmaps(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond (B, D, h, w)`` -> heatmaps ``(B, J, 4h, 4w)``."""
        return self.keypoint_head(cond)  # (B, J, 4h, 4w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images or ``(B, 1, 3, H, W)`` clips -> ``(B, J, H_hm, W_hm)``."""
        if images.ndim == 5:
            return self.heatmaps(self.encode_condition(images))  # (B, J, H_hm, W_hm)
        if images.ndim != 4 or images.shape[1] != 3:
            raise DiffPoseError(f"expected images (B, 3, H, W) or clips (B, 1, 3, H, W), got {tuple(images.shape)}",
                                field="images")
        return self.heatmaps(self.backbone_features(images))  # (B, J, H_hm, W_hm)
