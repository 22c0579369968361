"""Per-frame assignment of predicted to ground-truth poses, exactly as poseval's ``assignGTmulti``.

All arrays are in poseval's 15-joint order (:data:`diffpose.keypoints.POSETRACK17_JOINTS`).

For one frame with G ground-truth and P predicted persons:

1. ``dist[p, g, j] = ||pred_j - gt_j|| / head_size_g`` where both have joint j, else infinity;
   ``head_size = 0.6 * ||(x2, y2) - (x1, y1)||`` of the GT head box.
2. ``match = dist <= 0.5`` (PCKh@0.5, inclusive).
3. ``pck[p, g] = sum_j match[p, g, j] / (number of GT joints of g)`` (the raw count if g has none).
4. Each prediction keeps only its best GT (``argmax`` over g, first index on ties); each GT then takes the
   prediction with the highest remaining pck (``argmax`` over p, first index on ties); a maximum of 0
   leaves the GT unmatched. Person scores play no part.
5. Every predicted joint gives one record ``(score, label)``: ``label = match[p, g, j]`` if p is matched to g,
   else 0 (a false positive). There is no score threshold.

The arithmetic mirrors poseval's (norm as ``sqrt(dx*dx + dy*dy)``, the same division order), so the
records, and the AP computed from them, agree with poseval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PCKH_THRESHOLD = 0.5
HEAD_SIZE_FACTOR = 0.6
MISSING_SCORE = -9999.0  # poseval's MIN_SCORE for a predicted joint without a score


@dataclass
class EvalFrame:
    """One evaluated frame, ready for matching (poseval joint order, J = 15).

    Attributes:
        gt_xy: ``(G, J, 2)`` GT joint positions, ``(x, y)`` pixels.
        gt_has: ``(G, J)`` bool, GT joint exists.
        head_size: ``(G,)`` ``0.6 x`` head-box diagonal (NaN where the GT has no head box).
        gt_occluded: ``(G, J)`` bool, our "occluded" flag (all False when the file has none).
        pred_xy: ``(P, J, 2)`` predicted joint positions.
        pred_has: ``(P, J)`` bool, predicted joint exists.
        pred_score: ``(P, J)`` float64 per-joint confidences.
        where: a label for error messages (file and frame).
    """

    gt_xy: np.ndarray
    gt_has: np.ndarray
    head_size: np.ndarray
    gt_occluded: np.ndarray
    pred_xy: np.ndarray
    pred_has: np.ndarray
    pred_score: np.ndarray
    where: str = ""


@dataclass
class FrameRecords:
    """What one frame contributes to AP.

    Attributes:
        scores: ``(P, J)`` float64 confidences of the predicted joints.
        labels: ``(P, J)`` bool, the predicted joint is a true positive.
        valid: ``(P, J)`` bool, the predicted joint exists (only these are records).
        matched_gt: ``(P,)`` int, the GT index each prediction is matched to, -1 if none.
        occluded_valid: ``(P, J)`` bool, records that fall on an occluded GT joint of the matched GT.
        num_gt: ``(J,)`` int, GT joints in this frame.
        num_gt_occluded: ``(J,)`` int, GT joints flagged occluded in this frame.
    """

    scores: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    matched_gt: np.ndarray
    occluded_valid: np.ndarray
    num_gt: np.ndarray
    num_gt_occluded: np.ndarray


def head_size(head_box_xywh: np.ndarray) -> np.ndarray:
    """``0.6 x`` the head-box diagonal, computed from corners as poseval does: ``(G, 4) -> (G,)``."""
    x1, y1 = head_box_xywh[:, 0], head_box_xywh[:, 1]
    x2, y2 = x1 + head_box_xywh[:, 2], y1 + head_box_xywh[:, 3]
    dx, dy = x2 - x1, y2 - y1
    with np.errstate(over="ignore", invalid="ignore"):  # absurd coordinates (1e300) give inf, as in poseval
        return HEAD_SIZE_FACTOR * np.sqrt(dx * dx + dy * dy)


def pckh_distances(frame: EvalFrame) -> np.ndarray:
    """``(P, G, J)`` normalised distances, infinity where either side lacks the joint."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # inf / NaN as poseval gets them
        d = frame.pred_xy[:, None, :, :] - frame.gt_xy[None, :, :, :]  # (P, G, J, 2)
        norm = np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])  # (P, G, J)
        dist = norm / frame.head_size[None, :, None]
    both = frame.pred_has[:, None, :] & frame.gt_has[None, :, :]  # (P, G, J)
    return np.where(both, dist, np.inf)


def assign(frame: EvalFrame) -> FrameRecords:
    """Match predictions to GT in one frame and label every predicted joint (poseval semantics)."""
    num_pred, num_joints = frame.pred_has.shape
    num_gt = frame.gt_has.shape[0]
    labels = np.zeros((num_pred, num_joints), dtype=bool)
    matched = np.full(num_pred, -1, dtype=np.int64)
    if num_pred and num_gt:
        match = pckh_distances(frame) <= PCKH_THRESHOLD  # (P, G, J)
        n_gt_joints = frame.gt_has.sum(axis=1)  # (G,)
        pck = match.sum(axis=2).astype(np.float64)  # (P, G)
        pos = n_gt_joints > 0
        pck[:, pos] = pck[:, pos] / n_gt_joints[pos]
        # 1. each prediction keeps only its best GT (first index on ties)
        best_gt = np.argmax(pck, axis=1)  # (P,)
        kept = np.zeros_like(pck)
        rows = np.arange(num_pred)
        kept[rows, best_gt] = pck[rows, best_gt]
        # 2. each GT takes the prediction with the highest remaining pck (first index on ties)
        pr_to_gt = np.argmax(kept, axis=0)  # (G,)
        pr_to_gt[kept.max(axis=0) == 0] = -1
        for g, p in enumerate(pr_to_gt):
            if p >= 0:
                matched[p] = g
                labels[p] = match[p, g]
    occluded_valid = np.zeros_like(labels)
    is_matched = matched >= 0
    gt_occluded = frame.gt_occluded & frame.gt_has  # (G, J)
    if is_matched.any():
        occluded_valid[is_matched] = gt_occluded[matched[is_matched]]
    occluded_valid &= frame.pred_has
    return FrameRecords(
        scores=frame.pred_score,
        labels=labels & frame.pred_has,
        valid=frame.pred_has,
        matched_gt=matched,
        occluded_valid=occluded_valid,
        num_gt=frame.gt_has.sum(axis=0),
        num_gt_occluded=gt_occluded.sum(axis=0),
    )
