"""What every network offers: per-frame backbone features, one condition per clip, a frozen backbone.

Every network of :mod:`diffpose.models` is a :class:`ClipNetwork`: it reads a clip of ``T`` crops
(``T = num_frames``; 1 for a single-frame model) and turns it into a condition for the key frame::

    clips (B, T, 3, H_in, W_in) --backbone per frame--> features (B, T, D, h, w)
                                --condition_from_features--> cond (B, C, h, w)

so that inference can compute each frame's backbone features once and reuse them across overlapping
clips (:mod:`diffpose.inference.feature_cache`). What comes after the condition depends on the head:

* a **regression head** (:class:`~diffpose.models.baseline.BaselineNet`) offers ``heatmaps(cond) -> (B, J, H, W)``
  and ``forward(clips) = heatmaps(encode_condition(clips))``;
* a **denoising head** (:class:`~diffpose.models.diffpose.DiffPoseNet`) offers ``prepare(cond)`` (once per clip)
  and ``denoise(x_t, t, pyramid)`` (once per step), and ``forward(clips, x_t, t)`` for training.

The networks know nothing of noise schedules, codecs or losses: :mod:`diffpose.estimators` drives them.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.errors import DiffPoseError


class ClipNetwork(nn.Module):
    """Base of the networks: a per-frame ``backbone`` (``(N, 3, H_in, W_in) -> (N, D, h, w)``) and a clip length.

    Args:
        backbone: the per-frame feature extractor; its parameters are ``backbone.*``.
        num_joints: ``J``; num_frames: ``T`` frames per clip; heatmap_size: ``(H, W)`` of the output heatmaps.
        neighbour_grad: False sends only the key frame through the backbone with gradients in training; the
            neighbour frames go through it without (a stop-gradient: the same weights, about half the cost).

    ``key_index`` is the key frame's position in a clip (``T // 2`` unless the estimator, which knows the clip's
    frame offsets, sets it).
    """

    def __init__(self, backbone: nn.Module, num_joints: int, num_frames: int, heatmap_size: tuple[int, int],
                 neighbour_grad: bool = True):
        super().__init__()
        self.backbone = backbone
        self.num_joints = int(num_joints)
        self.num_frames = int(num_frames)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))  # (H, W)
        self.backbone_frozen = False
        self.neighbour_grad = neighbour_grad
        self.key_index = self.num_frames // 2

    def train(self, mode: bool = True) -> ClipNetwork:
        """As ``nn.Module.train``, but a frozen backbone stays in eval mode (no stochastic depth)."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (N, 3, H_in, W_in)`` -> ``(N, D, h, w)`` (no gradient when the backbone is frozen)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise DiffPoseError(f"expected frames (N, 3, H, W), got {tuple(frames.shape)}", field="frames")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            return self.backbone(frames)  # (N, D, h, w)

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> condition ``(B, C, h, w)``."""
        raise NotImplementedError

    def encode_condition(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, 3, H_in, W_in)`` -> condition ``(B, C, h, w)``: backbone per frame, then the clip part."""
        if clips.ndim != 5 or clips.shape[1] != self.num_frames or clips.shape[2] != 3:
            raise DiffPoseError(f"expected clips (B, T={self.num_frames}, 3, H, W), got {tuple(clips.shape)}",
                                field="frames")
        b, t = clips.shape[:2]
        if self.neighbour_grad or t == 1 or not torch.is_grad_enabled() or self.backbone_frozen:
            feats = self.backbone_features(clips.flatten(0, 1))  # (B*T, D, h, w)
            feats = feats.reshape(b, t, *feats.shape[1:])  # (B, T, D, h, w)
        else:
            k = self.key_index
            key = self.backbone_features(clips[:, k])  # (B, D, h, w), with gradients
            with torch.no_grad():
                others = self.backbone_features(torch.cat([clips[:, :k], clips[:, k + 1:]], 1).flatten(0, 1))
            others = others.reshape(b, t - 1, *others.shape[1:])  # (B, T-1, D, h, w)
            feats = torch.cat([others[:, :k], key[:, None], others[:, k:]], dim=1)  # (B, T, D, h, w)
        return self.condition_from_features(feats)  # (B, C, h, w)
