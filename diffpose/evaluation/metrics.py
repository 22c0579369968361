"""Per-joint AP pooled over a whole split, the paper-table groups and Total (poseval ``computeMetrics``).

For each joint, the records ``(score, label)`` of all frames of all sequences are concatenated in load
order (sequence, then frame, then prediction), sorted by score with ``np.argsort()[::-1]`` (numpy's default
sort, reversed, as poseval does, so that ties come out in the same order), and turned into a
precision/recall curve; AP is the VOC all-point interpolated area under it, in percent.

* ``Total`` = mean of the 15 joint APs, skipping NaN (not the mean of the groups).
* A joint with no predicted records keeps AP = precision = recall = 0.
* Protocol difference: poseval divides recall by the GT count, which gives NaN AP for a joint that has
  predictions but no GT; the PoseTrack21 kit divides by ``max(count, 1)``, which gives 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose.evaluation.matching import FrameRecords
from diffpose.keypoints import POSETRACK17_JOINTS, POSEVAL_GROUPS


def precision_recall(scores: np.ndarray, labels: np.ndarray, num_gt: float,
                     recall_floor_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every rank of the score-sorted records (poseval ``computeRPC``)."""
    order = np.asarray(scores, dtype=np.float64).argsort()[::-1]
    npos = np.cumsum(np.asarray(labels)[order] == 1).astype(np.float64)  # (R,)
    rank = np.arange(1, len(order) + 1, dtype=np.float64)
    denom = max(num_gt, 1.0) if recall_floor_one else np.float64(num_gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = npos / denom
    return npos / rank, recall


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated AP (a fraction, not percent), poseval ``VOCap``."""
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # running max from the right
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


@dataclass
class JointMetrics:
    """AP, precision and recall per poseval joint (percent), plus the GT counts, as ``(15,)`` arrays."""

    ap: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    num_gt: np.ndarray

    def groups(self) -> dict[str, float]:
        """Head, Shoulder, ..., Ankle (plain means, NaN propagates) and Total (NaN-skipping mean)."""
        out = {name: float(self.ap[list(idx)].mean()) for name, idx in POSEVAL_GROUPS.items()}
        finite = self.ap[~np.isnan(self.ap)]
        out["Total"] = float(finite.mean()) if finite.size else float("nan")
        return out

    def total(self, values: np.ndarray) -> float:
        finite = values[~np.isnan(values)]
        return float(finite.mean()) if finite.size else float("nan")


def joint_metrics(records: list[FrameRecords], occluded_only: bool = False,
                  recall_floor_one: bool = False) -> JointMetrics:
    """Pool the records of all frames and compute per-joint AP / precision / recall in percent."""
    num_joints = len(POSETRACK17_JOINTS)
    ap, pre, rec = np.zeros(num_joints), np.zeros(num_joints), np.zeros(num_joints)
    if occluded_only:
        num_gt = np.sum([r.num_gt_occluded for r in records], axis=0) if records else np.zeros(num_joints)
    else:
        num_gt = np.sum([r.num_gt for r in records], axis=0) if records else np.zeros(num_joints)
    num_gt = np.asarray(num_gt, dtype=np.float64)
    if records:
        scores = np.concatenate([r.scores for r in records])  # (R, J): every prediction of the split, in order
        labels = np.concatenate([r.labels for r in records])
        keep = np.concatenate([r.occluded_valid if occluded_only else r.valid for r in records])
    else:
        scores = labels = keep = np.zeros((0, num_joints))
    for j in range(num_joints):
        rows = keep[:, j].astype(bool)
        if not rows.any():
            continue
        precision, recall = precision_recall(scores[rows, j], labels[rows, j], num_gt[j], recall_floor_one)
        ap[j] = voc_ap(recall, precision) * 100
        pre[j] = precision[-1] * 100
        rec[j] = recall[-1] * 100
    return JointMetrics(ap=ap, precision=pre, recall=rec, num_gt=num_gt.astype(np.int64))
