"""Builders of the network parts: typed :class:`~diffpose.config.ModelConfig` -> modules (no registry).

The networks (:class:`~diffpose.models.diffpose.DiffPoseNet`, :class:`~diffpose.models.baseline.BaselineNet`)
compose these parts in their ``from_config``; which network a ``model.kind`` means is decided in one place,
:data:`diffpose.estimators.KINDS`.

Geometry is checked up front: the heatmap must be 4x the backbone's token grid (the decoder's x1/x2/x4
pyramid and ViTPose's two x2 deconvolutions both assume it).
"""

from __future__ import annotations

from diffpose.config import ConfigError, ModelConfig
from diffpose.models.heads import ViTPoseHead, ViTPoseSimpleHead
from diffpose.models.pose_decoder import PoseDecoder
from diffpose.models.stem import STEMS, token_layout
from diffpose.models.strl import STRL
from diffpose.models.vit import ViT

HEATMAP_PER_TOKEN = 4  # heatmap pixels per token along each axis (two x2 upsamplings)


def check_geometry(cfg: ModelConfig) -> tuple[int, int]:
    """The token grid ``(h, w)``; raises :class:`ConfigError` unless ``heatmap_size == 4 * (h, w)``."""
    bb = cfg.backbone
    if bb.stem not in STEMS:
        raise ConfigError(f"unknown stem {bb.stem!r}; choose one of: {', '.join(STEMS)}", field="model.backbone.stem")
    grid = token_layout(bb.image_size, bb.stem, bb.patch_size, bb.patch_padding).grid
    want = (HEATMAP_PER_TOKEN * grid[0], HEATMAP_PER_TOKEN * grid[1])
    stem = f"patch {bb.patch_size} and padding {bb.patch_padding}" if bb.stem == "patch" else "the conv stem (stride 8)"
    if min(grid) < 1 or tuple(cfg.heatmap_size) != want:
        raise ConfigError(f"image_size (H, W) {tuple(bb.image_size)} with {stem} gives a {grid[0]}x{grid[1]} token "
                          f"grid, so heatmap_size (H, W) must be {want}, got {tuple(cfg.heatmap_size)}",
                          field="model.heatmap_size")
    return grid


def build_backbone(cfg: ModelConfig) -> ViT:
    """The per-frame ViT of ``cfg.backbone`` (random init; weights are loaded by the estimator builder)."""
    bb = cfg.backbone
    return ViT(image_size=bb.image_size, patch_size=bb.patch_size, patch_padding=bb.patch_padding,
               embed_dim=bb.embed_dim, depth=bb.depth, num_heads=bb.num_heads, mlp_ratio=bb.mlp_ratio,
               qkv_bias=bb.qkv_bias, drop_path=bb.drop_path, stem=bb.stem, stem_channels=tuple(bb.stem_channels))


def build_strl(cfg: ModelConfig, grid: tuple[int, int]) -> STRL:
    """The STRL of ``cfg.strl`` over ``cfg.num_frames`` frames of a ``grid`` ``(h, w)`` token grid."""
    s = cfg.strl
    return STRL(in_dim=cfg.backbone.embed_dim, num_frames=cfg.num_frames, grid_size=grid, dim=s.dim, depth=s.depth,
                num_heads=s.num_heads, mlp_ratio=s.mlp_ratio, out_dim=s.out_dim, agg_hidden=s.agg_hidden,
                key_shortcut=s.key_shortcut, queries=s.queries,
                neighbour_pool=s.neighbour_pool)


def build_decoder(cfg: ModelConfig) -> PoseDecoder:
    """The Pose-Decoder of ``cfg.decoder`` on a condition of ``cfg.strl.out_dim`` channels."""
    d = cfg.decoder
    return PoseDecoder(num_joints=cfg.num_joints, cond_dim=cfg.strl.out_dim, heat_dim=d.heatmap_dim,
                       widths=tuple(d.widths), seref_dim=d.seref_dim, seref_depth=d.seref_depth,
                       fuse_depth=d.fuse_depth, num_heads=d.num_heads, mlp_ratio=d.mlp_ratio,
                       conv_depth=d.conv_depth, time_dim=d.time_dim, predicts=d.predicts, fusion=d.fusion,
                       heat_path=d.heat_path, self_condition=d.self_condition, step=d.step, residual=d.residual)


def build_head(cfg: ModelConfig, in_dim: int | None = None) -> ViTPoseHead | ViTPoseSimpleHead:
    """ViTPose's heatmap head of ``cfg.head`` on ``in_dim`` channels (default: the backbone width).

    ``"classic"``: :class:`~diffpose.models.heads.ViTPoseHead` (two deconvolutions of ``baseline_deconv_channels``);
    ``"simple"``: :class:`~diffpose.models.heads.ViTPoseSimpleHead`. Both map ``(B, in_dim, h, w)`` to
    ``(B, num_joints, 4h, 4w)``.
    """
    in_dim = cfg.backbone.embed_dim if in_dim is None else in_dim
    if cfg.head == "simple":
        return ViTPoseSimpleHead(in_dim, cfg.num_joints)
    if cfg.head != "classic":
        raise ConfigError(f"unknown head {cfg.head!r}; choose one of: classic, simple", field="model.head")
    return ViTPoseHead(in_dim, cfg.num_joints, channels=cfg.baseline_deconv_channels)
