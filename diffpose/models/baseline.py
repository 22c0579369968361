"""Single-frame baseline: the same ViT backbone with ViTPose's classic deconvolution head.

The head matches ViTPose's ``TopdownHeatmapSimpleHead`` parameter names (prefix ``keypoint_head.``), so
a full ViTPose checkpoint (backbone and head) loads into :class:`BaselineNet` key for key:

* ``deconv_layers.0``: ``ConvTranspose2d(D, 256, 4, stride 2, padding 1, bias=False)``
* ``deconv_layers.1``: ``BatchNorm2d(256)``, then ReLU (index 2)
* ``deconv_layers.3`` / ``.4``: the second deconvolution and BatchNorm
* ``final_layer``: ``Conv2d(256, J, 1)``

It regresses heatmaps in ``[0, 1]``-ish scale directly (trained with the heatmap MSE), with no diffusion.
It exists for fair comparisons: every benchmark runs the baseline next to DiffPose with an identical
backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.errors import DiffPoseError
from diffpose.models.vit import ViT

HEAD_INIT_STD = 0.001  # ViTPose/mmpose initialise the deconvolution and final layers with N(0, 0.001)


class ViTPoseHead(nn.Module):
    """Two x2 deconvolutions (+BN, ReLU) and a 1x1 conv: ``(B, D, h, w)`` -> ``(B, J, 4h, 4w)``."""

    def __init__(self, in_dim: int, num_joints: int, channels: int = 256, num_deconv: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_deconv):
            layers += [nn.ConvTranspose2d(in_dim if i == 0 else channels, channels, 4, stride=2, padding=1,
                                          bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, num_joints, kernel_size=1)
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=HEAD_INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` -> heatmaps ``(B, J, 4h, 4w)``."""
        return self.final_layer(self.deconv_layers(feats))  # (B, J, 4h, 4w)


class BaselineNet(nn.Module):
    """Single-frame ViTPose: ``images (B, 3, H, W)`` -> heatmaps ``(B, J, H_hm, W_hm)``.

    A clip ``(B, T, 3, H, W)`` is also accepted; then only its key frame (index ``T // 2``) is used.
    """

    def __init__(self, backbone: ViT, keypoint_head: ViTPoseHead, num_joints: int, heatmap_size: tuple[int, int]):
        super().__init__()
        self.backbone = backbone
        self.keypoint_head = keypoint_head
        self.num_joints = num_joints
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))  # (H, W)
        self.backbone_frozen = False

    def train(self, mode: bool = True) -> BaselineNet:
        """As ``nn.Module.train``, but a frozen backbone stays in eval mode (no stochastic depth)."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` (or a clip ``(B, T, 3, H, W)``: key frame) -> ``(B, J, H_hm, W_hm)``."""
        if images.ndim == 5:
            images = images[:, images.shape[1] // 2]  # (B, 3, H, W)
        if images.ndim != 4 or images.shape[1] != 3:
            raise DiffPoseError(f"expected images (B, 3, H, W) or clips (B, T, 3, H, W), got {tuple(images.shape)}",
                                field="images")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            feats = self.backbone(images)  # (B, D, h, w)
        return self.keypoint_head(feats)  # (B, J, 4h, 4w)
