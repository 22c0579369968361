"""``diffpose test``: run a checkpoint over a split, write PoseTrack prediction files, score them.

For every (labelled frame, person box) of the split a clip is cropped exactly as in training (no
augmentation); DiffPose samples ``K`` hypotheses with ``S`` DDIM steps (one batch of ``B*K``, the condition
computed once per clip), the baseline decodes its heatmaps. Keypoints go back to image pixels through the
inverse of the crop transform; a joint's score is its heatmap maximum times the box score (DCPose).

Prediction files follow poseval's expectations: one per GT video, same name, every GT image in GT order,
``categories``, ``track_id`` unique within each frame, the score in both ``scores`` and the ``v`` slot, and
the never-labelled ears written as absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from diffpose.codec import HeatmapCodec
from diffpose.config import Config, config_from_dict
from diffpose.data.clip_dataset import ClipDataset, ClipItem, detection_items, gt_items, load_split
from diffpose.data.images import opencv_before_fork
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.data.transforms import invert_affine
from diffpose.diffusion import HeatmapDiffusion, sample_poses
from diffpose.engine.checkpoint import CheckpointError, load_checkpoint, model_state
from diffpose.errors import DiffPoseError
from diffpose.evaluation import EvalResult, evaluate_dirs
from diffpose.io_utils import check_writable
from diffpose.keypoints import POSETRACK18_UNLABELED
from diffpose.models import build_model


@dataclass
class PosePrediction:
    """One predicted person in image pixels: ``keypoints (J, 2)``, ``scores (J,)``, ``uncertainty (J,)``."""

    keypoints: np.ndarray
    scores: np.ndarray
    uncertainty: np.ndarray
    box: np.ndarray
    box_score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
               ) -> tuple[torch.nn.Module, Config]:
    """Build the model a diffpose checkpoint describes and load its weights (EMA weights when present)."""
    ckpt = load_checkpoint(checkpoint)
    if "config" not in ckpt:
        raise CheckpointError("not a diffpose checkpoint (no 'config' entry)", checkpoint)
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"expected a config dict, found {type(ckpt['config']).__name__}", checkpoint, "config")
    try:
        cfg = config_from_dict(ckpt["config"])
        cfg.model.backbone.weights = ""  # the checkpoint holds the backbone already
        model = build_model(cfg.model, load_weights=False)
    except Exception as e:  # a config this version cannot build: name the checkpoint, not just the key
        text = str(e) if isinstance(e, DiffPoseError) else f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        raise CheckpointError(f"its config cannot be used: {text}", checkpoint, "config") from None
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) and ckpt["ema"] else \
        model_state(ckpt, checkpoint)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except Exception as e:  # shape mismatches (RuntimeError), entries that are not tensors
        shapes = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        detail = shapes[0] if shapes else " ".join(str(e).split())[:160]
        what = f"{len(shapes)} shape mismatches, e.g. {detail}" if shapes else detail
        raise CheckpointError(f"weights do not fit the {cfg.model.kind} model of its own config ({what})",
                              checkpoint, "model") from None
    if missing or unexpected:
        raise CheckpointError(f"weights do not fit the {cfg.model.kind} model of its own config "
                              f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. "
                              f"{(missing or unexpected)[0]})", checkpoint)
    return model.to(device).eval(), cfg


def key_index(offsets: tuple[int, ...]) -> int:
    return offsets.index(0)


@torch.no_grad()
def predict(model: torch.nn.Module, cfg: Config, dataset: ClipDataset, device: torch.device, steps: int = 1,
            ensemble: int = 1, combine: str = "mean", eta: float | None = None, batch_size: int = 32,
            seed: int = 0, progress: bool = False) -> list[PosePrediction]:
    """Predictions for every item of ``dataset`` (in order)."""
    codec = dataset.codec
    diffusion = HeatmapDiffusion.from_config(cfg.diffusion)
    gen = torch.Generator(device=device).manual_seed(seed)
    if cfg.data.workers:
        opencv_before_fork()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=cfg.data.workers)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="predict", unit="batch")
    key = key_index(dataset.offsets)
    out: list[PosePrediction] = []
    model.eval()
    for batch in loader:
        frames = batch["frames"].to(device)  # (B, T, 3, H, W)
        if cfg.model.kind == "baseline":
            heatmaps = model(frames[:, key])  # (B, J, Hh, Wh)
            kp, scores = codec.decode(heatmaps.float())  # (B, J, 2), (B, J)
            unc = torch.zeros_like(scores)
        else:
            s = sample_poses(model, diffusion, codec, clips=frames, steps=steps,
                             eta=cfg.diffusion.eta if eta is None else eta, hypotheses=ensemble, combine=combine,
                             generator=gen)
            kp, scores, unc = s.keypoints, s.scores, s.uncertainty
        kp, scores, unc = kp.cpu().numpy(), scores.cpu().numpy(), unc.cpu().numpy()
        for i in range(kp.shape[0]):
            out.append(to_image(kp[i], scores[i], unc[i], batch["matrix"][i].numpy(), dataset.items[len(out)]))
    return out


def to_image(keypoints: np.ndarray, scores: np.ndarray, uncertainty: np.ndarray, matrix: np.ndarray,
             item: ClipItem) -> PosePrediction:
    """Crop-pixel results of one clip -> a :class:`PosePrediction` in image pixels.

    ``keypoints (J, 2)`` and ``uncertainty (J,)`` are in crop pixels, ``matrix (2, 3)`` maps image -> crop;
    the joint score is multiplied by the box score.
    """
    inv = invert_affine(matrix)  # (2, 3) crop -> image
    image_kp = keypoints @ inv[:, :2].T + inv[:, 2]  # (J, 2)
    px_per_crop_px = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return PosePrediction(keypoints=image_kp, scores=scores * item.score, uncertainty=uncertainty * px_per_crop_px,
                          box=np.asarray(item.box), box_score=item.score)


def prediction_videos(videos: list[Video], items: list[ClipItem], preds: list[PosePrediction]) -> list[Video]:
    """PoseTrack18 prediction videos: every GT frame in order, predicted persons with unique track ids."""
    per_frame: dict[tuple[int, int], list[PosePrediction]] = {}
    for item, pred in zip(items, preds):
        per_frame.setdefault((item.video, item.frame), []).append(pred)
    out = []
    for v, video in enumerate(videos):
        frames = []
        for f, frame in enumerate(video.frames):
            persons = []
            for t, p in enumerate(per_frame.get((v, f), [])):
                present = np.ones(len(p.scores), dtype=bool)
                present[list(POSETRACK18_UNLABELED)] = False
                kps = np.where(present[:, None], p.keypoints, 0.0)
                scores = np.where(present, p.scores, 0.0).astype(np.float64)
                persons.append(Person(keypoints=kps, visibility=scores.copy(), present=present, scores=scores,
                                      box=p.box, track_id=t, score=float(p.scores[present].mean()),
                                      extra={"uncertainty": [round(float(u), 3) for u in p.uncertainty]}))
            frames.append(Frame(file_name=frame.file_name, frame_index=f, image_id=frame.image_id,
                                is_labeled=frame.is_labeled, persons=persons, size=frame.size))
        out.append(Video(name=video.name, frames=frames, layout=video.layout, vid_id=video.vid_id,
                         categories=video.categories))
    return out


def run_test(checkpoint: str | Path, data_root: str | Path, split: str, out_dir: str | Path, steps: int = 1,
             ensemble: int = 1, combine: str = "mean", boxes: str = "gt", batch_size: int = 32,
             device: str = "auto", seed: int = 0, progress: bool = True, min_box_score: float = 0.0):
    """Predict a split with a checkpoint, write prediction files to ``out_dir/predictions``, evaluate them."""
    from diffpose.data.detections import read_detections
    from diffpose.engine.distributed import resolve_device

    dev = resolve_device(device)
    model, cfg = load_model(checkpoint, dev)
    detections = None if boxes == "gt" else read_detections(boxes)
    return evaluate_model(model, cfg, data_root, split, out_dir, steps, ensemble, combine, detections, batch_size,
                          dev, seed, progress, min_box_score)


def evaluate_model(model: torch.nn.Module, cfg: Config, data_root: str | Path, split: str, out_dir: str | Path,
                   steps: int = 1, ensemble: int = 1, combine: str = "mean", detections: list | None = None,
                   batch_size: int = 32, device: torch.device | str = "cpu", seed: int = 0, progress: bool = False,
                   min_box_score: float = 0.0) -> EvalResult:
    """The body of :func:`run_test` for a model already in memory (also used for validation in training)."""
    from diffpose.engine.trainer import clip_offsets

    videos = load_split(data_root, split)
    items = gt_items(videos) if detections is None else detection_items(videos, detections, min_box_score)
    if not items:
        raise DiffPoseError(f"no person boxes to evaluate in split {split!r}", data_root)
    check_writable(Path(out_dir) / "predictions", folder=True)  # before the predictions, not after them
    codec = HeatmapCodec.from_model_config(cfg.model)
    dataset = ClipDataset(videos, data_root, items, codec, clip_offsets(cfg), cfg.data.box_enlarge, None)
    preds = predict(model, cfg, dataset, torch.device(device), steps, ensemble, combine, batch_size=batch_size,
                    seed=seed, progress=progress)
    pred_dir = Path(out_dir) / "predictions"
    for video in prediction_videos(videos, items, preds):
        write_posetrack18(video, pred_dir / f"{video.name}.json")
    occluded = any(p.occluded is not None for v in videos for f in v.frames for p in f.persons)
    return evaluate_dirs(Path(data_root) / "annotations" / split, pred_dir, occluded=occluded)
