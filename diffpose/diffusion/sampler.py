"""DDIM sampling of heatmaps with an x0-predicting network (method §3; DiffusionDet's sampler, our code).

Time pairs: ``linspace(-1, T-1, S+1)`` truncated to integers and reversed, paired consecutively; for
``T = 1000`` and ``S = 4`` that is ``(999, 749), (749, 499), (499, 249), (249, -1)``. At every pair the
network predicts ``x0`` (clamped to ``[-s, s]``), the noise ``eps`` implied by ``x_t`` and ``x0`` is
computed, and ``x_{t'}`` is re-noised from them; the last pair (``t' = -1``) returns ``x0`` itself. Any
number of steps works with one trained network ("adjustable without retraining", method §3).

The network enters as a callable ``denoise_fn(x_t (N, J, H, W), t (N,)) -> x0_hat (N, J, H, W)`` in
signal space; the ensemble (:mod:`diffpose.diffusion.ensemble`) builds it from a network and a
condition pyramid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffpose.diffusion.schedule import HeatmapDiffusion, randn
from diffpose.errors import DiffPoseError

DenoiseFn = Callable[..., torch.Tensor]  # (x_t, t) or, self-conditioned, (x_t, t, prev) -> x0 (signal space)


def ddim_time_pairs(timesteps: int, steps: int, start: int | None = None) -> list[tuple[int, int]]:
    """``[(t, t_next), ...]`` from ``start`` (default ``T-1``) down to ``-1`` in ``steps`` pairs."""
    start = timesteps - 1 if start is None else int(start)
    if not 0 <= start < timesteps:
        raise DiffPoseError(f"sampling start step must be in 0..{timesteps - 1}, got {start}",
                            field="diffusion.start_t")
    if not 1 <= steps <= start + 1:
        raise DiffPoseError(f"sampling steps must be in 1..{start + 1}, got {steps}", field="sampling.steps")
    times = torch.linspace(-1, start, steps + 1).int().tolist()[::-1]
    return list(zip(times[:-1], times[1:]))


@dataclass
class DDIMStepOutput:
    """One DDIM step. Tensors are ``(N, J, H, W)`` in signal space."""

    prev_sample: torch.Tensor  # x_{t'} (equal to pred_x0 on the last step)
    pred_x0: torch.Tensor  # clamped x0 prediction
    pred_noise: torch.Tensor | None  # eps implied by x_t and pred_x0 (None on the last step, where nothing uses it)


def ddim_step(diffusion: HeatmapDiffusion, x_t: torch.Tensor, x0_pred: torch.Tensor, t: int, t_next: int,
              eta: float = 1.0, generator: torch.Generator | None = None) -> DDIMStepOutput:
    """Move from step ``t`` to ``t_next < t`` given the network's x0 prediction.

    Args:
        diffusion: schedule and signal (for ``abar`` and the clamp range).
        x_t: ``(N, J, H, W)`` current sample; x0_pred: ``(N, J, H, W)`` raw network output.
        t, t_next: current and next step (``t_next = -1`` ends sampling).
        eta: 0 gives deterministic DDIM, 1 the DDPM-like variance (DiffusionDet's default).
        generator: for the fresh noise ``z``.
    """
    # Notation (code -> paper / DDIM, Song et al. 2021, eq. 12):
    #   x_t        -> x_t              current noisy heatmap
    #   x0         -> \hat{x}_0        network prediction, clamped to [-s, s]
    #   eps        -> \hat{\epsilon}   noise implied by x_t and \hat{x}_0
    #   abar       -> \bar{\alpha}_t   abar_next -> \bar{\alpha}_{t'}
    #   sigma      -> \sigma_t = eta * sqrt((1 - abar / abar_next) * (1 - abar_next) / (1 - abar))
    #   c          -> sqrt(1 - abar_next - sigma^2), the weight of the re-used noise direction
    #   z          -> fresh N(0, I) noise
    # 1. clamp the prediction to the signal range
    x0 = diffusion.signal.clamp(x0_pred)
    # 2. the last step returns the prediction itself (the noise is not needed: not computed)
    if t_next < 0:
        return DDIMStepOutput(prev_sample=x0, pred_x0=x0, pred_noise=None)
    # 3. the noise that x_t and x0 imply: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps
    abar = float(diffusion.schedule.alpha_bar(t))
    eps = (x_t / math.sqrt(abar) - x0) / math.sqrt(1.0 / abar - 1.0)
    # 4. variance and direction weights
    abar_next = float(diffusion.schedule.alpha_bar(t_next))
    sigma = eta * math.sqrt((1 - abar / abar_next) * (1 - abar_next) / (1 - abar))
    c = math.sqrt(max(1 - abar_next - sigma**2, 0.0))
    # 5. x_{t'} = sqrt(abar') x0 + c eps + sigma z
    x_next = math.sqrt(abar_next) * x0 + c * eps
    if sigma > 0:
        x_next = x_next + sigma * randn(tuple(x_t.shape), generator, x_t.device, x_t.dtype)
    return DDIMStepOutput(prev_sample=x_next, pred_x0=x0, pred_noise=eps)


def ddim_sample(denoise_fn: DenoiseFn, shape: tuple[int, ...], diffusion: HeatmapDiffusion, steps: int = 1,
                eta: float = 1.0, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, x_T: torch.Tensor | None = None,
                self_condition: bool = False, start: int | None = None, prev: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Run DDIM from step ``start`` (default ``T-1``, pure noise) and return the final x0 in signal space.

    Args:
        denoise_fn: ``(x_t (N, J, H, W), t (N,) long) -> x0_hat (N, J, H, W)``, called ``steps`` times.
        shape: ``(N, J, H, W)``.
        diffusion: schedule and signal; steps: number of DDIM steps ``S``; eta: see :func:`ddim_step`.
        generator: draws ``x_T`` and the per-step noise (same seed -> same sample).
        device, dtype: where the sample lives.
        x_T: optional starting sample ``(N, J, H, W)`` at step ``start`` (then ``generator`` only drives the
            per-step noise); pure noise when not given.
        self_condition: call ``denoise_fn(x_t, t, prev)`` with the previous step's clamped ``x0`` (``prev`` at the
            first step), for a network trained with self-conditioning.
        start: the first step (``diffusion.start_t`` when sampling starts from a noised prior).
        prev: the estimate the first step self-conditions on, signal space (None: none yet).

    Returns:
        ``x0 (N, J, H, W)`` in ``[-s, s]``.
    """
    pairs = ddim_time_pairs(diffusion.timesteps, steps, start)
    x = randn(shape, generator, device, dtype) if x_T is None else x_T.to(device=device, dtype=dtype)
    for t, t_next in pairs:
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)  # (N,)
        x0 = denoise_fn(x, t_batch, prev) if self_condition else denoise_fn(x, t_batch)  # (N, J, H, W)
        out = ddim_step(diffusion, x, x0, t, t_next, eta, generator)
        x, prev = out.prev_sample, out.pred_x0
    return x
