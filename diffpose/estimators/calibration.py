"""Joint scores and uncertainties that say how likely a joint is wrong, fitted on training data only.

A sampled pose carries more than the heatmap maximum: the spread of the ``K`` hypotheses, their agreement and,
when sampling starts from the prior head, how far the diffusion moved the joint from that prior and how sure the
prior was; the heatmap itself says whether it has a second candidate, or whether the joint sits on its
left/right partner; and the predicted head size says how large an error poseval tolerates for this person.
Per joint these are the features (``F = 8``, crop pixels)::

    f0 = s                    heatmap maximum of the combined heatmap (the uncalibrated score)
    f1 = log(1 + spread)      RMS distance of the hypotheses to the combined keypoint
    f2 = log(1 + |p - p0|)    distance of the combined keypoint to the prior head's (0 without a prior)
    f3 = s0                   the prior heatmap's maximum (0 without a prior)
    f4 = agreement            share of hypotheses within AGREE_PX of the combined keypoint (1 for K = 1)
    f5 = second / s           the combined heatmap's largest value farther than SECOND_PEAK_PX heatmap pixels
                              from its peak, over the peak (a second candidate place)
    f6 = log(1 + |p - p_m|)   distance to the mirror joint's keypoint (left knee <-> right knee; 0 for joints
                              without one, or a layout of another size than PoseTrack's / COCO's 17)
    f7 = log(1 + head)        the person's predicted head length, joints 1-2 (PoseTrack's head bottom and top,
                              COCO's eyes): poseval's tolerance scales with the head (0 for other layouts)

Two small models of them, fitted by ``scripts/calibrate.py`` on persons of the training split and stored in the
checkpoint's ``calibration`` section (:class:`~diffpose.config.CalibrationConfig`):

* ``score = sigmoid(b_j + w . f)``: the probability that the joint lies within half a head size of the truth
  (poseval's criterion), the score AP ranks by;
* ``uncertainty = exp(c_j + v . f) - 1``: the expected error in crop pixels (a least-squares fit of
  ``log(1 + error)``), scaled to image pixels by the predictor like any uncertainty.

``b_j`` and ``c_j`` are per joint (wrists are wrong more often than shoulders at the same heatmap peak).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy.optimize import minimize

from diffpose.config import CalibrationConfig
from diffpose.diffusion.ensemble import PoseSamples, rms_spread
from diffpose.errors import DiffPoseError
from diffpose.keypoints import POSETRACK18

FEATURES = ("score", "log1p_spread", "log1p_prior_distance", "prior_score", "agreement", "second_peak",
            "log1p_mirror_distance", "log1p_head")
AGREE_PX = 2.0  # crop pixels: a hypothesis agrees with the combined keypoint within this distance
SECOND_PEAK_PX = 3  # heatmap pixels (Chebyshev): outside this square around the peak a value is a second place
L2 = 1e-3  # ridge penalty of the logistic fit (per sample)


def joint_features(samples: PoseSamples) -> torch.Tensor:
    """``(B, J, F)`` float32 features of :data:`FEATURES` from a :class:`PoseSamples` (crop pixels)."""
    kp, hyp = samples.keypoints.float(), samples.hypotheses_keypoints.float()  # (B, J, 2), (B, K, J, 2)
    dist = (hyp - kp[:, None]).norm(dim=-1)  # (B, K, J)
    spread = rms_spread(hyp, kp)  # (B, J)
    agreement = (dist <= AGREE_PX).float().mean(dim=1)  # (B, J)
    if samples.prior_keypoints is not None:
        moved = (kp - samples.prior_keypoints.float()).norm(dim=-1)  # (B, J)
        prior_score = samples.prior_scores.float()  # (B, J)
    else:
        moved = prior_score = torch.zeros_like(spread)
    hm = samples.heatmaps.float()  # (B, J, H, W)
    b, j, h, w = hm.shape
    peak, idx = hm.reshape(b, j, h * w).max(dim=-1)  # (B, J)
    ys = torch.arange(h, device=hm.device)[:, None]  # (H, 1)
    xs = torch.arange(w, device=hm.device)[None, :]  # (1, W)
    near = ((ys - (idx // w)[..., None, None]).abs() <= SECOND_PEAK_PX) & \
        ((xs - (idx % w)[..., None, None]).abs() <= SECOND_PEAK_PX)  # (B, J, H, W)
    second = hm.masked_fill(near, 0).reshape(b, j, h * w).max(dim=-1).values  # (B, J)
    second = second / peak.clamp(min=1e-6)
    if j == POSETRACK18.num_joints:
        mirror = (kp - kp[:, torch.as_tensor(POSETRACK18.flip_permutation())]).norm(dim=-1)  # (B, J); 0 unpaired
        head = (kp[:, 1] - kp[:, 2]).norm(dim=-1)[:, None].expand(b, j)  # (B, J): one value per person
    else:
        mirror = head = torch.zeros_like(spread)
    return torch.stack([samples.scores.float(), spread.log1p(), moved.log1p(), prior_score, agreement, second,
                        mirror.log1p(), head.log1p()], dim=-1)


def is_fitted(cal: CalibrationConfig) -> bool:
    """Whether ``cal`` holds a fit (both models)."""
    return bool(cal.score_weights) and bool(cal.error_weights)


def _check(cal: CalibrationConfig, num_joints: int) -> None:
    if (len(cal.score_weights) != len(FEATURES) or len(cal.error_weights) != len(FEATURES)
            or len(cal.score_bias) != num_joints or len(cal.error_bias) != num_joints):
        raise DiffPoseError(f"calibration needs {len(FEATURES)} weights and {num_joints} joint intercepts per model; "
                            f"got score {len(cal.score_weights)}/{len(cal.score_bias)}, error "
                            f"{len(cal.error_weights)}/{len(cal.error_bias)}", field="calibration")


def _models(f: torch.Tensor, score_bias: torch.Tensor, error_bias: torch.Tensor, cal: CalibrationConfig
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both models on features ``f (..., F)`` with the intercepts already picked per joint (``(...,)`` each)."""
    w = torch.tensor(cal.score_weights, dtype=f.dtype, device=f.device)  # (F,)
    v = torch.tensor(cal.error_weights, dtype=f.dtype, device=f.device)  # (F,)
    score = torch.sigmoid(f @ w + score_bias)  # (...)
    uncertainty = (f @ v + error_bias).clamp(max=20).exp().sub(1).clamp(min=0)  # (...) crop pixels
    return score, uncertainty


