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
from diffpose.diffusion import HeatmapDiffusion, PoseSamples, heatmap_mse, sample_poses, training_loss, training_noise
from diffpose.estimators.base import Batch, PoseEstimator
from diffpose.estimators.calibration import apply_calibration
from diffpose.models.graphs import BACKBONE, CONDITION, PREPARE, Graph, denoise_graph, heatmaps_graph
from diffpose.models.pose_decoder import PYRAMID_FIELDS

SELF_CONDITION_RATE = 0.5  # share of training samples that refine their own first estimate (Chen et al. 2023)


class DiffusionEstimator(PoseEstimator):
    """A denoising network (``encode_condition`` / ``prepare`` / ``denoise``, ``forward(clips, x_t, t)``) sampled
    with DDIM. See :class:`~diffpose.estimators.base.PoseEstimator` for the interface."""

    samples: ClassVar[bool] = True

    def __init__(self, net: Any, cfg: Config):
        super().__init__(net, cfg)
        self.diffusion = HeatmapDiffusion.from_config(cfg.diffusion)
        self.predicts = cfg.model.decoder.predicts
        self.self_condition = cfg.model.decoder.self_condition
        self.prior_head = cfg.model.decoder.prior_head
        d = cfg.diffusion
        self.start, self.start_t = d.start, (d.start_t if d.start == "prior" else None)

    @classmethod
    def graphs(cls, cfg: Config) -> dict[str, Graph]:
        """Backbone, STRL, the decoder's pyramid and step, and the prior head when sampling starts from it."""
        d = cfg.model.decoder
        graphs = [BACKBONE, CONDITION, PREPARE, denoise_graph(d.self_condition)]
        if d.prior_head:
            graphs.append(heatmaps_graph("prior_head", "prior head (sampling starts from it)", module="prior_head"))
        return {g.method: g for g in graphs}

    def example_tensors(self, batch: int, hypotheses: int, generator: torch.Generator | None
                        ) -> dict[str, torch.Tensor]:
        """The base's tensors, the pyramid's, and ``x_t (B*K, J, H, W)``, ``t (B*K,)`` and ``prev``."""
        out = super().example_tensors(batch, hypotheses, generator)
        m = self.cfg.model
        out.update(zip(PYRAMID_FIELDS, self.net.prepare(out["cond"]).tensors()))
        out["x_t"] = torch.randn(batch * hypotheses, m.num_joints, *m.heatmap_size, generator=generator)
        out["t"] = torch.randint(0, self.cfg.diffusion.timesteps, (batch * hypotheses,), generator=generator)
        out["prev"] = torch.rand(out["x_t"].shape, generator=generator)
        return out

    def memory_per_clip(self, sampling: SamplingConfig | None = None) -> tuple[int, str]:
        """``K`` hypotheses' heatmaps and the decoder's feature maps at heatmap resolution, several times over
        for a step's temporaries."""
        k = (sampling or self.cfg.sampling).ensemble
        m = self.cfg.model
        h, w = m.heatmap_size
        per_hypothesis = 4 * h * w * (8 * m.num_joints + 2 * sum(m.decoder.widths) + 2 * m.decoder.heatmap_dim)
        return int(k) * per_hypothesis, f"{k} hypotheses per person"

    def training_noise(self, generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        """``t (B,)``, ``noise (B, J, H, W)`` and, when self-conditioning, ``self_cond (B,)``, drawn in that order."""
        shape = (self.net.num_joints, *self.net.heatmap_size)
        d = self.cfg.diffusion
        return training_noise(batch, shape, self.diffusion, generator, d.train_pure_noise,
                              SELF_CONDITION_RATE if self.self_condition else 0.0, self.start_t,
                              d.train_from_prior if self.start == "prior" else 0.0)

    def loss(self, batch: Batch, noise: dict[str, torch.Tensor],
             forward: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        net = forward or self.net
        frames = batch["frames"]  # (B, T, 3, H, W)
        if self.prior_head:
            return self._loss_with_prior(net, batch, noise)
        if self.self_condition:
            denoise = lambda x_t, t: net(frames, x_t, t, noise["self_cond"])  # noqa: E731
        else:
            denoise = lambda x_t, t: net(frames, x_t, t)  # noqa: E731
        loss, _ = training_loss(denoise, batch["heatmaps"], batch["weights"], self.diffusion, noise["t"],
                                noise["noise"], predicts=self.predicts)
        return {"loss": loss}

    def _loss_with_prior(self, net: Callable[..., Any], batch: Batch, noise: dict[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
        """Denoising loss plus the prior head's heatmap MSE (the regression loss of the temporal regressor).

        ``x_t`` is noised from the ground truth, or, for the samples ``from_prior`` marks, from the network's own
        (detached) prior: what a prior-started sampler feeds the decoder at test time.
        """
        target, weights, t, eps = batch["heatmaps"], batch["weights"], noise["t"], noise["noise"]
        x0_gt = self.diffusion.signal.encode(target)  # (B, J, H, W)
        from_prior = noise.get("from_prior")

        def make_x_t(prior: torch.Tensor) -> torch.Tensor:  # prior (B, J, H, W) detached heatmaps in [0, 1]
            x0 = x0_gt
            if from_prior is not None:
                x0 = torch.where(from_prior[:, None, None, None], self.diffusion.signal.encode(prior), x0_gt)
            return self.diffusion.q_sample(x0, t, eps)  # (B, J, H, W)

        x0_hat, prior = net(batch["frames"], make_x_t, t, noise.get("self_cond"))
        pred = x0_hat.float() if self.predicts == "heatmap" else self.diffusion.signal.decode(x0_hat.float())
        denoise = heatmap_mse(pred, target, weights)
        regress = heatmap_mse(prior.float(), target, weights)
        return {"loss": denoise + regress, "denoise_loss": denoise.detach(), "prior_loss": regress.detach()}

    def predict_condition(self, cond: torch.Tensor, sampling: SamplingConfig | None = None,
                          generator: torch.Generator | None = None) -> PoseSamples:
        s = sampling or self.cfg.sampling
        out = sample_poses(self.net, self.diffusion, self.codec, cond=cond, steps=s.steps, eta=s.eta,
                            hypotheses=s.ensemble, combine=s.combine, generator=generator, predicts=self.predicts,
                           self_condition=self.self_condition, start=self.start, start_t=self.start_t)
        return apply_calibration(out, self.cfg.calibration)  # unchanged when the checkpoint holds no fit
