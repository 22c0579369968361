"""Parameter counts and GFLOPs of the model parts, for ``diffpose model-info`` and the benchmarks.

Convention: **GFLOPs are multiply-accumulates (MACs) / 1e9**, as the pose literature quotes them
(ViTPose-B: ~17.1 GFLOPs at 256x192). They are counted with ``torch.utils.flop_counter.FlopCounterMode``,
whose count (2 per multiply-add) is halved. Only matrix products and convolutions are counted (the
flop counter's registry); norms, activations and element-wise sums are not.

The counting runs on the ``meta`` device: shapes propagate, nothing is computed or allocated, so the
``paper`` model (~86M backbone parameters, 17 GFLOPs per frame) is measured in well under a second.
On the meta device ``scaled_dot_product_attention`` is decomposed into counted matrix products; on a
real CPU it dispatches to a fused kernel that the flop counter does not see, which is another reason to
count on meta.

Parts, all for batch 1:

* ``backbone_per_frame``: the ViT on one crop;
* ``strl_per_clip``: the STRL on one clip's ``T`` feature maps;
* ``decoder_prepare_per_clip``: the x_t-independent condition pyramid (once per clip);
* ``decoder_per_step``: one denoising step given the pyramid (runs ``S * K`` times per clip);
* ``baseline_head_per_frame``: ViTPose's deconvolution head on one frame's features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from diffpose.config import ModelConfig
from diffpose.models.build import build_head, check_geometry
from diffpose.models.diffpose import DiffPoseNet

FLOPS_PER_MAC = 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_gflops(fn: Callable[..., Any], *args: Any) -> float:
    """GFLOPs (MACs / 1e9) of ``fn(*args)`` as counted by ``FlopCounterMode``, halved (see module docstring)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() / FLOPS_PER_MAC / 1e9


@dataclass
class Complexity:
    """Sizes of one model config. ``params`` in parameters, ``gflops`` in GMACs (batch 1)."""

    params: dict[str, int]
    gflops: dict[str, float]

    def clip_gflops(self, num_frames: int, steps: int = 1, hypotheses: int = 1) -> float:
        """GFLOPs of one clip: ``T`` backbone passes, STRL, pyramid (and prior head), ``S * K`` decoder steps."""
        g = self.gflops
        return (num_frames * g["backbone_per_frame"] + g["strl_per_clip"] + g["decoder_prepare_per_clip"]
                + g.get("prior_head_per_clip", 0.0) + steps * hypotheses * g["decoder_per_step"])


def model_complexity(cfg: ModelConfig) -> Complexity:
    """Parameter counts and GFLOPs of DiffPose's parts and of the baseline head for ``cfg`` (meta device)."""
    cfg = replace(cfg, backbone=replace(cfg.backbone, weights="", freeze=False))
    grid = check_geometry(cfg)
    with torch.device("meta"):
        net = DiffPoseNet.from_config(cfg)
        head = build_head(cfg)
        h_in, w_in = cfg.backbone.image_size
        frame = torch.empty(1, 3, h_in, w_in)
        feats = torch.empty(1, cfg.num_frames, cfg.backbone.embed_dim, *grid)
        cond = torch.empty(1, cfg.strl.out_dim, *grid)
        x_t = torch.empty(1, cfg.num_joints, *cfg.heatmap_size)
        t = torch.zeros(1, dtype=torch.long)
        frame_feats = torch.empty(1, cfg.backbone.embed_dim, *grid)
    net.eval()
    head.eval()
    pyramid = net.prepare(cond)
    params = {
        "backbone": count_params(net.backbone),
        "strl": count_params(net.strl),
        "decoder": count_params(net.decoder),
        "total": count_params(net),
        "baseline_head": count_params(head),
    }
    gflops = {
        "backbone_per_frame": count_gflops(net.backbone, frame),
        "strl_per_clip": count_gflops(net.strl, feats),
        "decoder_prepare_per_clip": count_gflops(net.prepare, cond),
        "decoder_per_step": count_gflops(net.denoise, x_t, t, pyramid),
        "baseline_head_per_frame": count_gflops(head, frame_feats),
    }
    if net.prior_head is not None:  # a regression head on the condition, once per clip (diffusion.start=prior)
        params["prior_head"] = count_params(net.prior_head)
        gflops["prior_head_per_clip"] = count_gflops(net.heatmaps, cond)
    return Complexity(params=params, gflops=gflops)
