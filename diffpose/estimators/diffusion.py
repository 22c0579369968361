"""DiffPose as a pose estimator: heatmap diffusion around a denoising network (method §3).

* **Training** draws ``t`` and the noise of a global batch (:func:`~diffpose.diffusion.training_noise`) and
  calls the one diffusion training loss, :func:`~diffpose.diffusion.training_loss`, with the network's
  ``forward(clips, x_t, t)`` as the denoiser. A self-conditioning network (``model.decoder.self_condition``)
  refines its own first estimate for half of the samples (``self_cond`` draws).
* **Prediction** computes the clip condition once, then samples ``K`` hypotheses with ``S`` DDIM steps in one
  batch and combines them (:func:`~diffpose.diffusion.sample_poses`); any ``S`` and ``K`` work with one
  trained network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from diffpose.config import Config, SamplingConfig
from diffpose.diffusion import HeatmapDiffusion, PoseSamples, sample_poses, training_loss, training_noise
from diffpose.estimators.base import Batch, PoseEstimator

SELF_CONDITION_RATE = 0.5  # share of training samples that refine their own first estimate (Chen et al. 2023)


class DiffusionEstimator(PoseEstimator):
    """A denoising network (``encode_condition`` / ``prepare`` / ``denoise``, ``forward(clips, x_t, t)``) sampled
    with DDIM. See :class:`~diffpose.estimators.base.PoseEstimator` for the interface."""

    samples: ClassVar[bool] = True
    graph_methods: ClassVar[tuple[str, ...]] = ("backbone_features", "condition_from_features", "prepare", "denoise")

    def __init__(self, net: Any, cfg: Config):
        super().__init__(net, cfg)
        self.diffusion = HeatmapDiffusion.from_config(cfg.diffusion)
        self.predicts = cfg.model.decoder.predicts
        self.self_condition = cfg.model.decoder.self_condition

    def training_noise(self, generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        """``t (B,)``, ``noise (B, J, H, W)`` and, when self-conditioning, ``self_cond (B,)``, drawn in that order."""
        shape = (self.net.num_joints, *self.net.heatmap_size)
        return training_noise(batch, shape, self.diffusion, generator, self.cfg.diffusion.train_pure_noise,
                              SELF_CONDITION_RATE if self.self_condition else 0.0)

    def loss(self, batch: Batch, noise: dict[str, torch.Tensor],
             forward: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        net = forward or self.net
        frames = batch["frames"]  # (B, T, 3, H, W)
        if self.self_condition:
            denoise = lambda x_t, t: net(frames, x_t, t, noise["self_cond"])  # noqa: E731
        else:
            denoise = lambda x_t, t: net(frames, x_t, t)  # noqa: E731
        loss, _ = training_loss(denoise, batch["heatmaps"], batch["weights"], self.diffusion, noise["t"],
                                noise["noise"], predicts=self.predicts)
        return {"loss": loss}

    def predict_condition(self, cond: torch.Tensor, sampling: SamplingConfig | None = None,
                          generator: torch.Generator | None = None) -> PoseSamples:
        s = sampling or self.cfg.sampling
        return sample_poses(self.net, self.diffusion, self.codec, cond=cond, steps=s.steps, eta=s.eta,
                            hypotheses=s.ensemble, combine=s.combine, generator=generator, predicts=self.predicts,
                            self_condition=self.self_condition)
