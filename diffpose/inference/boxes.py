"""Box providers: where the person boxes of each frame come from.

A provider is called with a :class:`~diffpose.inference.sources.SourceFrame` and returns :class:`Boxes`, or
None when it has **no information** about that frame. The pipeline fills frames without information with
boxes propagated from the previous frame's poses (:func:`propagate_boxes`). An empty :class:`Boxes` is
information: "nobody here".

* :class:`DetectionFileBoxes` -- a COCO / PoseTrack detection JSON (``[{image_id, bbox, score,
  category_id}]``). Frames are matched by ``image_id``: the real image id for a PoseTrack sequence, the
  **0-based frame index** for a video file or a folder (for a folder, the image file's name is accepted as a
  string ``image_id`` too). A frame whose id appears in the file has information (possibly no box left after
  the score filter); a frame whose id does not appear has none. Only ``category_id == 1`` is used.
* :class:`GroundTruthBoxes` -- the annotation's person boxes (``bbox``, else the keypoints' box scaled 1.3),
  for PoseTrack sequences. Labelled frames (or frames with persons) have information; others have none.
* :class:`CallableDetector` -- a Python function, see :func:`load_detector` for the contract.

:func:`sanitize_boxes` drops non-finite boxes, boxes narrower or lower than one pixel
(:data:`~diffpose.data.detections.MIN_BOX_SIDE`, e.g. a 1e-9 pixel detection) and boxes wholly outside the
image; the pipeline counts what it dropped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from diffpose.data.detections import MIN_BOX_SIDE, filter_detections, read_detections
from diffpose.data.transforms import box_from_keypoints
from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose
from diffpose.inference.sources import SourceFrame

MAX_BOX_SCALE = 10.0  # a box wider or higher than this many times the frame's larger side is no person


@dataclass
class Boxes:
    """The person boxes of one frame: ``xywh (N, 4)`` float64 image pixels and ``scores (N,)`` float64."""

    xywh: np.ndarray
    scores: np.ndarray
    origin: str  # "detections", "gt", "detector" or "propagated"

    @classmethod
    def empty(cls, origin: str) -> Boxes:
        return cls(np.zeros((0, 4)), np.zeros(0), origin)

    def __len__(self) -> int:
        return int(self.xywh.shape[0])


class BoxProvider(Protocol):
    """``provider(frame) -> Boxes | None`` (None: no information about this frame)."""

    name: str

    def __call__(self, frame: SourceFrame) -> Boxes | None: ...


def sanitize_boxes(boxes: Boxes, size: tuple[int, int]) -> tuple[Boxes, int]:
    """Drop boxes that are not finite, are narrower or lower than :data:`MIN_BOX_SIDE` pixels, wider or higher than
    :data:`MAX_BOX_SCALE` times the image's larger side (no person is; the crop would be a few pixels of the
    frame), or do not overlap the image ``[0, W] x [0, H]`` (``size = (W, H)``). Kept boxes are **not** clipped:
    a person partly outside the frame is cropped with their whole box, as in training and ``diffpose test``
    (clipping would shift and shrink the crop).

    Returns the kept boxes and the number dropped.
    """
    xywh = np.asarray(boxes.xywh, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(boxes.scores, dtype=np.float64).reshape(-1)
    finite = np.isfinite(xywh).all(axis=1) & np.isfinite(scores)
    width, height = size
    with np.errstate(invalid="ignore", over="ignore"):
        overlap_w = np.minimum(xywh[:, 0] + xywh[:, 2], width) - np.maximum(xywh[:, 0], 0)
        overlap_h = np.minimum(xywh[:, 1] + xywh[:, 3], height) - np.maximum(xywh[:, 1], 0)
        big_enough = (xywh[:, 2] >= MIN_BOX_SIDE) & (xywh[:, 3] >= MIN_BOX_SIDE)
        small_enough = (xywh[:, 2:] <= MAX_BOX_SCALE * max(width, height)).all(axis=1)
        keep = finite & big_enough & small_enough & (overlap_w > 0) & (overlap_h > 0)
    return Boxes(xywh[keep], scores[keep], boxes.origin), int((~keep).sum())


class DetectionFileBoxes:
    """Boxes from a detection file, grouped by ``image_id`` once (the file is read whole; it holds no pixels)."""

    def __init__(self, path: str | Path, min_score: float = 0.0):
        self.path = Path(path)
        self.name = f"detections {self.path.name}"
        self.by_image: dict[int | str, list[tuple[np.ndarray, float]]] = {}
        detections = read_detections(self.path)
        kept, self.dropped = filter_detections(detections, min_score, area=False)  # area: per frame, see sanitize_boxes
        self.total, self.kept = len(detections), len(kept)
        for det in detections:
            self.by_image.setdefault(det.image_id, [])  # a listed frame with no kept box has nobody (not propagated)
        for det in kept:
            self.by_image[det.image_id].append((det.box, float(det.score)))
        self.frames_matched = 0

    def __call__(self, frame: SourceFrame) -> Boxes | None:
        dets = self.by_image.get(frame.image_id)
        if dets is None:
            dets = self.by_image.get(frame.name.rsplit("/", 1)[-1])  # folder frames: the file name as image_id
        if dets is None:
            return None
        self.frames_matched += 1
        if not dets:
            return Boxes.empty("detections")
        return Boxes(np.stack([b for b, _ in dets]), np.array([s for _, s in dets]), "detections")


class GroundTruthBoxes:
    """Boxes of the annotated persons of a PoseTrack sequence (persons with at least ``min_joints`` joints)."""

    name = "ground truth"

    def __init__(self, min_joints: int = 1):
        self.min_joints = min_joints

    def __call__(self, frame: SourceFrame) -> Boxes | None:
        ann = frame.annotation
        if ann is None:
            raise DiffPoseError("--boxes gt needs annotations: give a PoseTrack18 JSON file as INPUT", field="--boxes")
        if not ann.is_labeled and not ann.persons:
            return None
        boxes = []
        for person in ann.persons:
            if person.present.sum() < self.min_joints:
                continue
            box = person.box if person.box is not None else box_from_keypoints(person.keypoints, person.present)
            if box is not None and box[2] > 0 and box[3] > 0:
                boxes.append(np.asarray(box, dtype=np.float64))
        if not boxes:
            return Boxes.empty("gt")
        return Boxes(np.stack(boxes), np.ones(len(boxes)), "gt")


class CallableDetector:
    """Wraps a user function ``fn(image) -> [(x, y, w, h, score), ...]`` as a provider (see :func:`load_detector`)."""

    def __init__(self, fn: Callable[[np.ndarray], Any], name: str = "detector", min_score: float = 0.0):
        self.fn, self.name, self.min_score = fn, name, min_score
        self.total = self.kept = 0  # boxes returned, and kept by the score filter, over the run

    def check_kept(self) -> None:
        """An error when the detector returned boxes and the score filter dropped every one of them (as for a
        detection file: otherwise the run would end with no person and exit 0)."""
        if self.total and not self.kept:
            raise DiffPoseError(f"all {self.total} boxes the detector returned score below --min-box-score "
                                f"{self.min_score:g}; no person was estimated", self.name)

    def __call__(self, frame: SourceFrame) -> Boxes:
        view = frame.image.view()
        view.flags.writeable = False  # the detector must not change the frame the model will see
        try:
            result = self.fn(view)
        except DiffPoseError:
            raise
        except Exception as e:  # the user's code failed: say where, in one line
            raise DiffPoseError(f"raised {type(e).__name__}: {e}", self.name, f"frame {frame.index}") from None
        rows = _detector_rows(result, self.name, frame.index)
        keep = rows[:, 4] >= self.min_score
        self.total, self.kept = self.total + len(rows), self.kept + int(keep.sum())
        return Boxes(rows[keep, :4], rows[keep, 4], "detector")


def _detector_rows(result: Any, name: str, index: int) -> np.ndarray:
    """``(N, 5)`` float64 from whatever the detector returned, or a one-line error."""
    if result is None:
        raise DiffPoseError("returned None; return a list of (x, y, w, h, score) (empty when nobody is there)",
                            name, f"frame {index}")
    try:
        rows = np.asarray(result if isinstance(result, np.ndarray) else list(result), dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffPoseError("expected a list of (x, y, w, h, score) numbers", name, f"frame {index}") from None
    if rows.size == 0:
        return np.zeros((0, 5))
    if rows.ndim != 2 or rows.shape[1] != 5:
        raise DiffPoseError(f"expected a list of (x, y, w, h, score), got an array of shape {rows.shape}", name,
                            f"frame {index}")
    bad = ~((rows[:, 4] >= 0) & (rows[:, 4] <= 1))  # NaN included
    if bad.any():
        raise DiffPoseError(f"expected scores in [0, 1] (a joint's score is its heatmap maximum times its box's), "
                            f"got {rows[bad, 4][0]:g}", name, f"frame {index}")
    return rows


def load_detector(spec: str, min_score: float = 0.0) -> CallableDetector:
    """Import ``module:function`` (the user's own code, named explicitly) and wrap it as a provider.

    Contract: ``function(image)`` gets one frame as a read-only RGB uint8 ``(H, W, 3)`` numpy array and returns
    a list of ``(x, y, w, h, score)`` person boxes (score in [0, 1]) in that image's pixels (``(x, y)`` the
    top-left corner), or an ``(N, 5)`` array; an empty list means nobody is in the frame. It is called once per
    consulted frame, in order. ``module`` must be importable (installed, or on ``PYTHONPATH``).
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise DiffPoseError(f"expected MODULE:FUNCTION, got {spec!r}", field="--detector")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise DiffPoseError(f"cannot import module {module_name!r}: {type(e).__name__}: {e}",
                            field="--detector") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise DiffPoseError(f"module {module_name!r} has no callable {attr!r}", field="--detector")
    return CallableDetector(fn, spec, min_score)


