"""Track ids across frames: match each frame's people to live tracks by box IoU and pose OKS (Hungarian).

For every frame, :meth:`Tracker.update` builds a cost between each live track (its last box and pose)
and each person of the frame::

    cost = w * (1 - IoU) + (1 - w) * (1 - OKS)          w = iou_weight

OKS uses PoseTrack18's per-joint sigmas (:data:`~diffpose.keypoints.POSETRACK18_OKS_SIGMAS`) and the mean of the
two box areas as the scale ``s^2``, over the joints confident (``score >= joint_threshold``) in both poses;
with no such joint it is 0. A pair may match only if ``IoU >= min_iou`` or ``OKS >= min_oks`` (gating);
``scipy.optimize.linear_sum_assignment`` picks the cheapest one-to-one assignment among allowed pairs.

* A person left unmatched starts a new track; ids increase monotonically from 0 within a video.
  poseval reads ids below 10000 only: past 9999 the ids wrap to 0, skipping ids of live tracks.
* A track left unmatched ages by one frame per frame; after ``max_age`` frames without a match it is
  retired (its id is not given out again before the wrap).

:func:`identity_switches` counts CLEAR-MOT identity switches against ground-truth ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from diffpose.keypoints import POSETRACK18_OKS_SIGMAS

MAX_TRACK_IDS = 10000  # poseval's limit: track ids must be < 10000 within a video
_FORBIDDEN = 1e6  # cost of a gated-out pair


@dataclass(frozen=True)
class TrackerConfig:
    """Matching and lifetime settings of :class:`Tracker`."""

    iou_weight: float = 0.5  # w in cost = w (1 - IoU) + (1 - w) (1 - OKS)
    min_iou: float = 0.2  # gating: a pair needs IoU >= min_iou or OKS >= min_oks
    min_oks: float = 0.3
    joint_threshold: float = 0.2  # joints with a lower score do not count in OKS
    max_age: int = 30  # frames a track may go unmatched before it is retired


@dataclass
class Track:
    """A live track: its id, last matched box ``(4,)``, pose ``(J, 2)``, joint scores ``(J,)`` and age."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    age: int = 0  # frames since the last match
    hits: int = 1  # frames matched


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a (N, 4)`` and ``b (M, 4)``, both ``(x, y, w, h)`` -> ``(N, M)``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih  # (N, M)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def pose_oks(kp_a: np.ndarray, valid_a: np.ndarray, kp_b: np.ndarray, valid_b: np.ndarray, area_a: np.ndarray,
             area_b: np.ndarray, sigmas: np.ndarray = POSETRACK18_OKS_SIGMAS) -> np.ndarray:
    """Object keypoint similarity of poses ``a (N, J, 2)`` and ``b (M, J, 2)`` -> ``(N, M)``.

    ``valid_* (N|M, J)`` bool; ``area_* (N|M,)`` box areas, whose mean per pair is the scale ``s^2``. Per joint
    ``exp(-d^2 / (2 s^2 k^2))`` with ``k = 2 sigma`` (COCO), averaged over joints valid in both (0 if none).
    """
    d2 = ((kp_a[:, None] - kp_b[None]) ** 2).sum(-1)  # (N, M, J)
    s2 = np.maximum((area_a[:, None] + area_b[None]) / 2.0, 1.0)  # (N, M)
    k2 = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (J,)
    sim = np.exp(-d2 / (2.0 * s2[..., None] * k2))  # (N, M, J)
    both = valid_a[:, None] & valid_b[None]  # (N, M, J)
    count = both.sum(-1)  # (N, M)
    return np.where(count > 0, (sim * both).sum(-1) / np.maximum(count, 1), 0.0)


