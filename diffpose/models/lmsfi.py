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

**Per clip vs per hypothesis.** The first layer of each Fuse sees ``concat(A_j * F_j, F_j)``. Its weights
split into a half for ``A_j * F_j`` and a half for ``F_j``; the ``F_j`` half does not depend on ``x_t``, so
:meth:`prepare` computes it once per clip and the per-step forward only adds it, broadcast over the ``K``
hypotheses. At scale 1 the layer is a 1x1 projection, which commutes with the per-pixel mask
(``W (A * F) = A * (W F)``), so both halves are per clip. The condition is never copied per hypothesis:
``A_j * F_j`` is formed by broadcasting ``(B, K, 1, H, W) * (B, 1, C, H, W)``. Mathematically this is the
concat formulation exactly; numerically it agrees to float rounding (tested).

**Options where the paper is silent** (``decoder.fusion``, ``decoder.heat_path``):

* ``heat_path``: the mask says *where* some joint may be, not *which*; with ``heat_path`` each scale also adds a
  1x1 projection of the refined heatmap features ``xref_j`` to its fused output, so the decoder can refine joint
  by joint from ``x_t`` (``out_j = Up(Fuse(...) + P_j xref_j)``).
* ``fusion="concat"`` (the ablation "DiffPose without LMSFI"): no mask; each scale fuses
  ``concat(F_j, P_j xref_j)`` -- the condition and a projection of the heatmap features side by side -- with the
  same Fuse layers.

