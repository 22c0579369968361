"""Training objective (method §3): the network predicts x0, the loss is a visibility-weighted heatmap MSE.

:func:`heatmap_mse` is measured **in heatmap space** (``[0, 1]``, the target's own scale): the
network's signal-space prediction is decoded with ``(x / s + 1) / 2`` first, so loss values do not depend
on the signal scale ``s`` and are comparable with the single-frame baseline's loss (same function on its
raw output). Normalisation follows mmpose's ``JointsMSELoss`` without its factor 1/2::

    loss = mean over (B, J) of  w_bj * mean over pixels of (pred - target)^2,   w_bj = visible_bj * joint_w_j

so an invisible joint contributes zero and does not change the denominator.

:func:`training_noise` draws ``t ~ U{0..T-1}`` (optionally with extra samples at ``T-1``) and the noise of a
batch; :func:`training_loss` is the loss of a denoising network given those draws:
``x_t = q_sample(encode(target), t, eps)``, ``x0_hat = denoise(x_t, t)``. It is the only implementation of
the diffusion training loss: the DiffPose estimator (what ``diffpose train`` runs) calls it.
"""

from __future__ import annotations

from collections.abc import Callable

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
    (A sampler that starts at step ``start_t`` from a noised prior trains with ``timesteps = start_t + 1``.)
    At low noise the network can copy ``x_t``; the extra pure-noise samples make it learn the
    condition -> heatmap path sooner (docs/model.md, "Choices where the paper is silent").
    """
    where = generator.device if generator is not None else device
    t = torch.randint(0, timesteps, (batch,), generator=generator, device=where)
    if pure_noise > 0:
        u = torch.rand((batch,), generator=generator, device=where)
        t = torch.where(u < pure_noise, torch.full_like(t, timesteps - 1), t)
    return t.to(device)


def training_noise(batch: int, shape: tuple[int, ...], diffusion: HeatmapDiffusion,
                   generator: torch.Generator | None = None, pure_noise: float = 0.0,
                   self_condition: float = 0.0, start_t: int | None = None,
                   from_prior: float = 0.0) -> dict[str, torch.Tensor]:
    """The random draws of one training batch, on the CPU: ``t (B,)`` (see :func:`sample_timesteps`; in
    ``0 .. start_t`` when given, else ``0 .. T-1``), then ``noise (B, *shape)``, then (with ``self_condition`` > 0)
    ``self_cond (B,)`` bool with that probability (the samples trained on their own first estimate), then (with
    ``from_prior`` > 0) ``from_prior (B,)`` bool (the samples whose ``x_t`` is noised from the model's prior
    instead of the ground truth), in that order from ``generator``.

    Drawing a whole global batch from one generator and slicing it per process makes N processes see exactly
    the draws one process would (the trainer's DDP parity).
    """
    steps = diffusion.timesteps if start_t is None else int(start_t) + 1
    t = sample_timesteps(batch, steps, generator, "cpu", pure_noise)  # (B,)
    noise = randn((batch, *shape), generator, "cpu")  # (B, J, H, W)
    draws = {"t": t, "noise": noise}
    if self_condition > 0:
        draws["self_cond"] = torch.rand((batch,), generator=generator) < self_condition  # (B,)
    if from_prior > 0:
        draws["from_prior"] = torch.rand((batch,), generator=generator) < from_prior  # (B,)
    return draws


def training_loss(denoise_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], target_heatmaps: torch.Tensor,
                  target_weights: torch.Tensor, diffusion: HeatmapDiffusion, t: torch.Tensor, noise: torch.Tensor,
                  joint_weights: torch.Tensor | None = None, predicts: str = "signal"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The diffusion training loss of one batch (method §3): noise the targets to step ``t``, predict x0.

    ``x_t = q_sample(encode(target), t, noise)``, ``x0_hat = denoise_fn(x_t, t)`` (signal space), and the
    loss is :func:`heatmap_mse` of ``decode(x0_hat)`` against the target, computed in float32.

    Args:
        denoise_fn: ``(x_t (B, J, H, W), t (B,)) -> x0_hat (B, J, H, W)``, e.g. ``lambda x_t, t: net(clips, x_t, t)``.
        target_heatmaps: ``(B, J, H, W)`` key-frame heatmaps in ``[0, 1]`` (from the codec).
        target_weights: ``(B, J)``.
        diffusion: the schedule and signal transform.
        t, noise: ``(B,)`` steps and ``(B, J, H, W)`` noise (from :func:`training_noise`).
        joint_weights: optional ``(J,)`` per-joint loss factors.
        predicts: ``"signal"`` (``denoise_fn`` returns ``x0`` in signal space, decoded here) or ``"heatmap"``
            (it returns heatmaps).

    Returns:
        ``(loss, prediction)``: the scalar loss and the decoded prediction ``(B, J, H, W)`` (detached).
    """
    if t.shape[0] != target_heatmaps.shape[0] or noise.shape != target_heatmaps.shape:
        raise DiffPoseError(f"t {tuple(t.shape)} and noise {tuple(noise.shape)} do not fit targets "
                            f"{tuple(target_heatmaps.shape)}", field="noise")
    x0 = diffusion.signal.encode(target_heatmaps)  # (B, J, H, W)
    x_t = diffusion.q_sample(x0, t, noise)  # (B, J, H, W)
    x0_hat = denoise_fn(x_t, t).float()  # (B, J, H, W)
    pred = x0_hat if predicts == "heatmap" else diffusion.signal.decode(x0_hat)  # heatmap space, unclamped
    return heatmap_mse(pred, target_heatmaps, target_weights, joint_weights), pred.detach()
