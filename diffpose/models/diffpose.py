"""DiffPoseNet: the wiring of backbone, STRL and Pose-Decoder (method §2). No diffusion maths here.

Symbols: ``B`` clips, ``T`` frames, ``D`` backbone width, ``C`` condition width, ``h, w`` token grid,
``J`` joints, ``H, W`` heatmap (``H = 4h``, ``W = 4w``), ``K`` hypotheses.

The intended call pattern (what :mod:`diffpose.diffusion` does)::

    cond = net.encode_condition(frames)        # (B, C, h, w)   once per clip: backbone + STRL
    pyr = net.prepare(cond)                    # pyramid         once per clip: x_t-independent decoder part
    pyr_k = pyr.expand(K)                      # B*K rows        broadcast, not recomputed
    for each step: x0_hat = net.denoise(x_t, t, pyr_k)          # (B*K, J, H, W)

Inference may cache per-frame features across overlapping clips and call
:meth:`DiffPoseNet.condition_from_features` instead of :meth:`DiffPoseNet.encode_condition`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from diffpose.config import ModelConfig
from diffpose.models.build import build_backbone, build_decoder, build_head, build_strl, check_geometry
from diffpose.models.heads import ViTPoseHead
from diffpose.models.network import ClipNetwork
from diffpose.models.pose_decoder import ConditionPyramid, PoseDecoder
from diffpose.models.strl import STRL


class DiffPoseNet(ClipNetwork):
    """Backbone (per frame, shared weights) -> STRL (per clip) -> Pose-Decoder (per denoising step).

    Args:
        backbone: the ViT, ``(N, 3, H_in, W_in) -> (N, D, h, w)``; its parameters are ``backbone.*``.
        strl: ``(B, T, D, h, w) -> (B, C, h, w)``.
        decoder: :class:`PoseDecoder`.
        num_joints, num_frames: ``J`` and ``T``; heatmap_size: ``(H, W)``.
        prior_head: optional regression head on the condition, ``(B, C, h, w) -> (B, J, H, W)`` heatmaps (the
            prior a sampler may start from; :meth:`heatmaps`).
    """

    def __init__(self, backbone: nn.Module, strl: STRL, decoder: PoseDecoder, num_joints: int, num_frames: int,
                 heatmap_size: tuple[int, int], neighbour_grad: bool = True, prior_head: ViTPoseHead | None = None):
        super().__init__(backbone, num_joints, num_frames, heatmap_size, neighbour_grad)
        self.strl = strl
        self.decoder = decoder
        self.prior_head = prior_head

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> DiffPoseNet:
        """The network of ``cfg`` (random initialisation)."""
        grid = check_geometry(cfg)
        prior = build_head(cfg, in_dim=cfg.strl.out_dim) if cfg.decoder.prior_head else None
        return cls(build_backbone(cfg), build_strl(cfg, grid), build_decoder(cfg), cfg.num_joints, cfg.num_frames,
                   cfg.heatmap_size, cfg.backbone.neighbour_grad, prior)

    @property
    def self_condition(self) -> bool:
        """Whether :meth:`denoise` reads the previous ``x0`` estimate (``prev``)."""
        return self.decoder.self_condition

    @property
    def predicts(self) -> str:
        """``"signal"`` or ``"heatmap"``: the space :meth:`denoise` predicts ``x0`` in."""
        return self.decoder.predicts

    # ------------------------------------------------------------------------------------------
    # Per clip
    # ------------------------------------------------------------------------------------------
    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> condition ``(B, C, h, w)`` (STRL)."""
        return self.strl(feats, key=self.key_index)  # (B, C, h, w)

    def heatmaps(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond (B, C, h, w)`` -> the prior head's heatmaps ``(B, J, H, W)`` (unclamped; needs a prior head)."""
        if self.prior_head is None:
            raise AttributeError("this DiffPoseNet has no prior head (model.decoder.prior_head=false)")
        return self.prior_head(cond)  # (B, J, H, W)

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> the decoder's x_t-independent condition pyramid (once per clip)."""
        return self.decoder.prepare(cond)

    # ------------------------------------------------------------------------------------------
    # Per denoising step
    # ------------------------------------------------------------------------------------------
    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid | torch.Tensor,
                prev: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the clean heatmaps.

        Args:
            x_t: ``(B, J, H, W)`` noisy heatmaps in the diffused signal space.
            t: ``(B,)`` step numbers (or one number for the whole batch).
            cond: a :class:`ConditionPyramid` with batch ``B`` (preferred: built once per clip, expanded
                to ``B*K`` for an ensemble), or a raw condition ``(B, C, h, w)`` which is prepared here.
            prev: ``(B, J, H, W)`` the previous ``x0`` estimate as heatmaps (self-conditioning; else ignored).

        Returns:
            ``x0_hat (B, J, H, W)`` in the space of :attr:`predicts`.
        """
        pyramid = cond if isinstance(cond, ConditionPyramid) else self.prepare(cond)
        return self.decoder(x_t, t, pyramid, prev)  # (B, J, H, W)

    def forward(self, frames: torch.Tensor, x_t: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
                t: torch.Tensor, self_cond: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Training path (one step per clip): ``frames (B, T, 3, H_in, W_in)``, ``x_t (B, J, H, W)``, ``t (B,)``.

        With self-conditioning, ``self_cond (B,)`` bool marks the clips that first estimate ``x0`` without
        gradients and then refine with that estimate as ``prev``; the others get ``prev`` = zeros (or, with a prior
        head, the prior), as the first DDIM step does. The condition is computed once for both passes.

        With a prior head, ``x_t`` may be a function of the detached, clamped prior heatmaps ``(B, J, H, W)``
        (the caller noises them: this network knows no schedule), and the result is ``(x0_hat, prior)``, the
        prior unclamped and with gradients (it is trained too).
        """
        cond = self.encode_condition(frames)  # (B, C, h, w)
        pyramid = self.prepare(cond)
        prior = first_prev = None
        if self.prior_head is not None:
            prior = self.heatmaps(cond)  # (B, J, H, W)
            first_prev = prior.detach().clamp(0, 1)
        if callable(x_t):
            if first_prev is None:
                raise TypeError("x_t as a function of the prior needs a prior head")
            x_t = x_t(first_prev)  # (B, J, H, W)
        prev = first_prev
        if self.self_condition and self_cond is not None and bool(self_cond.any()):
            with torch.no_grad():
                first = self.decoder(x_t, t, pyramid, first_prev).clamp(0, 1)  # (B, J, H, W) heatmaps
            start = torch.zeros_like(first) if first_prev is None else first_prev  # what the first DDIM step sees
            prev = torch.where(self_cond[:, None, None, None], first, start)  # (B, J, H, W)
        out = self.decoder(x_t, t, pyramid, prev)  # (B, J, H, W)
        return out if prior is None else (out, prior)
