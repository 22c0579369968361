"""How a backbone turns a crop into tokens: ViTPose's patch convolution, or a small convolutional stem.

* ``"patch"`` (ViTPose, the ``paper`` preset): one ``p x p`` convolution with stride ``p`` and padding
  ``pad``; token ``i`` covers crop pixels ``i*p - pad .. i*p - pad + p - 1``, centred at ``i*p - pad + (p-1)/2``.
* ``"conv"`` (the ``tiny`` preset): three 3x3 stride-2 convolutions (each followed by a 3x3 stride-1 one,
  BatchNorm and ReLU in between), a stride of 8. Early convolutions give a small ViT trained from scratch the
  local features a patch projection has to learn from far more data (Xiao et al., 2021, "Early convolutions
  help transformers see better"). A 3x3, stride-2, padding-1 convolution centres output ``i`` on input ``2i``,
  so token ``i`` is centred on crop pixel ``8i``.

:class:`TokenLayout` states where the tokens sit (grid, stride, centre of token 0) for either stem; feature
reuse maps features between crops with it, and the heatmap geometry is checked against its grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

STEMS = ("patch", "conv")
CONV_STEM_STRIDE = 8


@dataclass(frozen=True)
class TokenLayout:
    """Where a backbone's tokens sit in its ``(H, W)`` input crop.

    Attributes:
        grid: token grid ``(h, w)``.
        stride: crop pixels between neighbouring tokens.
        offset: crop-pixel coordinate (x and y) of token 0's centre (pixel centres at integers).
    """

    grid: tuple[int, int]
    stride: int
    offset: float


def token_layout(image_size: tuple[int, int], stem: str = "patch", patch_size: int = 16,
                 patch_padding: int = 2) -> TokenLayout:
    """The :class:`TokenLayout` of a stem on an ``(H, W)`` crop."""
    if stem == "patch":
        grid = tuple((s + 2 * patch_padding - patch_size) // patch_size + 1 for s in image_size)
        return TokenLayout(grid, patch_size, (patch_size - 1) / 2.0 - patch_padding)  # type: ignore[arg-type]
    if stem == "conv":
        grid = tuple(-(-int(s) // CONV_STEM_STRIDE) for s in image_size)  # ceil(s / 8): three stride-2 convs
        return TokenLayout(grid, CONV_STEM_STRIDE, 0.0)  # type: ignore[arg-type]
    raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ConvStem(nn.Module):
    """``(N, 3, H, W)`` -> ``(N, D, ceil(H/8), ceil(W/8))``: three stride-2 stages, the last projecting to ``D``.

    Args:
        channels: widths ``(c1, c2)`` of the first two stages (at 1/2 and 1/4 resolution).
        embed_dim: ``D``, the token width.
    """

    def __init__(self, channels: tuple[int, int], embed_dim: int):
        super().__init__()
        c1, c2 = channels
        self.layers = nn.Sequential(
            *_conv_bn_relu(3, c1, 2), *_conv_bn_relu(c1, c1, 1),  # 1/2
            *_conv_bn_relu(c1, c2, 2), *_conv_bn_relu(c2, c2, 1),  # 1/4
            nn.Conv2d(c2, embed_dim, 3, stride=2, padding=1),  # 1/8: the tokens
        )
        self.memory_format = torch.channels_last  # the layout the convolutions run in (values unchanged)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, D, h, w)``.

        The convolutions run in ``memory_format``, channels-last by default (values unchanged; on the development
        CPU the stem ran 1.5x and the whole tiny backbone 1.04x faster, ``benchmarks/fast_paths.py``); the tokens
        come back in the default layout.
        """
        x = x.contiguous(memory_format=self.memory_format)  # (N, 3, H, W); channels-last: strides of (N, H, W, 3)
        return self.layers(x).contiguous()  # (N, D, h, w)
