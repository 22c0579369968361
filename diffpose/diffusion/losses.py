"""Training objective (method §3): the network predicts x0, the loss is a visibility-weighted heatmap MSE.

:func:`heatmap_mse` is measured **in heatmap space** (``[0, 1]``, the target's own scale): the
network's signal-space prediction is decoded with ``(x / s + 1) / 2`` first, so loss values do not depend
on the signal scale ``s`` and are comparable with the single-frame baseline's loss (same function on its
raw output). Normalisation follows mmpose's ``JointsMSELoss`` without its factor 1/2::

    loss = mean over (B, J) of  w_bj * mean over pixels of (pred - target)^2,   w_bj = visible_bj * joint_w_j

so an invisible joint contributes zero and does not change the denominator.

:func:`training_loss` is one training step's loss for a DiffPose network: ``t ~ U{0..T-1}`` per
sample, ``x_t = q_sample(encode(target), t, eps)``, ``x0_hat = net(clips, x_t, t)``.
"""

from __future__ import annotations

from typing import Any

import torch

from diffpose.diffusion.schedule import HeatmapDiffusion, randn
from diffpose.errors import DiffPoseError


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                joint_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Visibility-weighted heatmap MSE.

    Args:
        pred, target: ``(B, J, H, W)`` heatmaps in ``[0, 1]`` scale.
        weights: ``(B, J)`` target weights (0 for absent / invisible joints).
        joint_weights: optional ``(J,)`` per-joint factors (e.g. DCPose's 1.5 for wrists).

    Returns:
        scalar loss.
    """
    if pred.shape != target.shape or pred.ndim != 4 or weights.shape != pred.shape[:2]:
        raise DiffPoseError(f"expected pred/target (B, J, H, W) and weights (B, J); got {tuple(pred.shape)}, "
                            f"{tuple(target.shape)}, {tuple(weights.shape)}", field="heatmaps")
    w = weights.to(pred.dtype)
    if joint_weights is not None:
        w = w * joint_weights.to(device=pred.device, dtype=pred.dtype)[None, :]  # (B, J)
    per_joint = (pred - target).pow(2).mean(dim=(2, 3))  # (B, J)
    return (per_joint * w).mean()


def sample_timesteps(batch: int, timesteps: int, generator: torch.Generator | None,
                     device: torch.device | str, pure_noise: float = 0.0) -> torch.Tensor:
    """``(B,)`` long training steps (drawn on the generator's device, then moved).

    Uniform on ``0 .. T-1``, except that a fraction ``pure_noise`` of the samples (in expectation) is put at
    ``T-1``, the pure-noise end where the first DDIM step starts and only the condition carries information.
    At low noise the network can copy ``x_t``; the extra pure-noise samples make it learn the
    condition -> heatmap path sooner (see README, "Training choices").
    """
    where = generator.device if generator is not None else device
    t = torch.randint(0, timesteps, (batch,), generator=generator, device=where)
    if pure_noise > 0:
        u = torch.rand((batch,), generator=generator, device=where)
        t = torch.where(u < pure_noise, torch.full_like(t, timesteps - 1), t)
    return t.to(device)


def training_loss(net: Any, clips: torch.Tensor, target_heatmaps: torch.Tensor, target_weights: torch.Tensor,
                  diffusion: HeatmapDiffusion, generator: torch.Generator | None = None,
                  joint_weights: torch.Tensor | None = None, return_prediction: bool = False,
                  pure_noise: float = 0.0) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Loss of one batch for a DiffPose network.

    Args:
        net: a :class:`~diffpose.models.DiffPoseNet` (or a DDP wrapper of one): ``net(clips, x_t, t)``
            must return ``x0_hat`` in signal space.
        clips: ``(B, T, 3, H_in, W_in)`` normalised crops.
        target_heatmaps: ``(B, J, H, W)`` key-frame heatmaps in ``[0, 1]`` (from the codec).
        target_weights: ``(B, J)``.
        diffusion: the schedule and signal transform.
        generator: optional ``torch.Generator`` for ``t`` and the noise (reproducible steps).
        joint_weights: optional ``(J,)`` per-joint loss factors.
        return_prediction: also return the decoded prediction ``(B, J, H, W)`` in ``[0, 1]`` scale (detached).

    Returns:
        the scalar loss (and the prediction when asked).
    """
    b = target_heatmaps.shape[0]
    if clips.shape[0] != b:
        raise DiffPoseError(f"{clips.shape[0]} clips but {b} target heatmaps", field="clips")
    device = target_heatmaps.device
    t = sample_timesteps(b, diffusion.timesteps, generator, device, pure_noise)  # (B,)
    noise = randn(tuple(target_heatmaps.shape), generator, device, target_heatmaps.dtype)  # (B, J, H, W)
    x0 = diffusion.signal.encode(target_heatmaps)  # (B, J, H, W)
    x_t = diffusion.q_sample(x0, t, noise)  # (B, J, H, W)
    x0_hat = net(clips, x_t, t)  # (B, J, H, W), signal space
    pred = diffusion.signal.decode(x0_hat)  # (B, J, H, W), heatmap space (unclamped: keeps gradients)
    loss = heatmap_mse(pred, target_heatmaps, target_weights, joint_weights)
    if return_prediction:
        return loss, pred.detach()
    return loss
