"""Plain Vision Transformer backbone, parameter-name compatible with ViTPose's ``ViT``.

Written from the ViTPose architecture description (not copied). The names match the original
checkpoints key for key once prefixed with ``backbone.``:

* ``patch_embed.proj``: ``Conv2d(3, D, kernel=p, stride=p, padding=pad)``; ViTPose pads by 2, so a
  256x192 crop gives a 16x12 token grid (``(256 + 4 - 16) // 16 + 1 = 16``).
* ``pos_embed``: ``(1, 1 + h*w, D)``. The first slot (a class-token slot from MAE pre-training) is
  *added to every token*, as ViTPose does: ``x + pos_embed[:, 1:] + pos_embed[:, :1]``.
* ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``: pre-norm transformer layers,
  LayerNorm eps 1e-6, GELU MLP.
* ``last_norm``: final LayerNorm.

With ``stem="conv"`` a small convolutional stem (:mod:`diffpose.models.stem`, parameters ``stem.*``)
replaces the patch convolution; everything after it is the same. When the input crop differs from
``image_size`` the position embedding is resized bicubically on the fly (see
:func:`~diffpose.models.embeddings.resize_pos_embed`). :class:`Block` is reused by the STRL and
by LMSFI as their pre-norm transformer layer. Attention uses ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffpose.models.embeddings import resize_pos_embed
from diffpose.models.stem import ConvStem, TokenLayout, token_layout

LN_EPS = 1e-6  # ViTPose's LayerNorm epsilon
INIT_STD = 0.02  # truncated-normal std for linear weights and position embeddings (ViT convention)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, ...)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2`` on the last axis."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, D)`` tokens with a fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, N, D)`` -> ``(B, N, D)``; with ``context (B, M, D)`` the queries come from ``x`` and the keys
        and values from ``context`` (the same ``qkv`` weights, split), else all three from ``x``."""
        b, n, d = x.shape
        hd = d // self.num_heads
        if context is None:
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, hd)  # (B, N, 3, nh, hd)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, N, hd)
        else:
            w_q, w_kv = self.qkv.weight.split([d, 2 * d])  # (D, D), (2D, D)
            b_q, b_kv = self.qkv.bias.split([d, 2 * d]) if self.qkv.bias is not None else (None, None)
            q = F.linear(x, w_q, b_q).reshape(b, n, self.num_heads, hd).transpose(1, 2)  # (B, nh, N, hd)
            m = context.shape[1]
            kv = F.linear(context, w_kv, b_kv).reshape(b, m, 2, self.num_heads, hd)  # (B, M, 2, nh, hd)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, nh, M, hd)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, nh, N, hd)
        x = x.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(x)  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer layer: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` (ViTPose names)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, D)`` -> ``(B, N, D)``; ``context (B, M, D)``: attend to these tokens instead of ``x`` itself."""
        h = self.norm1(x)  # (B, N, D)
        x = x + self.drop_path(self.attn(h, None if context is None else self.norm1(context)))  # (B, N, D)
        return x + self.drop_path(self.mlp(self.norm2(x)))  # (B, N, D)


class PatchEmbed(nn.Module):
    """Image -> token grid with one strided convolution (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, padding: int, embed_dim: int, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, D, h, w)``."""
        return self.proj(x)  # (B, D, h, w)


def token_grid(image_size: tuple[int, int], patch_size: int, padding: int) -> tuple[int, int]:
    """Token grid ``(h, w)`` the patch convolution makes of an ``(H, W)`` image."""
    return token_layout(image_size, "patch", patch_size, padding).grid


def init_transformer_weights(module: nn.Module) -> None:
    """ViT initialisation: truncated-normal linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ViT(nn.Module):
    """ViTPose-compatible ViT: ``(N, 3, H, W)`` images -> ``(N, D, h, w)`` features.

    Args:
        image_size: the crop the position embedding is laid out for, ``(H, W)``.
        patch_size, patch_padding: patch convolution (ViTPose: 16 and 2).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer size (ViT-B: 768, 12, 12, 4, True).
        drop_path: stochastic-depth rate of the last block (linearly increasing from 0 over the blocks).
        stem: ``"patch"`` (ViTPose's patch convolution) or ``"conv"`` (:class:`~diffpose.models.stem.ConvStem`).
        stem_channels: the conv stem's widths at 1/2 and 1/4 resolution.
    """

    def __init__(self, image_size: tuple[int, int] = (256, 192), patch_size: int = 16, patch_padding: int = 2,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path: float = 0.0, stem: str = "patch",
                 stem_channels: tuple[int, int] = (32, 64)):
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))  # (H, W)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.layout: TokenLayout = token_layout(self.image_size, stem, patch_size, patch_padding)
        self.grid_size = self.layout.grid  # (h, w)
        if min(self.grid_size) < 1:
            raise ValueError(f"image size {image_size} gives an empty token grid with patch {patch_size}")
        self.conv_stem = stem == "conv"
        if self.conv_stem:
            self.stem = ConvStem(tuple(stem_channels), embed_dim)
        else:
            self.patch_embed = PatchEmbed(patch_size, patch_padding, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # 0 .. drop_path
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=r) for r in rates]
        )
        self.last_norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        nn.init.trunc_normal_(self.pos_embed, std=INIT_STD)
        self.apply(init_transformer_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 3, H, W)`` -> features ``(N, D, h, w)``."""
        x = self.stem(x) if self.conv_stem else self.patch_embed(x)  # (N, D, h, w)
        n, d, h, w = x.shape
        pos = resize_pos_embed(self.pos_embed, self.grid_size, (h, w))  # (1, 1 + h*w, D)
        x = x.flatten(2).transpose(1, 2)  # (N, h*w, D)
        x = x + pos[:, 1:] + pos[:, :1]  # (N, h*w, D)
        for blk in self.blocks:
            x = blk(x)  # (N, h*w, D)
        x = self.last_norm(x)  # (N, h*w, D)
        return x.transpose(1, 2).reshape(n, d, h, w)  # (N, D, h, w)
