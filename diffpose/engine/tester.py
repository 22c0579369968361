"""``diffpose test``: run a checkpoint over a split, write PoseTrack prediction files, score them.

For every (labelled frame, person box) of the split a clip is cropped exactly as in training (no
augmentation) by :class:`~diffpose.data.clip_dataset.ClipDataset` and predicted by a
:class:`~diffpose.estimators.Predictor` -- the object ``diffpose infer`` predicts with, so the same boxes give
the same keypoints in both commands. Keypoints go back to image pixels through the inverse of the crop
transform; a joint's score is its heatmap maximum times the box score (DCPose).

Prediction files follow poseval's expectations: one per GT video, same name, every GT image in GT order,
``categories``, ``track_id`` unique within each frame, the score in both ``scores`` and the ``v`` slot, and
the never-labelled ears written as absent.

With GT boxes each prediction belongs to one GT person, so its per-joint errors also say whether the predicted
uncertainty and the score flag the joints it gets wrong (:mod:`diffpose.evaluation.uncertainty`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from diffpose.checkpoint import resolve_device
from diffpose.data.clip_dataset import ClipDataset, ClipItem, detection_items, gt_items, load_split
from diffpose.data.detections import check_dropped, filter_detections, read_detections
from diffpose.data.images import opencv_before_fork
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.data.records import Detection, Frame, Person, Video
from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose, Predictor, load_estimator
from diffpose.evaluation import EvalResult, evaluate_dirs
from diffpose.evaluation.uncertainty import joint_errors, uncertainty_report
from diffpose.io_utils import check_writable
from diffpose.keypoints import POSETRACK18, Layout, convert_layout, joint_map


def predict_items(predictor: Predictor, videos: list[Video], root: str | Path, items: list[ClipItem],
                  workers: int = 0, progress: bool = False) -> list[PersonPose]:
    """Poses (image pixels) of every item, in order: clips cropped by a ``ClipDataset`` (``workers`` processes
    read and crop frames), predicted in batches of ``predictor.batch_size``."""
    dataset = ClipDataset(videos, root, items, predictor.codec, predictor.offsets, predictor.cfg.data.box_enlarge,
                          None)
    if workers:
        opencv_before_fork()
    loader = DataLoader(dataset, batch_size=predictor.batch_size, shuffle=False, num_workers=workers)
    if progress:
        loader = tqdm(loader, desc="predict", unit="batch")
    out: list[PersonPose] = []
    for batch in loader:
        n, clips = len(out), batch["frames"]  # (B, T, 3, H_in, W_in)
        boxes = np.array([items[n + i].box for i in range(len(clips))], dtype=np.float64)  # (B, 4)
        scores = np.array([items[n + i].score for i in range(len(clips))], dtype=np.float64)  # (B,)
        results = [predictor.run_model(clips[chunk]) for chunk in predictor.chunks(len(clips))]
        out += predictor.poses(results, list(batch["matrix"].numpy()), boxes, scores)
    return out


def prediction_videos(videos: list[Video], items: list[ClipItem], preds: list[PersonPose],
                      model_layout: Layout = POSETRACK18) -> list[Video]:
    """PoseTrack18 prediction videos: every GT frame in order, predicted persons with unique track ids; poses in
    ``model_layout`` are written in PoseTrack18's (joints matched by name, the rest absent)."""
    per_frame: dict[tuple[int, int], list[PersonPose]] = {}
    for item, pred in zip(items, preds):
        per_frame.setdefault((item.video, item.frame), []).append(pred)
    out = []
    for v, video in enumerate(videos):
        frames = []
        for f, frame in enumerate(video.frames):
            persons = []
            for t, p in enumerate(per_frame.get((v, f), [])):
                kps, scores, present = convert_layout(p.keypoints, p.scores, model_layout, POSETRACK18)
                index = joint_map(model_layout, POSETRACK18)
                unc = np.where(index >= 0, np.asarray(p.uncertainty)[np.maximum(index, 0)], 0.0)
                persons.append(Person(keypoints=kps, visibility=scores.copy(), present=present, scores=scores,
                                      box=p.box, track_id=t, score=float(scores[present].mean()),
                                      extra={"uncertainty": [round(float(u), 3) for u in unc]}))
            frames.append(Frame(file_name=frame.file_name, frame_index=f, image_id=frame.image_id,
                                is_labeled=frame.is_labeled, persons=persons, size=frame.size))
        out.append(Video(name=video.name, frames=frames, layout=video.layout, vid_id=video.vid_id,
                         categories=video.categories))
    return out


