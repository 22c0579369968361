"""Heatmap diffusion, kept apart from the network (method §3).

* :mod:`~diffpose.diffusion.schedule` -- cosine schedule, ``q_sample``, :class:`HeatmapSignal`,
  :class:`HeatmapDiffusion`
* :mod:`~diffpose.diffusion.losses` -- visibility-weighted heatmap MSE, :func:`training_noise`, :func:`training_loss`
* :mod:`~diffpose.diffusion.sampler` -- DDIM with any number of steps and eta
* :mod:`~diffpose.diffusion.ensemble` -- K hypotheses in one batch, mean / median combination, uncertainty

The network is driven only through a ``denoise_fn(x_t, t)`` (training) and ``encode_condition`` /
``prepare`` / ``denoise`` (sampling); :mod:`diffpose.estimators` wires a network to these functions.
"""

from diffpose.diffusion.ensemble import COMBINE_MODES, PoseSamples, combine_hypotheses, sample_from_config, sample_poses
from diffpose.diffusion.losses import heatmap_mse, sample_timesteps, training_loss, training_noise
from diffpose.diffusion.sampler import DDIMStepOutput, ddim_sample, ddim_step, ddim_time_pairs
from diffpose.diffusion.schedule import HeatmapDiffusion, HeatmapSignal, NoiseSchedule, cosine_beta_schedule, randn

__all__ = [
    "COMBINE_MODES", "DDIMStepOutput", "HeatmapDiffusion", "HeatmapSignal", "NoiseSchedule", "PoseSamples",
    "combine_hypotheses", "cosine_beta_schedule", "ddim_sample", "ddim_step", "ddim_time_pairs", "heatmap_mse",
    "randn", "sample_from_config", "sample_poses", "sample_timesteps", "training_loss", "training_noise",
]  # fmt: skip
