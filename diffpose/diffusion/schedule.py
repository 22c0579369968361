"""Noise schedule, forward noising and the heatmap signal transform (method §3).

* :func:`cosine_beta_schedule` -- Nichol & Dhariwal's cosine schedule, as DiffusionDet uses it:
  ``abar(t) = f(t) / f(0)`` with ``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``, ``s = 0.008``,
  ``beta_t = 1 - abar(t + 1) / abar(t)`` clipped to ``[0, 0.999]``.
* :class:`NoiseSchedule` -- the ``alpha_bar`` table and ``q_sample``:
  ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps``. Index ``t`` runs over ``0 .. T-1``; the DDIM
  sampler also asks for ``t = -1``, which means "no noise" (``abar = 1``).
* :class:`HeatmapSignal` -- heatmaps ``h in [0, 1]`` are diffused as ``x = (2h - 1) * scale`` (DiffusionDet's
  signal scaling; ``scale`` is the signal-to-noise knob). ``decode`` is the exact inverse.
* :class:`HeatmapDiffusion` -- the three together, built from :class:`~diffpose.config.DiffusionConfig`.

Tables are float64 on the CPU; lookups return values in the dtype and on the device of the data.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from diffpose.errors import DiffPoseError

BETA_MAX = 0.999  # clip of the largest beta (DiffusionDet / improved DDPM)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """``(T,)`` float64 betas of the cosine schedule."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    f = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2  # (T+1,)
    alphas_cumprod = f / f[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])  # (T,)
    return betas.clamp(0, BETA_MAX)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise on ``device``; drawn on the generator's own device when one is given.

    Drawing from a CPU generator and moving the result makes samples identical on CPU and CUDA for a seed.
    """
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


class NoiseSchedule:
    """``alpha_bar`` table of a cosine schedule with ``T`` steps, and forward noising."""

    def __init__(self, timesteps: int = 1000, cosine_s: float = 0.008):
        if timesteps < 1:
            raise DiffPoseError(f"timesteps must be >= 1, got {timesteps}", field="diffusion.timesteps")
        self.timesteps = int(timesteps)
        self.betas = cosine_beta_schedule(timesteps, cosine_s)  # (T,) float64
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,) float64

    def alpha_bar(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``abar_t`` for ``t`` in ``-1 .. T-1`` (``-1`` gives 1), in ``like``'s dtype/device (default float32 CPU)."""
        t = torch.as_tensor(t, dtype=torch.long).cpu()
        if bool(((t < -1) | (t >= self.timesteps)).any()):
            raise DiffPoseError(f"step outside -1..{self.timesteps - 1}: {t.tolist()}", field="t")
        table = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])  # index t + 1
        out = table[t + 1]
        if like is None:
            return out.float()
        return out.to(device=like.device, dtype=like.dtype)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` for ``x0, noise (B, ...)`` and ``t (B,)``."""
        abar = self.alpha_bar(t, like=x0).reshape(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


class HeatmapSignal:
    """Heatmaps in ``[0, 1]`` <-> the diffused signal in ``[-scale, scale]``: ``x = (2h - 1) * scale``."""

    def __init__(self, scale: float = 2.0):
        if scale <= 0:
            raise DiffPoseError(f"signal scale must be > 0, got {scale}", field="diffusion.scale")
        self.scale = float(scale)

    def encode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """``h in [0, 1]`` -> ``(2h - 1) * scale``."""
        return (heatmaps * 2 - 1) * self.scale

    def decode(self, x: torch.Tensor, clamp: bool = False) -> torch.Tensor:
        """``x`` -> ``(x / scale + 1) / 2``; with ``clamp`` the result is clipped to ``[0, 1]``."""
        h = (x / self.scale + 1) * 0.5
        return h.clamp(0, 1) if clamp else h

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Clip a signal-space prediction to ``[-scale, scale]`` (the image of ``[0, 1]``)."""
        return x.clamp(-self.scale, self.scale)


class HeatmapDiffusion:
    """The diffusion process on heatmaps: a :class:`NoiseSchedule` and a :class:`HeatmapSignal`.

    Args:
        timesteps: ``T``; cosine_s: the schedule's offset ``s``; scale: the signal scale.
    """

    def __init__(self, timesteps: int = 1000, cosine_s: float = 0.008, scale: float = 2.0):
        self.schedule = NoiseSchedule(timesteps, cosine_s)
        self.signal = HeatmapSignal(scale)

    @classmethod
    def from_config(cls, cfg: Any) -> HeatmapDiffusion:
        """From a :class:`~diffpose.config.DiffusionConfig` (its sampling fields are read by the sampler)."""
        return cls(timesteps=cfg.timesteps, cosine_s=cfg.cosine_s, scale=cfg.scale)

    @property
    def timesteps(self) -> int:
        return self.schedule.timesteps

    @property
    def scale(self) -> float:
        return self.signal.scale

    def __repr__(self) -> str:
        return f"HeatmapDiffusion(timesteps={self.timesteps}, schedule=cosine, scale={self.scale})"

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward noising of signal-space ``x0`` (see :meth:`NoiseSchedule.q_sample`)."""
        return self.schedule.q_sample(x0, t, noise)
