"""LMSFI: Lookup-based Multi-Scale Feature Interaction (method §2.3 step 3).

At scale ``j`` the embedded noisy heatmap ``xbar_j`` *looks up* joint regions in the condition ``F_j``:

    xref_j = SeRef(xbar_j)              # refine the heatmap features (transformer at j=1, convs above)
    A_j    = sigmoid(max_c xref_j)      # (B, 1, H_j, W_j) soft mask: channel max, then sigmoid
    Fbar_j = A_j * F_j                  # masked condition
    out_j  = Up(Fuse(concat(Fbar_j, F_j)))   # Trans at j=1, convs above; Up to the output resolution

The "lookup" is this soft spatial mask, not a correlation lookup: there is no sampling or indexing.

Choices where the paper is silent (method §2.3 [recommended], §9 row 4): SeRef and Trans are pre-norm
transformer layers (:class:`~diffpose.models.vit.Block`) preceded by a depthwise 3x3 convolutional
position encoding (size-agnostic, so no table to resize); conv branches are ``conv_depth`` units of
(3x3 conv, GroupNorm, ReLU); Up is a stack of (4x4 stride-2 deconvolution, GroupNorm, ReLU). GroupNorm
replaces the recommended BatchNorm because the statistics of ``x_t`` features change with the noise
level: batch statistics averaged over all ``t`` in training would not match any single step at test time.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffpose.models.vit import LN_EPS, Block, init_transformer_weights

GN_GROUPS = 8  # GroupNorm groups (fewer when the width is not a multiple)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(channels, GN_GROUPS)`` groups."""
    return nn.GroupNorm(math.gcd(channels, GN_GROUPS), channels)


def conv_unit(in_ch: int, out_ch: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """3x3 conv (stride 1 or 2) -> GroupNorm -> ReLU (optional)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), group_norm(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_branch(in_ch: int, out_ch: int, depth: int, final_relu: bool = True) -> nn.Sequential:
    """``depth`` conv units, the first mapping ``in_ch -> out_ch``; the last one without ReLU if not ``final_relu``."""
    n = max(depth, 1)
    return nn.Sequential(*[conv_unit(in_ch if i == 0 else out_ch, out_ch, relu=final_relu or i < n - 1)
                           for i in range(n)])


def deconv_unit(in_ch: int, out_ch: int) -> nn.Sequential:
    """x2 upsampling: 4x4 stride-2 transposed conv -> GroupNorm -> ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False), group_norm(out_ch),
                         nn.ReLU(inplace=True))


def up_stack(widths: list[int]) -> nn.Sequential:
    """Deconv units ``widths[0] -> widths[1] -> ...`` (x2 each); empty when ``len(widths) == 1``."""
    return nn.Sequential(*[deconv_unit(a, b) for a, b in zip(widths[:-1], widths[1:])])


def lookup_mask(refined: torch.Tensor) -> torch.Tensor:
    """``refined (B, c, H, W)`` -> soft mask ``(B, 1, H, W) = sigmoid(max over channels)``."""
    return torch.sigmoid(refined.amax(dim=1, keepdim=True))  # (B, 1, H, W)


class TokenTransformer(nn.Module):
    """Feature map -> 1x1 projection -> conv position encoding -> pre-norm transformer -> LayerNorm -> map."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.dim = dim
        self.proj = nn.Conv2d(in_dim, dim, kernel_size=1)
        self.pos = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim, h, w)`` -> ``(B, dim, h, w)``."""
        x = self.proj(x)  # (B, D, h, w)
        x = x + self.pos(x)  # (B, D, h, w)
        b, d, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        for blk in self.blocks:
            x = blk(x)  # (B, h*w, D)
        x = self.norm(x)  # (B, h*w, D)
        return x.transpose(1, 2).reshape(b, d, h, w)  # (B, D, h, w)


class TransformerScale(nn.Module):
    """LMSFI at the lowest scale (j=1, token grid): SeRef and Trans are transformers.

    Args:
        heat_dim: width ``c`` of the heatmap features; cond_dim: width ``C_1`` of ``F_1``.
        seref_dim, seref_depth: SeRef transformer; fuse_depth: Trans transformer (width ``C_1``).
        up_widths: widths of the Up stack, starting at ``C_1`` (one x2 deconv per step).
    """

    def __init__(self, heat_dim: int, cond_dim: int, seref_dim: int, seref_depth: int, fuse_depth: int,
                 num_heads: int, mlp_ratio: float, up_widths: list[int]):
        super().__init__()
        self.seref = TokenTransformer(heat_dim, seref_dim, seref_depth, num_heads, mlp_ratio)
        self.fuse = TokenTransformer(2 * cond_dim, cond_dim, fuse_depth, num_heads, mlp_ratio)
        self.up = up_stack(up_widths)

    def forward(self, heat: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``heat (B, c, h, w)``, ``cond (B, C_1, h, w)`` -> ``(out (B, C_out, H, W), mask (B, 1, h, w))``."""
        mask = lookup_mask(self.seref(heat))  # (B, 1, h, w)
        fused = self.fuse(torch.cat([mask * cond, cond], dim=1))  # (B, C_1, h, w)
        return self.up(fused), mask  # (B, C_out, H, W), (B, 1, h, w)


class ConvScale(nn.Module):
    """LMSFI at the upper scales (j=2, 3): SeRef and Fuse are conv branches.

    Args:
        heat_dim: width ``c`` of the heatmap features; cond_dim: width ``C_j`` of ``F_j``.
        conv_depth: conv units per branch; up_widths: Up stack widths starting at ``C_j``.
    """

    def __init__(self, heat_dim: int, cond_dim: int, conv_depth: int, up_widths: list[int]):
        super().__init__()
        # No ReLU at the end of SeRef: the channel max must be free to go negative (mask below 0.5).
        self.seref = conv_branch(heat_dim, heat_dim, conv_depth, final_relu=False)
        self.fuse = conv_branch(2 * cond_dim, cond_dim, conv_depth)
        self.up = up_stack(up_widths)

    def forward(self, heat: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``heat (B, c, Hj, Wj)``, ``cond (B, C_j, Hj, Wj)`` -> ``(out (B, C_out, H, W), mask (B, 1, Hj, Wj))``."""
        mask = lookup_mask(self.seref(heat))  # (B, 1, H_j, W_j)
        fused = self.fuse(torch.cat([mask * cond, cond], dim=1))  # (B, C_j, H_j, W_j)
        return self.up(fused), mask  # (B, C_out, H, W), (B, 1, H_j, W_j)