def evaluate_split(predictor: Predictor, data_root: str | Path, split: str, out_dir: str | Path,
                   detections: list[Detection] | None = None, min_box_score: float = 0.0, workers: int = 0,
                   progress: bool = False, uncertainty: dict[str, Any] | None = None,
                   pred_dir: str | Path | None = None) -> EvalResult:
    """Predict every person box of ``split`` (GT boxes, or ``detections``), write ``out_dir/predictions/*.json``
    (or ``pred_dir/*.json``: ``diffpose test`` gives a folder staged by :class:`~diffpose.io_outputs.Outputs`)
    and score them (with AP on occluded joints when the ground truth flags them).

    With GT boxes, a model of PoseTrack18's joints and a dict ``uncertainty``, that dict is filled with
    :func:`~diffpose.evaluation.uncertainty.uncertainty_report` (do the predicted uncertainty and the score flag
    the wrong joints?); with ``detections`` it is left empty (a detection has no GT person of its own).
    """
    videos = load_split(data_root, split)
    items = gt_items(videos) if detections is None else detection_items(videos, detections, min_box_score)
    if not items:
        raise DiffPoseError(f"no person boxes to evaluate in split {split!r}", data_root)
    pred_dir = Path(out_dir) / "predictions" if pred_dir is None else Path(pred_dir)
    check_writable(pred_dir, folder=True)  # before the predictions, not after them
    preds = predict_items(predictor, videos, data_root, items, workers, progress)
    for video in prediction_videos(videos, items, preds, predictor.layout):
        write_posetrack18(video, pred_dir / f"{video.name}.json")
    occluded = any(p.occluded is not None for v in videos for f in v.frames for p in f.persons)
    result = evaluate_dirs(Path(data_root) / "annotations" / split, pred_dir, occluded=occluded)
    if uncertainty is not None and detections is None and predictor.layout is POSETRACK18:
        uncertainty.update(uncertainty_report(joint_errors(videos, items, preds)))
    return result


def run_test(checkpoint: str | Path, data_root: str | Path, split: str, out_dir: str | Path,
             boxes: str = "gt", device: str = "auto", progress: bool = True, min_box_score: float = 0.0,
             workers: int | None = None, uncertainty: dict[str, Any] | None = None,
             pred_dir: str | Path | None = None, **predictor_args) -> tuple[EvalResult, Predictor]:
    """Predict a split with a checkpoint (``predictor_args``: sampling settings, ``seed``, ``batch_size``; unset
    sampling settings come from the checkpoint), write prediction files to ``out_dir/predictions`` (or
    ``pred_dir``), score them.

    Returns the result and the predictor (whose ``sampling`` says how the predictions were made). A dict
    ``uncertainty`` is filled with the uncertainty report when ``boxes`` is ``"gt"`` (see :func:`evaluate_split`).
    """
    dev = resolve_device(device, field="--device")
    estimator = load_estimator(checkpoint, dev)
    predictor = Predictor(estimator, dev, **predictor_args)
    detections = None if boxes == "gt" else read_detections(boxes)
    if detections is not None:
        kept, dropped = filter_detections(detections, min_box_score)
        check_dropped(boxes, len(detections), len(kept), dropped, "test")  # every box dropped: an error
    workers = estimator.cfg.data.workers if workers is None else workers
    with torch.inference_mode():
        result = evaluate_split(predictor, data_root, split, out_dir, detections, min_box_score, workers, progress,
                                uncertainty, pred_dir)
    return result, predictor
