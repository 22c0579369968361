"""SpatioTemporal Representation Learner (STRL, method §2.2): per-frame features -> one key-frame condition.

Data flow (``B`` clips, ``T`` frames, ``D_in`` backbone width, ``D`` token width, ``C`` condition width)::

    F (B, T, D_in, h, w) --1x1 conv "patch embedding"--> (B, T, D, h, w) --> tokens (B, T*h*w, D)
        + E_pos (1, T*h*w, D)             # a learnable embedding per frame position and grid cell
        -> L pre-LN transformer layers     # joint spatio-temporal attention over all T*h*w tokens
        -> per grid cell: concat the T frame tokens (B, h*w, T*D) -> LN -> MLP -> (B, h*w, C)
        [+ the key frame's own features F_key, by identity (D_in = C) or a 1x1 projection: key_shortcut]
        -> condition (B, C, h, w)

Choices where the paper is silent (method §2.2 [recommended] and §9 row 3): 1x1 patch embedding, a
``(T*h*w, D)`` learnable position table (one embedding per frame position ``E_POS^tau`` at every grid
cell), one joint attention sequence (not factorised), and the aggregation MLP over the ``T*D`` concat of
a cell's frame tokens. The condition is computed once per clip and reused by every denoising step.

``queries`` (a choice of ours for speed; ``paper`` keeps ``"all"``, ``tiny`` uses ``"cross"`` with pool 2): with
``"key"`` only the first layer attends jointly over all ``T*h*w`` tokens; the later layers update the key
frame's ``h*w`` tokens only, attending to the current key tokens and the neighbours' tokens as the first layer
left them. The condition is for the key frame, so the neighbours' tokens need no further updates; attention
then costs ``h*w x T*h*w`` instead of ``(T*h*w)^2`` per later layer, and the MLPs run on ``h*w`` tokens
instead of ``T*h*w``. The aggregation concatenates the same ``T`` tokens per cell (the neighbours' from the
first layer). ``"cross"`` has no joint
layer at all: every layer updates the key frame's tokens only, attending to them and to the neighbours'
embedded tokens, so no layer costs ``(T*h*w)^2``. ``neighbour_pool = k > 1`` (with ``"key"``/``"cross"``)
average-pools each neighbour's token grid ``k x k`` before it serves as keys and values: the key frame keeps
its full grid, attention costs ``h*w x (h*w + (T-1)*h*w/k^2)``, and the aggregation still reads every cell's
unpooled tokens.

``key_shortcut`` (a choice of ours, off in the ``paper`` preset): nothing in the paper's STRL passes the key
frame's features straight through, so a good single-frame backbone is first scrambled by freshly initialised
layers; the shortcut adds them to the condition, and the transformer learns what the neighbours add.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose.errors import DiffPoseError
from diffpose.models.embeddings import resize_pos_embed
from diffpose.models.vit import INIT_STD, LN_EPS, Block, init_transformer_weights

STRL_QUERIES = ("all", "key", "cross")


class STRL(nn.Module):
    """Temporal transformer turning ``T`` frames' features into one key-frame condition.

    Args:
        in_dim: backbone feature width ``D_in``.
        num_frames: clip length ``T`` (each frame index has its own learnable embedding).
        grid_size: token grid ``(h, w)`` the position table is laid out for.
        dim: token width ``D``; depth: layers ``L``; num_heads; mlp_ratio: transformer sizes.
        out_dim: condition width ``C``; agg_hidden: hidden width of the aggregation MLP.
        key_shortcut, queries, neighbour_pool: see the module docstring.
    """

    def __init__(self, in_dim: int, num_frames: int, grid_size: tuple[int, int], dim: int = 384, depth: int = 4,
                 num_heads: int = 8, mlp_ratio: float = 4.0, out_dim: int = 256, agg_hidden: int = 512,
                 key_shortcut: bool = False, queries: str = "all", neighbour_pool: int = 1):
        super().__init__()
        if queries not in STRL_QUERIES:
            raise DiffPoseError(f"unknown STRL queries {queries!r}; choose one of: {', '.join(STRL_QUERIES)}",
                                field="model.strl.queries")
        if neighbour_pool < 1:
            raise DiffPoseError(f"neighbour_pool must be >= 1, got {neighbour_pool}", field="model.strl.neighbour_pool")
        self.queries = queries
        self.neighbour_pool = int(neighbour_pool)
        self.num_frames = num_frames
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.dim = dim
        self.out_dim = out_dim
        self.patch_embed = nn.Conv2d(in_dim, dim, kernel_size=1)
        # One learnable (h*w, D) table per frame index: E_POS^{t-delta} ... E_POS^{t+delta}.
        self.pos_embed = nn.Parameter(torch.zeros(num_frames, self.grid_size[0] * self.grid_size[1], dim))
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(num_frames * dim, eps=LN_EPS)
        self.aggregate = nn.Sequential(
            nn.Linear(num_frames * dim, agg_hidden), nn.GELU(), nn.Linear(agg_hidden, out_dim)
        )
        self.key_shortcut = key_shortcut
        self.key_proj = nn.Conv2d(in_dim, out_dim, 1) if key_shortcut and in_dim != out_dim else None
        nn.init.trunc_normal_(self.pos_embed, std=INIT_STD)
        self.apply(init_transformer_weights)

    def _pos_for(self, h: int, w: int) -> torch.Tensor:
        """The ``(T, h*w, D)`` position table, resized per frame when the grid is not the configured one."""
        if (h, w) == self.grid_size:
            return self.pos_embed
        per_frame = [resize_pos_embed(p[None], self.grid_size, (h, w), num_extra=0) for p in self.pos_embed]
        return torch.cat(per_frame, dim=0)  # (T, h*w, D)

    def _pool(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """A neighbour's ``(B, h*w, D)`` tokens average-pooled ``k x k`` -> ``(B, ceil(h/k)*ceil(w/k), D)``."""
        k = self.neighbour_pool
        if k == 1:
            return tokens
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], self.dim, h, w)  # (B, D, h, w)
        grid = nn.functional.avg_pool2d(grid, k, ceil_mode=True, count_include_pad=False)  # (B, D, h', w')
        return grid.flatten(2).transpose(1, 2)  # (B, h'*w', D)

    def forward(self, feats: torch.Tensor, key: int | None = None) -> torch.Tensor:
        """``feats (B, T, D_in, h, w)`` -> condition ``(B, C, h, w)``; ``key``: the key frame's index (T // 2)."""
        if feats.ndim != 5 or feats.shape[1] != self.num_frames:
            raise DiffPoseError(f"expected (B, T={self.num_frames}, D, h, w), got {tuple(feats.shape)}",
                                field="features")
        b, t, d_in, h, w = feats.shape
        x = self.patch_embed(feats.reshape(b * t, d_in, h, w))  # (B*T, D, h, w)
        x = x.reshape(b, t, self.dim, h * w).transpose(2, 3)  # (B, T, h*w, D)
        x = x + self._pos_for(h, w)[None]  # (B, T, h*w, D)
        key_index = t // 2 if key is None else key
        x = x.reshape(b, t * h * w, self.dim)  # (B, T*h*w, D)
        if self.queries == "all":
            for blk in self.blocks:
                x = blk(x)  # (B, T*h*w, D)
        else:
            joint = 1 if self.queries == "key" else 0
            for blk in self.blocks[:joint]:
                x = blk(x)  # (B, T*h*w, D): joint attention once
            x = x.reshape(b, t, h * w, self.dim)  # (B, T, h*w, D)
            frames = list(x.unbind(1))  # T x (B, h*w, D)
            context = [f if i == key_index else self._pool(f, h, w) for i, f in enumerate(frames)]  # T x (B, n_i, D)
            for blk in self.blocks[joint:]:
                context[key_index] = frames[key_index]
                frames[key_index] = blk(frames[key_index], torch.cat(context, dim=1))  # (B, h*w, D)
            x = torch.stack(frames, dim=1)  # (B, T, h*w, D)
        x = x.reshape(b, t, h * w, self.dim).permute(0, 2, 1, 3)  # (B, h*w, T, D)
        x = x.reshape(b, h * w, t * self.dim)  # (B, h*w, T*D)
        x = self.aggregate(self.norm(x))  # (B, h*w, C)
        cond = x.transpose(1, 2).reshape(b, self.out_dim, h, w)  # (B, C, h, w)
        if self.key_shortcut:
            key_feats = feats[:, key_index]  # (B, D_in, h, w)
            cond = cond + (key_feats if self.key_proj is None else self.key_proj(key_feats))  # (B, C, h, w)
        return cond