class Tracker:
    """Online tracker for one video (make a new one, or call :meth:`reset`, for the next video)."""

    def __init__(self, config: TrackerConfig | None = None, max_ids: int = MAX_TRACK_IDS):
        self.config = config or TrackerConfig()
        self.max_ids = max_ids
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self.next_id = 0
        self.ids_issued = 0

    def _new_id(self) -> int:
        live = {t.track_id for t in self.tracks}
        if len(live) >= self.max_ids:
            raise RuntimeError(f"more than {self.max_ids} live tracks")
        tid = self.next_id % self.max_ids
        while tid in live:
            tid = (tid + 1) % self.max_ids
        self.next_id = tid + 1
        self.ids_issued += 1
        return tid

    def cost_matrix(self, boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``(tracks, N)`` matching costs, :data:`_FORBIDDEN` where gating forbids the pair."""
        cfg = self.config
        t_boxes = np.stack([t.box for t in self.tracks])  # (M, 4)
        t_kp = np.stack([t.keypoints for t in self.tracks])  # (M, J, 2)
        t_valid = np.stack([t.scores >= cfg.joint_threshold for t in self.tracks])  # (M, J)
        iou = box_iou(t_boxes, boxes)  # (M, N)
        oks = pose_oks(t_kp, t_valid, keypoints, scores >= cfg.joint_threshold, t_boxes[:, 2] * t_boxes[:, 3],
                       boxes[:, 2] * boxes[:, 3])  # (M, N)
        cost = cfg.iou_weight * (1.0 - iou) + (1.0 - cfg.iou_weight) * (1.0 - oks)
        allowed = (iou >= cfg.min_iou) | (oks >= cfg.min_oks)
        return np.where(allowed, cost, _FORBIDDEN)

    def update(self, boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[int]:
        """Assign track ids to one frame's people, in order.

        Args:
            boxes: ``(N, 4)`` ``(x, y, w, h)``; keypoints: ``(N, J, 2)``; scores: ``(N, J)`` joint confidences
                (ground truth: 1 for labelled joints, 0 otherwise).

        Returns:
            ``N`` track ids, unique within the frame.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        keypoints = np.asarray(keypoints, dtype=np.float64)  # (N, J, 2)
        scores = np.asarray(scores, dtype=np.float64)  # (N, J)
        if keypoints.shape[:1] != (n,) or keypoints.shape[-1:] != (2,) or scores.shape != keypoints.shape[:2]:
            raise ValueError(f"expected keypoints (N={n}, J, 2) and scores (N, J), got {keypoints.shape} and "
                             f"{scores.shape}")
        ids: list[int | None] = [None] * n
        matched_tracks: set[int] = set()
        if n and self.tracks:
            cost = self.cost_matrix(boxes, keypoints, scores)  # (M, N)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] >= _FORBIDDEN:
                    continue
                track = self.tracks[r]
                track.box, track.keypoints, track.scores = boxes[c], keypoints[c], scores[c]
                track.age, track.hits = 0, track.hits + 1
                ids[c] = track.track_id
                matched_tracks.add(r)
        survivors = []
        for r, track in enumerate(self.tracks):
            if r not in matched_tracks:
                track.age += 1
                if track.age > self.config.max_age:
                    continue  # retired
            survivors.append(track)
        self.tracks = survivors
        for c in range(n):
            if ids[c] is None:
                ids[c] = self._new_id()
                self.tracks.append(Track(ids[c], boxes[c], keypoints[c], scores[c]))
        return [int(i) for i in ids]


def identity_switches(frames: Iterable[Mapping[int, int]]) -> int:
    """CLEAR-MOT identity switches over a video.

    ``frames`` gives, per frame in order, the matched pairs ``{gt_track_id: predicted_track_id}``. A switch is
    counted when a ground-truth identity is matched to another predicted id than at its previous match
    (frames where it is unmatched do not reset it).
    """
    last: dict[int, int] = {}
    switches = 0
    for pairs in frames:
        for gt_id, pred_id in pairs.items():
            if gt_id in last and last[gt_id] != pred_id:
                switches += 1
            last[gt_id] = pred_id
    return switches


def match_to_ground_truth(gt_boxes: np.ndarray, pred_boxes: np.ndarray, min_iou: float = 0.5
                          ) -> list[tuple[int, int]]:
    """One-to-one ``(gt index, prediction index)`` pairs of one frame by box IoU (Hungarian, ``IoU >= min_iou``)."""
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return []
    iou = box_iou(gt_boxes, pred_boxes)  # (G, P)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
