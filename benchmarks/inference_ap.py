"""AP of the inference paths on a SynthTrack split: baseline, DiffPose exact (naive) and DiffPose with reuse.

Used by ``benchmarks/inference.py``. Feature reuse needs person boxes on *every* frame (a clip's neighbour
frames are cropped around their own people), but SynthTrack, like PoseTrack, labels only every 4th val
frame. The generator is deterministic, so :func:`all_frame_boxes` re-simulates each val video from the
dataset's manifest (preset, seed) and takes the ground-truth box of every person in every frame; it checks
them against the annotation file on the labelled frames.

The evaluated persons are ``diffpose test``'s (:func:`~diffpose.data.clip_dataset.gt_items`: the GT persons
of the labelled frames). For each one the condition (backbone + STRL) is computed once per path and reused
for every (S, K) of the grid, as ``benchmarks/steps_ensemble_grid.py`` does:

* exact: the ``T`` frames of the window cropped with the key box (:meth:`Predictor.crop`);
* reuse: the production :class:`~diffpose.inference.feature_cache.FeatureCache`, filled with the crops of
  every person in every frame of the video (as the streaming pipeline does when the box source answers for
  every frame), each neighbour slot served by :meth:`FeatureCache.slot`.

Sampling noise comes from one generator per (S, K) seeded identically for both paths, and the persons are
batched identically, so the two paths see the same noise: the AP difference is the features' doing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffpose.data.clip_dataset import ClipItem, FrameReader, gt_items, load_split
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.data.records import Video
from diffpose.engine.tester import prediction_videos
from diffpose.evaluation import evaluate_dirs
from diffpose.inference import PersonPose, Predictor
from diffpose.inference.feature_cache import CacheStats, FeatureCache
from diffpose.inference.feature_warp import TokenGeometry

BATCH = 32  # clips per model call, as the pipeline's default --batch-size


def all_frame_boxes(data_root: str | Path, split: str = "val") -> list[list[np.ndarray]]:
    """``boxes[v][f]``: ``(N, 4)`` GT boxes of every person in frame ``f`` of video ``v`` (SynthTrack only)."""
    from diffpose.synth import get_preset
    from diffpose.synth.generate import SPLIT_CODE
    from diffpose.synth.video import simulate

    manifest_path = Path(data_root) / "synthtrack.json"
    if not manifest_path.is_file():
        raise SystemExit(f"{data_root} is not a SynthTrack dataset (no synthtrack.json): reuse needs boxes on "
                         "every frame, which only SynthTrack can regenerate")
    manifest = json.loads(manifest_path.read_text())
    preset = get_preset(manifest["preset"])
    videos = load_split(data_root, split)
    out = []
    for index, video in enumerate(videos):
        _, renders = simulate(preset, int(manifest["seed"]), SPLIT_CODE[split], index, len(video.frames))
        boxes = [np.array([p.box for _, p in r.persons], dtype=np.float64).reshape(-1, 4) for r in renders]
        for frame, b in zip(video.frames, boxes):
            gt = np.array([p.box for p in frame.persons]).reshape(-1, 4)
            if len(gt) and (len(gt) != len(b) or not np.allclose(np.sort(gt, axis=0), np.sort(b, axis=0))):
                raise SystemExit(f"re-simulated boxes do not match {video.name} frame {frame.frame_index}")
        out.append(boxes)
    return out


@dataclass
class Split:
    """A split loaded for AP measurements: its videos, evaluated persons, all-frame boxes and image reader."""

    root: Path
    name: str
    videos: list[Video]
    items: list[ClipItem]
    boxes: list[list[np.ndarray]]
    reader: FrameReader

    @classmethod
    def load(cls, root: str | Path, split: str = "val") -> Split:
        videos = load_split(root, split)
        return cls(Path(root), split, videos, gt_items(videos), all_frame_boxes(root, split),
                   FrameReader(root, cache_size=64))

    def image(self, v: int, f: int) -> np.ndarray:
        return self.reader(self.videos[v].frames[f].file_name)

    def window(self, v: int, f: int, offsets: tuple[int, ...]) -> list[int]:
        n = len(self.videos[v].frames)
        return [min(max(f + o, 0), n - 1) for o in offsets]


def conditions_exact(pred: Predictor, split: Split) -> torch.Tensor:
    """``(N, C, h, w)`` conditions of the split's persons, every window frame cropped with the key box."""
    out = []
    for a in range(0, len(split.items), BATCH):
        clips = np.stack([pred.crop([split.image(it.video, s) for s in split.window(it.video, it.frame, pred.offsets)],
                                    np.asarray(it.box))[0] for it in split.items[a: a + BATCH]])
        with torch.inference_mode():
            out.append(pred.estimator.net.encode_condition(torch.from_numpy(clips)))  # (B, C, h, w)
    return torch.cat(out)


