"""PoseTrack pose AP from files, exactly as the official poseval computes it (or the PoseTrack21 kit).

``evaluate_dirs(GT_DIR, PRED_DIR)`` reads every ``*.json`` in ``GT_DIR`` (sorted by name), the prediction
file of the same name in ``PRED_DIR``, pairs frames by position and scores them.

Protocol ``"poseval"`` (PoseTrack 2017 / 2018, ``posetrack-format-and-eval.md`` §4):

* Evaluated frames: GT frames with at least one person (``is_labeled`` is not read).
* Persons without a pose (a PoseTrack17 ``annorect`` without ``annopoints``) are dropped on both sides.
* A PoseTrack18 joint exists iff it is not exactly ``(0, 0, 0)``.
* In frames whose GT lists ignore regions, every GT and predicted joint strictly inside a polygon is
  removed, then every person left without joints.
* Per-joint scores come from ``scores`` (or the PoseTrack17 point ``score``); a missing score is -9999.

Protocol ``"posetrack21"`` (the PoseTrack21 kit, §4.5): evaluated frames are GT frames with
``is_labeled``; prediction image ids must equal the GT's, position by position; a joint exists iff
``x > 0 and y > 0`` on both sides; in frames with ignore regions, joints inside are zeroed and persons with
every joint inside, or no joint left with ``x > 0 or y > 0``, are dropped; recall divides by
``max(#GT, 1)``. Where the kit crashes (a labelled frame with predictions but no GT person) predicted
joints count as false positives, as poseval does.

GT head boxes of zero or negative width or height are scored with poseval's arithmetic unchanged and
counted per file (:attr:`EvalResult.bad_head_boxes`); ``diffpose evaluate`` warns about them.

Where poseval itself would crash (missing prediction file, frame count mismatch, duplicate track ids in a
frame, a missing track id, a GT person without head box where PCKh needs one) we raise a
:class:`~diffpose.errors.DataFormatError` naming the file and what is wrong. Degenerate ignore polygons
(fewer than 3 points, where shapely fails inside poseval) contain nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from tqdm import tqdm

from diffpose.data.posetrack17 import posetrack17_from_dict
from diffpose.data.posetrack18 import posetrack18_videos_from_dict
from diffpose.data.records import Frame, Person, Video
from diffpose.data.validate import load_json
from diffpose.errors import DataFormatError
from diffpose.evaluation.matching import MISSING_SCORE, EvalFrame, FrameRecords, assign, head_size
from diffpose.evaluation.metrics import joint_metrics
from diffpose.evaluation.report import EvalResult
from diffpose.keypoints import POSETRACK17_JOINTS, POSETRACK18_NAME_OF_POSEVAL, Layout

PROTOCOLS = ("poseval", "posetrack21")
_NUM = len(POSETRACK17_JOINTS)


def poseval_index(layout: Layout, path: Path | str) -> np.ndarray:
    """``(15,)`` indices into ``layout`` of poseval's joints, matched by name as poseval does."""
    idx = []
    for name in POSETRACK17_JOINTS:
        pt18 = POSETRACK18_NAME_OF_POSEVAL[name]
        if pt18 not in layout.joints:
            raise DataFormatError(f"joint {pt18!r} is not among the file's keypoint names; poseval maps the "
                                  "15 evaluated joints by name", path, "categories[0].keypoints")
        idx.append(layout.joints.index(pt18))
    return np.asarray(idx)


def read_video_for_eval(path: Path) -> Video:
    """Read a GT or prediction file (PoseTrack18/21 JSON, or PoseTrack17 annolist JSON)."""
    data = load_json(path)
    if isinstance(data, dict) and "annolist" in data:
        return posetrack17_from_dict(data, path)
    videos = posetrack18_videos_from_dict(data, path)
    if len(videos) > 1:
        raise DataFormatError(f"holds frames of {len(videos)} videos; poseval evaluates one video per file "
                              "(it would silently keep only the first)", path, "images[].file_name")
    return videos[0] if videos else Video(name=path.stem)


