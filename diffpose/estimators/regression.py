"""Heatmap regression as a pose estimator: one forward pass, trained with the heatmap MSE (the single-frame
baseline, ViTPose's recipe). Nothing is sampled: sampling settings do not apply and the ensemble spread
(uncertainty) is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from diffpose.config import Config, SamplingConfig
from diffpose.diffusion import PoseSamples, combine_hypotheses, heatmap_mse
from diffpose.estimators.base import Batch, PoseEstimator
from diffpose.models.graphs import BACKBONE, CONDITION, Graph, heatmaps_graph


class RegressionEstimator(PoseEstimator):
    """A regression network (``heatmaps(cond)``, ``forward(clips) -> heatmaps``). See
    :class:`~diffpose.estimators.base.PoseEstimator` for the interface."""

    samples: ClassVar[bool] = False

    @classmethod
    def graphs(cls, cfg: Config) -> dict[str, Graph]:
        head = heatmaps_graph("head", "heatmap head (ViTPose deconv)", module="head")
        return {g.method: g for g in (BACKBONE, CONDITION, head)}

    def loss(self, batch: Batch, noise: dict[str, torch.Tensor],
             forward: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        pred = (forward or self.net)(batch["frames"])  # (B, J, H, W)
        return {"loss": heatmap_mse(pred.float(), batch["heatmaps"], batch["weights"])}

    def predict_condition(self, cond: torch.Tensor, sampling: SamplingConfig | None = None,
                          generator: torch.Generator | None = None) -> PoseSamples:
        heatmaps = self.net.heatmaps(cond).float()  # (B, J, H, W)
        return combine_hypotheses(heatmaps[:, None], self.codec)  # one hypothesis