def calibrated(features: torch.Tensor, cal: CalibrationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``features (B, J, F)`` -> ``score (B, J)`` in ``[0, 1]`` and ``uncertainty (B, J)`` crop pixels (>= 0)."""
    _check(cal, features.shape[1])
    f = features.float()
    b = torch.tensor(cal.score_bias, dtype=f.dtype, device=f.device)  # (J,)
    c = torch.tensor(cal.error_bias, dtype=f.dtype, device=f.device)  # (J,)
    return _models(f, b, c, cal)


def calibrated_joints(features: np.ndarray, joint: np.ndarray, cal: CalibrationConfig
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`calibrated` for ``N`` joints listed one by one: ``features (N, F)``, ``joint (N,)`` index ->
    ``score (N,)`` and ``uncertainty (N,)`` crop pixels."""
    _check(cal, len(cal.score_bias))
    f = torch.as_tensor(np.asarray(features), dtype=torch.float32)  # (N, F)
    j = torch.as_tensor(np.asarray(joint), dtype=torch.long)  # (N,)
    score, uncertainty = _models(f, torch.tensor(cal.score_bias)[j].float(), torch.tensor(cal.error_bias)[j].float(),
                                 cal)
    return score.numpy(), uncertainty.numpy()


def apply_calibration(samples: PoseSamples, cal: CalibrationConfig) -> PoseSamples:
    """``samples`` with calibrated ``scores`` and ``uncertainty`` (unchanged when ``cal`` holds no fit)."""
    if not is_fitted(cal):
        return samples
    score, uncertainty = calibrated(joint_features(samples), cal)
    return replace(samples, scores=score.to(samples.scores.dtype), uncertainty=uncertainty.to(samples.scores.dtype))


def _design(features: np.ndarray, joint: np.ndarray, num_joints: int) -> np.ndarray:
    """``(N, F + J)``: the features, then a one-hot joint column per joint (the per-joint intercepts)."""
    onehot = np.zeros((len(joint), num_joints))
    onehot[np.arange(len(joint)), joint] = 1.0
    return np.concatenate([features, onehot], axis=1)


def fit_calibration(features: np.ndarray, joint: np.ndarray, correct: np.ndarray, error: np.ndarray,
                    num_joints: int, fitted_on: str = "") -> CalibrationConfig:
    """Fit both models on ``N`` labelled joints.

    Args:
        features: ``(N, F)`` from :func:`joint_features`; joint: ``(N,)`` joint index; correct: ``(N,)`` bool (error
            within half the head size); error: ``(N,)`` crop pixels.
        num_joints: ``J``; fitted_on: a note kept in the config.
    """
    features, joint = np.asarray(features, np.float64), np.asarray(joint, np.int64)
    correct, error = np.asarray(correct, bool), np.asarray(error, np.float64)
    n = len(features)
    if n == 0 or features.shape[1:] != (len(FEATURES),) or not (len(joint) == len(correct) == len(error) == n):
        raise DiffPoseError(f"calibration needs (N, {len(FEATURES)}) features and N labels, got "
                            f"{features.shape}, {len(joint)}, {len(correct)}, {len(error)}", field="calibration")
    if correct.all() or not correct.any():
        raise DiffPoseError("calibration needs right and wrong joints; the data has only one kind", field="calibration")
    x = _design(features, joint, num_joints)  # (N, F + J)
    y = correct.astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.logaddexp(0.0, z) - y * z  # -log p(y | z)
        grad = x.T @ (p - y) / n + 2 * L2 * theta
        return float(nll.mean() + L2 * theta @ theta), grad

    theta = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    target = np.log1p(np.maximum(error, 0.0))
    beta = np.linalg.lstsq(x, target, rcond=None)[0]
    f = len(FEATURES)
    return CalibrationConfig(score_bias=tuple(float(v) for v in theta[f:]),
                             score_weights=tuple(float(v) for v in theta[:f]),
                             error_bias=tuple(float(v) for v in beta[f:]),
                             error_weights=tuple(float(v) for v in beta[:f]), fitted_on=fitted_on)