def _person_arrays(persons: list[Person], idx: np.ndarray, protocol: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``xy (N, 15, 2)``, ``has (N, 15)``, ``score (N, 15)``, ``occluded (N, 15)`` in poseval order."""
    n = len(persons)
    if n == 0:
        return np.zeros((0, _NUM, 2)), np.zeros((0, _NUM), bool), np.zeros((0, _NUM)), np.zeros((0, _NUM), bool)
    xy = np.stack([p.keypoints for p in persons])[:, idx]  # (N, 15, 2)
    if protocol == "posetrack21":
        has = (xy[..., 0] > 0) & (xy[..., 1] > 0)
    else:
        has = np.stack([p.present for p in persons])[:, idx]  # (N, 15)
    score = np.full((n, _NUM), MISSING_SCORE)
    with_scores = [k for k, p in enumerate(persons) if p.scores is not None]
    if with_scores:
        s = np.stack([persons[k].scores for k in with_scores])[:, idx]  # (N', 15)
        score[with_scores] = np.where(np.isnan(s), MISSING_SCORE, s)
    occluded = np.zeros((n, _NUM), dtype=bool)
    for k, p in enumerate(persons):
        if p.occluded is not None:
            occluded[k] = p.occluded[idx]
    return xy, has, score, occluded


def _inside(polygons: list[shapely.Polygon], xy: np.ndarray) -> np.ndarray:
    """``xy (..., 2)`` -> ``(...)`` bool: the point is strictly inside one of the polygons (the boundary is outside)."""
    inside = np.zeros(xy.shape[:-1], dtype=bool)
    for poly in polygons:
        inside |= shapely.contains_xy(poly, xy[..., 0], xy[..., 1])
    return inside


def ignore_polygons(regions: list[np.ndarray]) -> list[shapely.Polygon]:
    """A frame's ignore regions as polygons; degenerate ones (fewer than 3 points) contain nothing."""
    return [shapely.Polygon(r) for r in regions if len(r) >= 3]


def inside_ignore_regions(regions: list[np.ndarray], xy: np.ndarray) -> np.ndarray:
    """``xy (..., 2)`` -> ``(...)`` bool: strictly inside one of a frame's ignore regions, as the evaluator tests."""
    return _inside(ignore_polygons(regions), xy)


def _frame_arrays(gt_frame: Frame, pr_frame: Frame, gidx: np.ndarray, pidx: np.ndarray, protocol: str,
                  where: str) -> EvalFrame:
    gts, prs = gt_frame.persons, pr_frame.persons
    if protocol == "poseval":
        gts = [p for p in gts if p.pose_annotated]
        prs = [p for p in prs if p.pose_annotated]
    gxy, ghas, _, gocc = _person_arrays(gts, gidx, protocol)
    pxy, phas, pscore, _ = _person_arrays(prs, pidx, protocol)
    heads = np.array([p.head_box if p.head_box is not None else np.full(4, np.nan) for p in gts]).reshape(-1, 4)
    if gt_frame.ignore_regions:
        polygons = ignore_polygons(gt_frame.ignore_regions)
        g_in, p_in = _inside(polygons, gxy), _inside(polygons, pxy)
        if protocol == "poseval":  # remove joints inside, then persons left without joints
            ghas, phas = ghas & ~g_in, phas & ~p_in
            gkeep, pkeep = ghas.any(axis=1), phas.any(axis=1)
        else:  # PoseTrack21 kit: zero joints inside; drop all-inside and all-(x<=0 & y<=0) persons
            gxy, pxy = np.where(g_in[..., None], 0.0, gxy), np.where(p_in[..., None], 0.0, pxy)
            pscore = np.where(p_in, 0.0, pscore)
            ghas, phas = (gxy[..., 0] > 0) & (gxy[..., 1] > 0), (pxy[..., 0] > 0) & (pxy[..., 1] > 0)
            gkeep = ~g_in.all(axis=1) & ~((gxy[..., 0] <= 0) & (gxy[..., 1] <= 0)).all(axis=1)
            pkeep = ~p_in.all(axis=1) & ~((pxy[..., 0] <= 0) & (pxy[..., 1] <= 0)).all(axis=1)
        gxy, ghas, gocc, heads = gxy[gkeep], ghas[gkeep], gocc[gkeep], heads[gkeep]
        pxy, phas, pscore = pxy[pkeep], phas[pkeep], pscore[pkeep]
    frame = EvalFrame(gt_xy=gxy, gt_has=ghas, head_size=head_size(heads), gt_occluded=gocc,
                      pred_xy=pxy, pred_has=phas, pred_score=pscore, where=where)
    if len(pxy) and len(gxy) and np.isnan(frame.head_size).any():
        k = int(np.flatnonzero(np.isnan(frame.head_size))[0])
        raise DataFormatError(f"GT person {k} of frame {gt_frame.frame_index} ({gt_frame.file_name}) has no head box; "
                              "PCKh needs bbox_head (x1..y2 in PoseTrack17)", where, "bbox_head")
    return frame


def _check_predictions(pred: Video, pred_path: Path, gt: Video, gt_path: Path, protocol: str) -> None:
    if len(pred.frames) != len(gt.frames):
        raise DataFormatError(f"has {len(pred.frames)} frames but the GT file {gt_path.name} has {len(gt.frames)}; "
                              "write every GT image, in GT order", pred_path, "images")
    for i, (gf, pf) in enumerate(zip(gt.frames, pred.frames)):
        if (protocol == "posetrack21" or (gf.image_id is not None and pf.image_id is not None)) \
                and gf.image_id != pf.image_id:
            raise DataFormatError(f"frame {i} has image id {pf.image_id} but the GT has {gf.image_id}; "
                                  "frames are paired by position, write them in GT order", pred_path, f"images[{i}].id")
    for video, path in ((gt, gt_path), (pred, pred_path)):
        for frame in video.frames:
            ids = [p.track_id for p in frame.persons]
            if any(t is None for t in ids):
                raise DataFormatError(f"a person in frame {frame.frame_index} ({frame.file_name}) has no track_id; "
                                      "poseval requires one for every person", path, "track_id")
            if video is pred and len(set(ids)) != len(ids):
                raise DataFormatError(f"duplicate track ids {sorted(ids)} in frame {frame.frame_index} "
                                      f"({frame.file_name}); they must be unique within a frame", path, "track_id")


def frames_for_eval(gt: Video, pred: Video, gt_path: Path, pred_path: Path, protocol: str) -> list[EvalFrame]:
    """The evaluated frames of one sequence, after the protocol's filtering and ignore-region removal."""
    _check_predictions(pred, pred_path, gt, gt_path, protocol)
    gidx, pidx = poseval_index(gt.layout, gt_path), poseval_index(pred.layout, pred_path)
    out = []
    for gf, pf in zip(gt.frames, pred.frames):
        evaluated = gf.is_labeled if protocol == "posetrack21" else len(gf.persons) > 0
        if evaluated:
            out.append(_frame_arrays(gf, pf, gidx, pidx, protocol, str(gt_path)))
    return out


def evaluate_frames(frames: list[EvalFrame], protocol: str = "poseval", occluded: bool = False) -> EvalResult:
    """AP over already-built evaluation frames (pooled in list order)."""
    records: list[FrameRecords] = [assign(f) for f in frames]
    floor = protocol == "posetrack21"
    return EvalResult(
        protocol=protocol,
        frames_evaluated=len(frames),
        joints=joint_metrics(records, recall_floor_one=floor),
        occluded=joint_metrics(records, occluded_only=True, recall_floor_one=floor) if occluded else None,
    )


def evaluate_dirs(gt_dir: str | Path, pred_dir: str | Path, protocol: str = "poseval", occluded: bool = False,
                  progress: bool = False) -> EvalResult:
    """Evaluate every GT file of ``gt_dir`` against the same-named prediction file in ``pred_dir``."""
    if protocol not in PROTOCOLS:
        raise DataFormatError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not d.is_dir():
            raise DataFormatError(f"{what} directory does not exist" if not d.exists() else "is not a directory", d)
    gt_files = sorted(gt_dir.glob("*.json"))
    if not gt_files:
        raise DataFormatError("no *.json ground-truth files here", gt_dir)
    frames: list[EvalFrame] = []
    bad_heads: dict[str, int] = {}
    iterator = gt_files
    if progress:
        iterator = tqdm(gt_files, desc="evaluate", unit="video")
    for gt_path in iterator:
        pred_path = pred_dir / gt_path.name
        if not pred_path.is_file():
            raise DataFormatError(f"missing prediction file for GT {gt_path}", pred_path)
        gt = read_video_for_eval(gt_path)
        pred = read_video_for_eval(pred_path)
        frames.extend(frames_for_eval(gt, pred, gt_path, pred_path, protocol))
        bad = bad_head_boxes(gt, protocol)
        if bad:
            bad_heads[str(gt_path)] = bad
    result = evaluate_frames(frames, protocol, occluded)
    result.bad_head_boxes = bad_heads
    return result


def bad_head_boxes(gt: Video, protocol: str) -> int:
    """How many GT persons of ``gt``'s evaluated frames have a head box of zero or negative width or height.

    Only counted: the evaluation keeps poseval's arithmetic for them (parity), the caller warns."""
    count = 0
    for frame in gt.frames:
        if not (frame.is_labeled if protocol == "posetrack21" else len(frame.persons) > 0):
            continue
        for person in frame.persons:
            if protocol == "poseval" and not person.pose_annotated:
                continue
            box = person.head_box
            if box is not None and (box[2] <= 0 or box[3] <= 0):
                count += 1
    return count


def evaluate_videos(pairs: list[tuple[Video, Video]], protocol: str = "poseval",
                    occluded: bool = False) -> EvalResult:
    """Evaluate in-memory ``(gt, prediction)`` video pairs (in the given order) without touching disk."""
    frames: list[EvalFrame] = []
    for gt, pred in pairs:
        frames.extend(frames_for_eval(gt, pred, Path(f"<gt {gt.name}>"), Path(f"<pred {pred.name}>"), protocol))
    return evaluate_frames(frames, protocol, occluded)