def conditions_reuse(pred: Predictor, split: Split, min_iou: float = 0.5,
                     padding: str = "border") -> tuple[torch.Tensor, CacheStats]:
    """``(N, C, h, w)`` conditions from reused features (one backbone pass per person crop of a frame), and the
    cache's counts summed over the videos."""
    geometry = TokenGeometry.from_model_config(pred.cfg.model)
    total = CacheStats()
    out = []
    for v, video in enumerate(split.videos):
        cache = FeatureCache(geometry, min_iou, padding)

        def cropper(f: int, mat: np.ndarray, v: int = v):
            return lambda: pred.crop_frame(split.image(v, f), mat)

        for f in range(len(video.frames)):
            for box in split.boxes[v][f]:
                mat = pred.crop_matrix(box)
                cache.exact(f, mat, cropper(f, mat))
        items = [it for it in split.items if it.video == v]
        slots, mats = [], []
        for it in items:
            mat = pred.crop_matrix(np.asarray(it.box))
            mats.append(mat)
            slots.append([cache.exact(s, mat, cropper(s, mat)) if s == it.frame else cache.slot(s, mat, cropper(s, mat))
                          for s in split.window(v, it.frame, pred.offsets)])
        todo = cache.pending()
        cache.fill(todo, pred.backbone(np.stack([e.pixels for e in todo])))
        for a in range(0, len(items), BATCH):
            with torch.inference_mode():
                feats = cache.assemble(slots[a: a + BATCH], mats[a: a + BATCH])  # (B, T, D, h, w)
                out.append(pred.estimator.net.condition_from_features(feats))  # (B, C, h, w)
        for name in ("backbone_crops", "same_crop", "warped", "fallback", "clips"):
            setattr(total, name, getattr(total, name) + getattr(cache.stats, name))
    return torch.cat(out), total


def evaluate(split: Split, poses: list[PersonPose], out_dir: Path) -> tuple[float, float]:
    """Write the predictions as PoseTrack files and score them: ``(Total AP, Total AP on occluded joints)``."""
    for video in prediction_videos(split.videos, split.items, poses):
        write_posetrack18(video, out_dir / f"{video.name}.json")
    return score(split, out_dir)


def score(split: Split, pred_dir: Path) -> tuple[float, float]:
    """``(Total AP, Total AP on occluded joints)`` of the prediction files in ``pred_dir``."""
    result = evaluate_dirs(split.root / "annotations" / split.name, pred_dir, occluded=True)
    occluded = result.occluded.groups()["Total"] if result.occluded is not None else float("nan")
    return float(result.total), float(occluded)


def _to_image(pred: Predictor, split: Split, kp: np.ndarray, scores: np.ndarray, unc: np.ndarray,
              start: int) -> list[PersonPose]:
    out = []
    for i in range(kp.shape[0]):
        it = split.items[start + i]
        box = np.asarray(it.box)
        out.append(pred.to_image(kp[i], scores[i], unc[i], pred.crop_matrix(box), box, it.score))
    return out


def ap_diffpose(pred: Predictor, split: Split, cond: torch.Tensor, steps: int, hypotheses: int, out_dir: Path,
                seed: int = 0) -> tuple[float, float]:
    """AP of DiffPose with ``steps`` and ``hypotheses`` from precomputed conditions ``(N, C, h, w)``."""
    gen = torch.Generator().manual_seed(seed)
    sampling = dataclasses.replace(pred.sampling, steps=steps, ensemble=hypotheses)  # the predictor's eta, combine
    poses: list[PersonPose] = []
    for a in range(0, len(split.items), BATCH):
        with torch.inference_mode():
            s = pred.estimator.predict_condition(cond[a: a + BATCH], sampling, gen)
        kp, sc, un = (x.numpy().astype(np.float64) for x in (s.keypoints, s.scores, s.uncertainty))
        poses += _to_image(pred, split, kp, sc, un, a)
    return evaluate(split, poses, out_dir)


def ap_baseline(pred: Predictor, split: Split, out_dir: Path) -> tuple[float, float]:
    """AP of the single-frame baseline on the split's persons."""
    poses: list[PersonPose] = []
    for a in range(0, len(split.items), BATCH):
        crops = np.stack([pred.crop([split.image(it.video, it.frame)], np.asarray(it.box))[0]
                          for it in split.items[a: a + BATCH]])  # (B, 1, 3, H, W)
        kp, sc, un = pred.run_model(torch.from_numpy(crops))
        poses += _to_image(pred, split, kp, sc, un, a)
    return evaluate(split, poses, out_dir)
