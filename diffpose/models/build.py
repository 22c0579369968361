"""Builders: typed :class:`~diffpose.config.ModelConfig` -> modules (SAM-style composition, no registry).

``build_model(cfg.model)`` returns a :class:`~diffpose.models.diffpose.DiffPoseNet` (``kind="diffpose"``)
or a :class:`~diffpose.models.baseline.BaselineNet` (``kind="baseline"``). Both use the same backbone,
built by :func:`build_backbone`. When ``backbone.weights`` names a file it is loaded (see
:mod:`diffpose.models.vitpose_io`): shape mismatches and missing backbone keys are errors, extra keys
(e.g. a ViTPose head when building DiffPose) are ignored. ``backbone.freeze`` freezes the backbone.

Geometry is checked up front: the heatmap must be 4x the backbone's token grid (the decoder's x1/x2/x4
pyramid and ViTPose's two x2 deconvolutions both assume it).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from diffpose.config import ConfigError, ModelConfig
from diffpose.errors import DiffPoseError
from diffpose.models.baseline import BaselineNet, ViTPoseHead
from diffpose.models.diffpose import DiffPoseNet
from diffpose.models.optim import freeze_backbone
from diffpose.models.pose_decoder import PoseDecoder
from diffpose.models.strl import STRL
from diffpose.models.vit import ViT, token_grid
from diffpose.models.vitpose_io import load_vitpose

HEATMAP_PER_TOKEN = 4  # heatmap pixels per token along each axis (two x2 upsamplings)


def check_geometry(cfg: ModelConfig) -> tuple[int, int]:
    """The token grid ``(h, w)``; raises :class:`ConfigError` unless ``heatmap_size == 4 * (h, w)``."""
    bb = cfg.backbone
    grid = token_grid(bb.image_size, bb.patch_size, bb.patch_padding)
    want = (HEATMAP_PER_TOKEN * grid[0], HEATMAP_PER_TOKEN * grid[1])
    if min(grid) < 1 or tuple(cfg.heatmap_size) != want:
        raise ConfigError(f"image_size (H, W) {tuple(bb.image_size)} with patch {bb.patch_size} and padding "
                          f"{bb.patch_padding} gives a {grid[0]}x{grid[1]} token grid, so heatmap_size (H, W) must "
                          f"be {want}, got {tuple(cfg.heatmap_size)}", field="model.heatmap_size")
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {cfg.kind!r}; choose one of: {', '.join(MODEL_KINDS)}",
                          field="model.kind")
    return grid


def build_backbone(cfg: ModelConfig) -> ViT:
    """The per-frame ViT of ``cfg.backbone`` (random init; weights are loaded by :func:`build_model`)."""
    bb = cfg.backbone
    return ViT(image_size=bb.image_size, patch_size=bb.patch_size, patch_padding=bb.patch_padding,
               embed_dim=bb.embed_dim, depth=bb.depth, num_heads=bb.num_heads, mlp_ratio=bb.mlp_ratio,
               qkv_bias=bb.qkv_bias, drop_path=bb.drop_path)


def build_strl(cfg: ModelConfig, grid: tuple[int, int]) -> STRL:
    s = cfg.strl
    return STRL(in_dim=cfg.backbone.embed_dim, num_frames=cfg.num_frames, grid_size=grid, dim=s.dim, depth=s.depth,
                num_heads=s.num_heads, mlp_ratio=s.mlp_ratio, out_dim=s.out_dim, agg_hidden=s.agg_hidden)


def build_decoder(cfg: ModelConfig) -> PoseDecoder:
    d = cfg.decoder
    return PoseDecoder(num_joints=cfg.num_joints, cond_dim=cfg.strl.out_dim, heat_dim=d.heatmap_dim,
                       widths=tuple(d.widths), seref_dim=d.seref_dim, seref_depth=d.seref_depth,
                       fuse_depth=d.fuse_depth, num_heads=d.num_heads, mlp_ratio=d.mlp_ratio,
                       conv_depth=d.conv_depth, time_dim=d.time_dim)


def build_head(cfg: ModelConfig) -> ViTPoseHead:
    """The baseline's ViTPose deconvolution head."""
    return ViTPoseHead(cfg.backbone.embed_dim, cfg.num_joints, channels=cfg.baseline_deconv_channels)


def _build_diffpose(cfg: ModelConfig) -> DiffPoseNet:
    grid = check_geometry(cfg)
    return DiffPoseNet(build_backbone(cfg), build_strl(cfg, grid), build_decoder(cfg), cfg.num_joints,
                       cfg.num_frames, cfg.heatmap_size)


def _build_baseline(cfg: ModelConfig) -> BaselineNet:
    check_geometry(cfg)
    return BaselineNet(build_backbone(cfg), build_head(cfg), cfg.num_joints, cfg.heatmap_size)


# Plain dict of model kinds (``model.kind``), no registry.
MODEL_KINDS = {"diffpose": _build_diffpose, "baseline": _build_baseline}


def build_model(cfg: ModelConfig, load_weights: bool = True) -> Any:
    """``DiffPoseNet`` or ``BaselineNet`` from the model config.

    Args:
        cfg: the ``model`` section of the config.
        load_weights: load ``cfg.backbone.weights`` when it is set (turn off e.g. to build on the meta device).
    """
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {cfg.kind!r}; choose one of: {', '.join(MODEL_KINDS)}",
                          field="model.kind")
    model: nn.Module = MODEL_KINDS[cfg.kind](cfg)
    if load_weights and cfg.backbone.weights:
        # Only the backbone is required; a baseline also takes the head when the file has one.
        report = load_vitpose(model, cfg.backbone.weights)
        missing = [k for k in report.missing if k.startswith("backbone.")]
        if missing:
            raise DiffPoseError(f"{len(missing)} backbone keys missing from the checkpoint, e.g. {missing[0]}",
                                cfg.backbone.weights, "model.backbone.weights")
    if cfg.backbone.freeze:
        freeze_backbone(model)
    return model