**The light step** (``decoder.step="light"``, a choice of ours for speed): everything above runs once per
hypothesis and step, so at the upper scales its full-resolution 3x3 convolutions and the per-scale Up stacks
are most of a step's cost. The light scales keep the lookup (mask from ``x_t``, ``A_j * F_j``, Fuse) and change
three things: the first Fuse layer is a 1x1 convolution at every scale, so it commutes with the mask and both
of its halves are per clip (``W (A * F_j) = A * (W F_j)``, as at scale 1), leaving one broadcast multiply-add
per hypothesis; SeRef and later Fuse units are depthwise-separable (depthwise 3x3, then 1x1); and a scale's
output stays at its own resolution and width, the decoder merging the scales top-down with one deconvolution
per scale instead of one Up stack per scale (:class:`~diffpose.models.pose_decoder.PoseDecoder`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffpose.models.vit import LN_EPS, Block, init_transformer_weights

Terms = tuple[torch.Tensor, torch.Tensor]  # a scale's per-clip tensors from its prepare()

GN_GROUPS = 8  # GroupNorm groups (fewer when the width is not a multiple)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(channels, GN_GROUPS)`` groups."""
    return nn.GroupNorm(math.gcd(channels, GN_GROUPS), channels)


def conv_unit(in_ch: int, out_ch: int, stride: int = 1, relu: bool = True, kernel: int = 3) -> nn.Sequential:
    """``kernel`` x ``kernel`` conv (3 or 1; stride 1 or 2) -> GroupNorm -> ReLU (optional)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
                               group_norm(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def separable_unit(in_ch: int, out_ch: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Depthwise 3x3 conv (stride 1 or 2) -> 1x1 conv -> GroupNorm -> ReLU (optional): a 3x3 unit's reach at
    about ``1/9 + 1/out_ch`` of its multiply-adds."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
                               nn.Conv2d(in_ch, out_ch, 1, bias=False), group_norm(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_branch(in_ch: int, out_ch: int, depth: int, final_relu: bool = True, light: bool = False,
                first_kernel: int = 3) -> nn.Sequential:
    """``depth`` conv units, the first mapping ``in_ch -> out_ch``; the last one without ReLU if not ``final_relu``.

    ``light``: the units are :func:`separable_unit`, except a first unit with ``first_kernel=1`` (a plain 1x1).
    """
    n = max(depth, 1)
    units = []
    for i in range(n):
        cin, relu = in_ch if i == 0 else out_ch, final_relu or i < n - 1
        if i == 0 and first_kernel == 1:
            units.append(conv_unit(cin, out_ch, relu=relu, kernel=1))
        else:
            units.append(separable_unit(cin, out_ch, relu=relu) if light else conv_unit(cin, out_ch, relu=relu))
    return nn.Sequential(*units)


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


def masked_condition(mask: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``mask (B*K, 1, H, W)`` times its clip's ``cond (B, C, H, W)`` -> ``(B*K, C, H, W)``; cond is broadcast.

    Row ``b*K + k`` of the mask belongs to clip ``b`` (the ensemble's layout).
    """
    b, c, h, w = cond.shape
    out = mask.reshape(b, -1, 1, h, w) * cond[:, None]  # (B, K, C, H, W)
    return out.reshape(-1, c, h, w)  # (B*K, C, H, W)


def add_per_clip(x: torch.Tensor, per_clip: torch.Tensor) -> torch.Tensor:
    """``x (B*K, C, H, W) + per_clip (B, C, H, W)``, broadcast over the ``K`` hypotheses of each clip."""
    b = per_clip.shape[0]
    out = x.reshape(b, -1, *x.shape[1:]) + per_clip[:, None]  # (B, K, C, H, W)
    return out.reshape(x.shape)  # (B*K, C, H, W)


def split_conv(conv: nn.Conv2d, x: torch.Tensor, half: int) -> torch.Tensor:
    """Apply the input-channel half ``half`` (0: first, 1: second) of ``conv`` to ``x``; bias only with half 1.

    ``conv`` takes ``concat(a, b)`` of two equally wide inputs; ``conv(concat(a, b)) = split(a, 0) + split(b, 1)``.
    """
    c = conv.in_channels // 2
    weight = conv.weight[:, :c] if half == 0 else conv.weight[:, c:]  # (C_out, C, k, k)
    bias = conv.bias if half == 1 else None
    return F.conv2d(x, weight, bias, conv.stride, conv.padding)  # (N, C_out, H', W')


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
        return self.encode(self.proj(x))  # (B, D, h, w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Everything after the projection: ``(B, dim, h, w)`` -> ``(B, dim, h, w)``."""
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
        light: the light step (module docstring): no Up stack, the output stays ``(C_1, h, w)``.
    """

    def __init__(self, heat_dim: int, cond_dim: int, seref_dim: int, seref_depth: int, fuse_depth: int,
                 num_heads: int, mlp_ratio: float, up_widths: list[int], fusion: str = "lmsfi",
                 heat_path: bool = False, light: bool = False):
        super().__init__()
        self.fusion = fusion
        self.seref = TokenTransformer(heat_dim, seref_dim, seref_depth, num_heads, mlp_ratio)
        self.fuse = TokenTransformer(2 * cond_dim, cond_dim, fuse_depth, num_heads, mlp_ratio)
        self.heat_proj = nn.Conv2d(seref_dim, cond_dim, 1) if heat_path or fusion == "concat" else None
        self.up = nn.Identity() if light else up_stack(up_widths)

    def prepare(self, cond: torch.Tensor) -> Terms:
        """``cond F_1 (B, C_1, h, w)`` -> the Trans projection of ``F_1`` as the masked and the plain input.

        Returns ``(W_a F_1, W_b F_1 + bias)``, each ``(B, C_1, h, w)``: the projection of
        ``concat(A * F_1, F_1)`` is ``A * (W_a F_1) + W_b F_1 + bias`` (a 1x1 conv commutes with the mask).
        """
        return split_conv(self.fuse.proj, cond, 0), split_conv(self.fuse.proj, cond, 1)  # (B, C_1, h, w) x 2

    def forward(self, heat: torch.Tensor, terms: Terms) -> tuple[torch.Tensor, torch.Tensor]:
        """``heat (B*K, c, h, w)``, ``terms`` from :meth:`prepare` (batch ``B``) -> ``(out (B*K, C_out, H, W),
        mask (B*K, 1, h, w))``; light: ``out (B*K, C_1, h, w)``."""
        masked_proj, plain_proj = terms
        refined = self.seref(heat)  # (B*K, D_s, h, w)
        if self.fusion == "concat":  # concat(F_1, P xref) through the projection: its halves, no mask
            mask = torch.ones_like(refined[:, :1])  # (B*K, 1, h, w)
            heat_part = split_conv(self.fuse.proj, self.heat_proj(refined), 0)  # (B*K, C_1, h, w)
            x = add_per_clip(heat_part, plain_proj)  # (B*K, C_1, h, w)
        else:
            mask = lookup_mask(refined)  # (B*K, 1, h, w)
            x = add_per_clip(masked_condition(mask, masked_proj), plain_proj)  # (B*K, C_1, h, w)
        fused = self.fuse.encode(x)  # (B*K, C_1, h, w)
        if self.heat_proj is not None and self.fusion != "concat":
            fused = fused + self.heat_proj(refined)  # (B*K, C_1, h, w)
        return self.up(fused), mask  # (B*K, C_out, H, W), (B*K, 1, h, w)


class ConvScale(nn.Module):
    """LMSFI at the upper scales (j=2, 3): SeRef and Fuse are conv branches.

    Args:
        heat_dim: width ``c`` of the heatmap features; cond_dim: width ``C_j`` of ``F_j``.
        conv_depth: conv units per branch; up_widths: Up stack widths starting at ``C_j``.
        light: the light step (module docstring): 1x1 first Fuse layer, separable units, no Up stack (the output
            stays ``(C_j, H_j, W_j)``).
    """

    def __init__(self, heat_dim: int, cond_dim: int, conv_depth: int, up_widths: list[int], fusion: str = "lmsfi",
                 heat_path: bool = False, light: bool = False):
        super().__init__()
        self.fusion = fusion
        self.light = light
        # No ReLU at the end of SeRef: the channel max must be free to go negative (mask below 0.5).
        self.seref = conv_branch(heat_dim, heat_dim, conv_depth, final_relu=False, light=light)
        self.fuse = conv_branch(2 * cond_dim, cond_dim, conv_depth, light=light, first_kernel=1 if light else 3)
        self.heat_proj = nn.Conv2d(heat_dim, cond_dim, 1) if heat_path or fusion == "concat" else None
        self.up = nn.Identity() if light else up_stack(up_widths)

    def prepare(self, cond: torch.Tensor) -> Terms:
        """``cond F_j (B, C_j, H_j, W_j)`` -> ``(F_j, plain)``: ``plain`` is the first Fuse conv's ``F_j`` half.

        Light (1x1 first Fuse conv, which commutes with the mask): ``(W_a F_j, plain)``, the masked half too.
        """
        first = self.fuse[0][0]
        masked = split_conv(first, cond, 0) if self.light else cond  # (B, C_j, H_j, W_j)
        return masked, split_conv(first, cond, 1)  # (B, C_j, H_j, W_j) x 2

    def forward(self, heat: torch.Tensor, terms: Terms) -> tuple[torch.Tensor, torch.Tensor]:
        """``heat (B*K, c, H_j, W_j)``, ``terms`` from :meth:`prepare` (batch ``B``) -> ``(out (B*K, C_out, H, W),
        mask (B*K, 1, H_j, W_j))``; light: ``out (B*K, C_j, H_j, W_j)``."""
        cond, plain = terms
        refined = self.seref(heat)  # (B*K, c, H_j, W_j)
        first = self.fuse[0]  # conv, GroupNorm, ReLU on concat(A * F_j, F_j) (or concat(P xref, F_j))
        if self.fusion == "concat":
            mask = torch.ones_like(refined[:, :1])  # (B*K, 1, H_j, W_j)
            x = add_per_clip(split_conv(first[0], self.heat_proj(refined), 0), plain)  # (B*K, C_j, H_j, W_j)
        elif self.light:  # cond is W_a F_j already: A * (W_a F_j) + W_b F_j, no convolution per hypothesis
            mask = lookup_mask(refined)  # (B*K, 1, H_j, W_j)
            x = add_per_clip(masked_condition(mask, cond), plain)  # (B*K, C_j, H_j, W_j)
        else:
            mask = lookup_mask(refined)  # (B*K, 1, H_j, W_j)
            x = add_per_clip(split_conv(first[0], masked_condition(mask, cond), 0), plain)  # (B*K, C_j, H_j, W_j)
        for layer in list(first)[1:]:
            x = layer(x)  # (B*K, C_j, H_j, W_j)
        fused = self.fuse[1:](x)  # (B*K, C_j, H_j, W_j)
        if self.heat_proj is not None and self.fusion != "concat":
            fused = fused + self.heat_proj(refined)  # (B*K, C_j, H_j, W_j)
        return self.up(fused), mask  # (B*K, C_out, H, W), (B*K, 1, H_j, W_j)
