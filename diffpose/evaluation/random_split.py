"""Random PoseTrack18 ground-truth / prediction splits, for evaluator benchmarks and parity checks.

The cases are built to exercise every rule of the metric: joints missing on either side, predictions at
all distances around the PCKh threshold, duplicates, false positives, unmatched GT, tied scores (rounded
to 0.1), empty frames, unlabelled frames, persons without joints and ignore regions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpose.data.posetrack18 import write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED

J = POSETRACK18.num_joints


def _gt_person(rng: np.random.Generator, track_id: int, width: int, height: int) -> Person:
    centre = rng.uniform([60, 60], [width - 60, height - 60])
    kps = centre + rng.normal(0, 40, size=(J, 2))  # (J, 2)
    present = rng.random(J) > 0.15
    present[list(POSETRACK18_UNLABELED)] = False
    if rng.random() < 0.03:
        present[:] = False  # a person without any labelled joint
    kps = np.where(present[:, None], np.round(kps, 1), 0.0)
    head_w, head_h = rng.uniform(15, 50, size=2)
    head = np.array([centre[0] - head_w / 2, centre[1] - 80, head_w, head_h]).round(1)
    return Person(keypoints=kps, visibility=present.astype(float), present=present, scores=None,
                  box=None, head_box=head, track_id=track_id)


def _pred_person(rng: np.random.Generator, gt: Person | None, track_id: int, width: int, height: int) -> Person:
    scale = 1.0
    if gt is None or not gt.present.any():
        base = rng.uniform([0, 0], [width, height]) + rng.normal(0, 40, size=(J, 2))
    else:
        head = np.hypot(gt.head_box[2], gt.head_box[3]) * 0.6
        scale = rng.choice([0.05, 0.3, 0.5, 0.8, 2.0], p=[0.4, 0.25, 0.15, 0.1, 0.1])
        base = np.where(gt.present[:, None], gt.keypoints, rng.uniform(0, 300, size=(J, 2)))
        base = base + rng.normal(0, scale * head / 1.4, size=(J, 2))
        scale = min(scale, 1.0)
    present = rng.random(J) > 0.1
    present[list(POSETRACK18_UNLABELED)] = rng.random() < 0.2
    kps = np.where(present[:, None], np.round(base, 1), 0.0)
    quality = 0.0 if gt is None else 1.0 - scale
    scores = np.round(np.clip(quality + rng.normal(0, 0.3, size=J), 0, 1), 1)  # many ties on purpose
    return Person(keypoints=kps, visibility=np.where(present, scores, 0.0), present=present, scores=scores,
                  track_id=track_id, score=float(rng.random()))


def random_video(rng: np.random.Generator, seq: int, frames: int, people: int, split: str = "val",
                 width: int = 640, height: int = 480, unlabeled_rate: float = 0.1) -> tuple[Video, Video]:
    """One ``(gt, prediction)`` pair of videos with Poisson(``people``) persons per labelled frame."""
    name = f"{seq:06d}_mpii_test" if split == "val" else f"{seq:06d}_mpii_train"
    gt_frames, pr_frames = [], []
    for f in range(frames):
        image_id = 10_000_000_000 + seq * 10_000 + f
        file_name = f"images/{split}/{name}/{f:06d}.jpg"
        labelled = rng.random() >= unlabeled_rate
        gts = [_gt_person(rng, t, width, height) for t in range(rng.poisson(people))] if labelled else []
        if gts and rng.random() < 0.3:
            c = rng.uniform([0, 0], [width, height])
            poly = c + rng.uniform(-120, 120, size=(int(rng.integers(3, 8)), 2))
            regions = [np.round(poly, 1)]
        else:
            regions = []
        preds = []
        for g in gts:
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, duplicated
                preds.append(_pred_person(rng, g, len(preds), width, height))
        for _ in range(int(rng.poisson(0.5))):
            preds.append(_pred_person(rng, None, len(preds), width, height))
        order = rng.permutation(len(preds))
        preds = [preds[i] for i in order]
        for t, p in enumerate(preds):
            p.track_id = t
        gt_frames.append(Frame(file_name=file_name, frame_index=f, image_id=image_id, is_labeled=bool(gts),
                               persons=gts, ignore_regions=regions))
        pr_frames.append(Frame(file_name=file_name, frame_index=f, image_id=image_id, persons=preds))
    return (Video(name=name, frames=gt_frames, vid_id=f"{seq:06d}"),
            Video(name=name, frames=pr_frames, vid_id=f"{seq:06d}"))


def write_random_split(root: str | Path, videos: int, frames: int, people: int, seed: int = 0,
                       unlabeled_rate: float = 0.1) -> tuple[Path, Path]:
    """Write ``root/gt/*.json`` and ``root/pred/*.json``; returns the two directories."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = Path(root) / "gt", Path(root) / "pred"
    for seq in range(1, videos + 1):
        gt, pred = random_video(rng, seq, frames, people, unlabeled_rate=unlabeled_rate)
        write_posetrack18(gt, gt_dir / f"{gt.name}.json")
        write_posetrack18(pred, pred_dir / f"{pred.name}.json")
    return gt_dir, pred_dir
