"""Pose ensemble (method §3, "several noise maps are initialised and their predictions combined").

:func:`sample_poses` runs ``K`` hypotheses for each of ``B`` clips as **one batch of ``B*K``**:

1. ``cond = net.encode_condition(clips)`` -- backbone + STRL, once per clip (skipped if ``cond`` is given);
2. ``pyramid = net.prepare(cond)`` -- once per clip, then ``pyramid.expand(K)`` (broadcast, no recompute);
3. DDIM with ``S`` steps from ``B*K`` independent noise maps (row ``b*K + k`` is hypothesis ``k`` of clip ``b``);
4. every hypothesis is decoded with the codec; hypotheses are combined per clip.

Combination (``combine``):

* ``"mean"`` (default, method §9 row 7): average the ``K`` heatmaps, then decode;
* ``"median"``: the coordinate-wise median of the ``K`` decoded keypoints (robust to a stray hypothesis);
  the score is then the mean of the hypotheses' scores (their heatmap maxima).
* ``"medoid"``: per joint, the hypothesis whose keypoint has the smallest summed distance to the others (the
  first such one on ties): a mode of the hypotheses, never a point between two answers (a left/right
  ambiguity); score as for ``"median"``;
* ``"peak"``: per joint, the hypothesis with the highest heatmap maximum, and that maximum as the score.

Uncertainty, per joint, in crop pixels: the RMS distance of the hypotheses' keypoints to the combined
keypoint, ``sqrt(mean_k |p_k - p|^2)``. It is 0 for ``K = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import COMBINE_MODES
from diffpose.diffusion.sampler import ddim_sample
from diffpose.diffusion.schedule import HeatmapDiffusion, randn
from diffpose.errors import DiffPoseError


@dataclass
class PoseSamples:
    """Result of :func:`sample_poses` for ``B`` clips, ``K`` hypotheses, ``J`` joints.

    Attributes:
        heatmaps: ``(B, J, H, W)`` mean of the hypotheses' heatmaps, in ``[0, 1]``.
        keypoints: ``(B, J, 2)`` combined keypoints, crop pixels ``(x, y)``.
        scores: ``(B, J)`` confidence in ``[0, 1]`` (heatmap maximum; see ``combine``).
        hypotheses_keypoints: ``(B, K, J, 2)`` each hypothesis decoded on its own, crop pixels.
        uncertainty: ``(B, J)`` RMS distance of the hypotheses to ``keypoints``, crop pixels.
        prior_keypoints, prior_scores: ``(B, J, 2)`` and ``(B, J)``, the prior head's heatmap decoded, when
            sampling started from it (else None).
        spread: ``(B, J)`` the raw RMS spread (``uncertainty`` before any calibration replaces it).
    """

    heatmaps: torch.Tensor
    keypoints: torch.Tensor
    scores: torch.Tensor
    hypotheses_keypoints: torch.Tensor
    uncertainty: torch.Tensor
    prior_keypoints: torch.Tensor | None = None
    prior_scores: torch.Tensor | None = None

    @property
    def spread(self) -> torch.Tensor:
        """``(B, J)`` RMS distance of the hypotheses to ``keypoints``, crop pixels (0 for one hypothesis)."""
        return rms_spread(self.hypotheses_keypoints, self.keypoints)


def rms_spread(hyp_keypoints: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """``(B, K, J, 2)`` hypotheses and ``(B, J, 2)`` combined keypoints -> ``(B, J)`` ``sqrt(mean_k |p_k - p|^2)``."""
    return (hyp_keypoints - keypoints[:, None]).pow(2).sum(-1).mean(dim=1).sqrt()


def combine_hypotheses(hyp_heatmaps: torch.Tensor, codec: HeatmapCodec, combine: str = "mean") -> PoseSamples:
    """Combine ``(B, K, J, H, W)`` heatmaps in ``[0, 1]`` into a :class:`PoseSamples` (``combine``: one of
    :data:`~diffpose.config.COMBINE_MODES`, checked with the rest of the config)."""
    b, k, j, h, w = hyp_heatmaps.shape
    if k == 1:  # one hypothesis: it is the combination (no second decode), spread 0
        keypoints, scores = codec.decode(hyp_heatmaps[:, 0])  # (B, J, 2), (B, J)
        return PoseSamples(heatmaps=hyp_heatmaps[:, 0], keypoints=keypoints, scores=scores,
                           hypotheses_keypoints=keypoints[:, None], uncertainty=torch.zeros_like(scores))
    hyp_kp, hyp_scores = codec.decode(hyp_heatmaps.reshape(b * k, j, h, w))  # (B*K, J, 2), (B*K, J)
    hyp_kp = hyp_kp.reshape(b, k, j, 2)  # (B, K, J, 2)
    hyp_scores = hyp_scores.reshape(b, k, j)  # (B, K, J)
    mean_hm = hyp_heatmaps.mean(dim=1)  # (B, J, H, W)
    if combine == "mean":
        keypoints, scores = codec.decode(mean_hm)  # (B, J, 2), (B, J)
    elif combine == "median":
        keypoints = hyp_kp.median(dim=1).values  # (B, J, 2)
        scores = hyp_scores.mean(dim=1)  # (B, J)
    else:  # one hypothesis per joint: the medoid, or the most confident
        if combine == "medoid":
            dist = (hyp_kp[:, :, None] - hyp_kp[:, None]).norm(dim=-1).sum(dim=2)  # (B, K, J) to the others
            pick = dist.argmin(dim=1)  # (B, J)
            scores = hyp_scores.mean(dim=1)  # (B, J)
        elif combine == "peak":
            scores, pick = hyp_scores.max(dim=1)  # (B, J) each
        else:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        keypoints = hyp_kp.gather(1, pick[:, None, :, None].expand(b, 1, j, 2))[:, 0]  # (B, J, 2)
    return PoseSamples(heatmaps=mean_hm, keypoints=keypoints, scores=scores, hypotheses_keypoints=hyp_kp,
                       uncertainty=rms_spread(hyp_kp, keypoints))


@torch.no_grad()
def sample_poses(net: Any, diffusion: HeatmapDiffusion, codec: HeatmapCodec, clips: torch.Tensor | None = None,
                 cond: torch.Tensor | None = None, steps: int = 1, eta: float = 1.0, hypotheses: int = 1,
                 combine: str = "mean", generator: torch.Generator | None = None, predicts: str | None = None,
                 self_condition: bool | None = None, start: str = "noise", start_t: int | None = None
                 ) -> PoseSamples:
    """Sample poses for ``B`` clips with ``K = hypotheses`` noise maps each, in one batch of ``B*K``.

    Args:
        net: a DiffPoseNet (``encode_condition``, ``prepare``, ``denoise``, ``num_joints``, ``heatmap_size``).
        diffusion: schedule and signal transform; codec: decodes heatmaps to crop pixels.
        clips: ``(B, T, 3, H_in, W_in)``; or give ``cond (B, C, h, w)`` computed already (e.g. from cached
            per-frame features via ``net.condition_from_features``).
        steps: DDIM steps ``S``; eta: DDIM noise; hypotheses: ``K``; combine: ``"mean"`` or ``"median"``.
        generator: ``torch.Generator`` for all noise (identical seeds give identical samples).
        predicts: the space ``net.denoise`` predicts ``x0`` in: ``"signal"`` or ``"heatmap"`` (then encoded here);
            default: the network's own ``predicts`` (``"signal"`` when it has none).
        self_condition: the network reads its previous estimate (``net.denoise(x_t, t, pyramid, prev)``, a
            heatmap; none at the first step); default: the network's own ``self_condition`` (else False).
        start: ``"noise"`` (DDIM from pure noise at ``T-1``, the paper's) or ``"prior"``: every hypothesis starts
            from the network's prior heatmap (``net.heatmaps(cond)``, its regression head) noised to ``start_t``
            with its own noise, and the first step self-conditions on the prior.

    Returns:
        :class:`PoseSamples`. The network is called: STRL once, ``prepare`` once, ``denoise`` ``S`` times.
    """
    if (clips is None) == (cond is None):
        raise DiffPoseError("give exactly one of clips and cond", field="clips")
    if predicts is None:
        predicts = getattr(net, "predicts", "signal")
    if self_condition is None:
        self_condition = getattr(net, "self_condition", False)
    if cond is None:
        cond = net.encode_condition(clips)  # (B, C, h, w)
    b, k = cond.shape[0], hypotheses
    pyramid = net.prepare(cond).expand(k)  # B*K rows
    shape = (b * k, net.num_joints, *net.heatmap_size)
    x_T = prev = prior = None
    if start == "prior":
        if start_t is None:
            raise DiffPoseError("a prior start needs start_t", field="diffusion.start_t")
        prior = net.heatmaps(cond).clamp(0, 1)  # (B, J, H, W) heatmaps
        prev = diffusion.signal.encode(prior).repeat_interleave(k, dim=0)  # (B*K, J, H, W) signal space
        t_start = torch.full((b * k,), int(start_t), dtype=torch.long)
        x_T = diffusion.q_sample(prev, t_start, randn(shape, generator, cond.device, prev.dtype))
    elif start != "noise":
        raise DiffPoseError(f"unknown sampling start {start!r}; choose noise or prior", field="diffusion.start")
    last: list[torch.Tensor] = []  # the network's latest output, when it predicts heatmaps

    def denoise_fn(x_t: torch.Tensor, t: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        if self_condition:
            heat_prev = None if prev is None else diffusion.signal.decode(prev, clamp=True)  # (B*K, J, H, W)
            out = net.denoise(x_t, t, pyramid, heat_prev)  # (B*K, J, H, W)
        else:
            out = net.denoise(x_t, t, pyramid)  # (B*K, J, H, W)
        if predicts != "heatmap":
            return out  # signal space
        last[:] = [out]
        return diffusion.signal.encode(out)  # signal space

    x0 = ddim_sample(denoise_fn, shape, diffusion, steps, eta, generator, cond.device, cond.dtype, x_T=x_T,
                     self_condition=self_condition, start=start_t if start == "prior" else None,
                     prev=prev)  # (B*K, J, H, W)
    # The last step returns the clamped prediction: decoded, that is the network's heatmap clamped to [0, 1]
    # (the same values up to float rounding, without the round trip through the signal space).
    heatmaps = last[0].clamp(0, 1) if last else diffusion.signal.decode(x0, clamp=True)  # (B*K, J, H, W) in [0, 1]
    hyp = heatmaps.reshape(b, k, *heatmaps.shape[1:])  # (B, K, J, H, W)
    out = combine_hypotheses(hyp, codec, combine)
    if prior is not None:
        out.prior_keypoints, out.prior_scores = codec.decode(prior)  # (B, J, 2), (B, J)
    return out


def sample_from_config(net: Any, diffusion: HeatmapDiffusion, codec: HeatmapCodec, sampling: Any,
                       clips: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> PoseSamples:
    """:func:`sample_poses` with ``steps``, ``eta``, ``ensemble`` and ``combine`` from a
    :class:`~diffpose.config.SamplingConfig`."""
    return sample_poses(net, diffusion, codec, clips=clips, cond=cond, steps=sampling.steps, eta=sampling.eta,
                        hypotheses=sampling.ensemble, combine=sampling.combine, generator=generator)