def propagate_boxes(persons: Sequence[PersonPose], min_joint_score: float = 0.2, min_joints: int = 2,
                    scale: float = 1.3, max_growth: float = 1.2) -> Boxes:
    """Boxes for the next frame from this frame's poses (PoseTrack's keypoint box, scaled ``scale``).

    Only joints with ``score >= min_joint_score`` count; a person with fewer than ``min_joints`` of them is not
    carried on (it is lost). The new box is centred on those joints, and its width and height stay within
    ``1 / max_growth .. max_growth`` times the box the pose was predicted from, so one stray joint cannot
    inflate the box frame after frame. Each box keeps its person's ``box_score``, so joint scores do not
    decay over a run of propagated frames.
    """
    boxes, scores = [], []
    for p in persons:
        confident = p.scores >= min_joint_score
        if confident.sum() < max(min_joints, 1):
            continue
        box = box_from_keypoints(p.keypoints, confident, scale)
        if box is None or box[2] <= 0 or box[3] <= 0:
            continue
        old_w, old_h = float(p.box[2]), float(p.box[3])
        if old_w > 0 and old_h > 0:
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            w = float(np.clip(box[2], old_w / max_growth, old_w * max_growth))
            h = float(np.clip(box[3], old_h / max_growth, old_h * max_growth))
            box = np.array([cx - w / 2, cy - h / 2, w, h])
        boxes.append(box)
        scores.append(p.box_score)
    if not boxes:
        return Boxes.empty("propagated")
    return Boxes(np.stack(boxes), np.array(scores, dtype=np.float64), "propagated")
