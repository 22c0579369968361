"""ViTPose's heatmap heads, ``(B, D, h, w) -> (B, J, 4h, 4w)``: the classic and the simple decoder.

:class:`ViTPoseHead` (the classic decoder): two x2 deconvolutions and a 1x1 convolution. Parameter names match
ViTPose's ``TopdownHeatmapSimpleHead`` (``keypoint_head.`` prefix in a checkpoint):

* ``deconv_layers.0``: ``ConvTranspose2d(D, 256, 4, stride 2, padding 1, bias=False)``
* ``deconv_layers.1``: ``BatchNorm2d(256)``, then ReLU (index 2)
* ``deconv_layers.3`` / ``.4``: the second deconvolution and BatchNorm
* ``final_layer``: ``Conv2d(256, J, 1)``

:class:`ViTPoseSimpleHead` (the simple decoder, ViTPose's ``num_deconv_layers=0, upsample=4,
final_conv_kernel=3``): ReLU on the features, x4 bilinear upsampling (``align_corners=False``), then
``final_layer``, a ``Conv2d(D, J, 3, padding=1)``; no other parameters.

Both regress heatmaps in ``[0, 1]`` scale directly (trained with the heatmap MSE), with no diffusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_INIT_STD = 0.001  # ViTPose/mmpose initialise the deconvolution and final layers with N(0, 0.001)
SIMPLE_UPSAMPLE = 4  # the simple decoder's bilinear upsampling factor (one token -> 4x4 heatmap pixels)


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


class ViTPoseSimpleHead(nn.Module):
    """ReLU, x4 bilinear upsampling and a 3x3 conv: ``(B, D, h, w)`` -> ``(B, J, 4h, 4w)``.

    Args:
        in_dim: ``D``, the feature channels.
        num_joints: ``J``.
    """

    def __init__(self, in_dim: int, num_joints: int):
        super().__init__()
        self.final_layer = nn.Conv2d(in_dim, num_joints, kernel_size=3, padding=1)
        nn.init.normal_(self.final_layer.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` -> heatmaps ``(B, J, 4h, 4w)``."""
        x = F.interpolate(F.relu(feats), scale_factor=SIMPLE_UPSAMPLE, mode="bilinear",
                          align_corners=False)  # (B, D, 4h, 4w)
        return self.final_layer(x)  # (B, J, 4h, 4w)
