"""Embeddings: diffusion-step embedding with FiLM, and resizing of learned 2D position embeddings.

* :class:`TimestepEmbedder` turns the integer step ``t`` into a vector (sinusoid -> MLP), the pattern
  of DiffusionDet's head (method §2.3 step 1, [inferred]); :class:`FiLM` turns that vector into a per-channel
  ``(scale, shift)`` applied as ``feat * (scale + 1) + shift``. The network receives ``t`` as a number only:
  it knows nothing of the noise schedule.
* :func:`resize_pos_embed` bicubically resizes a ``(1, 1 + h*w, D)`` ViTPose-style position embedding to
  another token grid, keeping the extra first slot. Used when a checkpoint or an input has another size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_PERIOD = 10000.0  # longest wavelength of the sinusoidal step embedding (Transformer convention)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of step values.

    Args:
        t: ``(B,)`` steps (integers or floats).
        dim: output width (even).

    Returns:
        ``(B, dim)``: ``[sin(t * f_k), cos(t * f_k)]`` with ``f_k = MAX_PERIOD^(-k / (dim/2 - 1))``.
    """
    half = dim // 2
    exponent = -math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1)
    args = t.float()[:, None] * torch.exp(exponent)[None, :]  # (B, dim/2)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # (B, dim)


class TimestepEmbedder(nn.Module):
    """Step ``t`` -> ``(B, 4 * dim)``: sinusoid(dim) -> Linear(dim, 4 dim) -> GELU -> Linear(4 dim, 4 dim)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding width must be even, got {dim}")
        self.dim = dim
        self.out_dim = 4 * dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``t (B,)`` -> ``(B, 4 * dim)``."""
        return self.mlp(sinusoidal_embedding(t, self.dim))  # (B, 4*dim)


class FiLM(nn.Module):
    """Feature-wise rescaling by an embedding: ``feat * (scale + 1) + shift`` with ``(scale, shift) = Lin(SiLU(e))``."""

    def __init__(self, embed_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, 2 * channels))

    def forward(self, feat: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``feat (B, C, H, W)``, ``emb (B, E)`` -> ``(B, C, H, W)``."""
        scale, shift = self.proj(emb).chunk(2, dim=-1)  # (B, C) each
        return feat * (scale[:, :, None, None] + 1) + shift[:, :, None, None]  # (B, C, H, W)


def factor_grid(num_tokens: int, aspect_hw: float) -> tuple[int, int]:
    """The factorisation ``h * w = num_tokens`` whose ``h / w`` is closest to ``aspect_hw``."""
    best: tuple[float, int, int] | None = None
    for h in range(1, num_tokens + 1):
        if num_tokens % h:
            continue
        w = num_tokens // h
        err = abs(math.log((h / w) / aspect_hw))
        if best is None or err < best[0]:
            best = (err, h, w)
    assert best is not None
    return best[1], best[2]


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     num_extra: int = 1) -> torch.Tensor:
    """Bicubically resize a learned 2D position embedding to another token grid.

    Args:
        pos_embed: ``(1, num_extra + h_old * w_old, D)``; the first ``num_extra`` slots (ViTPose's class-token
            slot) are kept as they are.
        old_grid, new_grid: token grids as ``(h, w)``.

    Returns:
        ``(1, num_extra + h_new * w_new, D)``.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    extra, grid = pos_embed[:, :num_extra], pos_embed[:, num_extra:]
    d = grid.shape[-1]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position embedding has {grid.shape[1]} grid slots, not {old_grid[0]}x{old_grid[1]}")
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)  # (1, D, h_old, w_old)
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode="bicubic", align_corners=False)  # (1, D, h, w)
    grid = grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)  # (1, h*w, D)
    return torch.cat([extra, grid], dim=1)  # (1, num_extra + h*w, D)
