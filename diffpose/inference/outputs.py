"""Result files: PoseTrack18 JSON (with track ids) and COCO keypoint results, written atomically at the end.

Both writers are *sinks*: ``add(result)`` for every :class:`~diffpose.inference.pipeline.FrameResult` in
order, then ``close()`` (writes the file) or ``abort()`` (writes nothing). They keep only the poses, about
1 KB per person, never pixels. The output path is checked when a sink is made, so an unwritable path fails
before the first frame rather than after the last.

PoseTrack18 file (what poseval and :func:`~diffpose.evaluation.evaluate_dirs` read): every frame of the input,
in order, with ``categories``; each person has a ``track_id`` (unique within its frame), ``bbox``, the joint
scores in ``scores`` and in the ``v`` slot, the person ``score`` (mean joint score) and our ``uncertainty``
(pixels, one per joint; other readers ignore it). The never-labelled ears are written absent ``(0, 0, 0)``.
For a PoseTrack input the file keeps the sequence's image ids, names, ``vid_id`` and ``is_labeled`` flags,
so it pairs with the ground truth frame by frame; for a video or folder ``image_id`` is the frame index.

COCO results file: ``[{image_id, category_id, keypoints, score, scores, bbox, track_id}, ...]``, keypoints
as in the PoseTrack file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from diffpose.data.coco import write_coco_results
from diffpose.data.posetrack18 import categories_for, write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose
from diffpose.inference.pipeline import FrameResult
from diffpose.io_utils import check_writable
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED, Layout


class Sink(Protocol):
    """Anything that consumes frame results in order."""

    def add(self, result: FrameResult) -> None: ...

    def close(self) -> list[Path]: ...

    def abort(self) -> None: ...


def person_record(pose: PersonPose, layout: Layout = POSETRACK18) -> Person:
    """A prediction :class:`~diffpose.data.records.Person`: score in ``v``, ears absent, uncertainty in ``extra``."""
    num_joints = len(pose.scores)
    if num_joints != layout.num_joints:
        raise DiffPoseError(f"the model predicts {num_joints} joints; the {layout.name} layout has "
                            f"{layout.num_joints}", field="keypoints")
    present = np.ones(num_joints, dtype=bool)
    if layout is POSETRACK18:
        present[list(POSETRACK18_UNLABELED)] = False
    scores = np.where(present, pose.scores, 0.0).astype(np.float64)
    return Person(
        keypoints=np.where(present[:, None], pose.keypoints, 0.0),
        visibility=scores.copy(),
        present=present,
        scores=scores,
        box=np.asarray(pose.box, dtype=np.float64),
        track_id=pose.track_id,
        score=float(pose.scores[present].mean()) if present.any() else 0.0,
        extra={"uncertainty": [round(float(u), 3) for u in pose.uncertainty]},
    )


class PoseTrackWriter:
    """Collects results and writes one PoseTrack18 JSON file at :meth:`close`.

    Args:
        path: output file; name: the video's name; template: the input's PoseTrack annotation (keeps its
            ``vid_id`` and ``categories``), if any.
    """

    def __init__(self, path: str | Path, name: str, template: Video | None = None, layout: Layout = POSETRACK18):
        self.path, self.name, self.template, self.layout = check_writable(path), name, template, layout
        self.frames: list[Frame] = []

    def add(self, result: FrameResult) -> None:
        ann = result.annotation
        self.frames.append(Frame(
            file_name=result.name, frame_index=result.index, image_id=result.image_id,
            is_labeled=ann.is_labeled if ann is not None else True,
            persons=[person_record(p, self.layout) for p in result.persons], size=result.size,
        ))  # fmt: skip

    def video(self) -> Video:
        t = self.template
        categories = t.categories if t is not None and t.categories is not None else categories_for(self.layout)
        return Video(name=self.name, frames=self.frames, layout=self.layout, vid_id=t.vid_id if t else None,
                     categories=categories)

    def close(self) -> list[Path]:
        return [write_posetrack18(self.video(), self.path)]

    def abort(self) -> None:
        self.frames = []


class CocoResultsWriter:
    """Collects results and writes one COCO keypoint results JSON file at :meth:`close`."""

    def __init__(self, path: str | Path, layout: Layout = POSETRACK18):
        self.path, self.layout = check_writable(path), layout
        self.by_image: dict[int | str, list[Person]] = {}

    def add(self, result: FrameResult) -> None:
        if result.persons:
            self.by_image[result.image_id] = [person_record(p, self.layout) for p in result.persons]

    def close(self) -> list[Path]:
        return [write_coco_results(self.by_image, self.path)]

    def abort(self) -> None:
        self.by_image = {}


def consume(results: Iterable[FrameResult], sinks: list[Sink]) -> list[Path]:
    """Feed every result to every sink in order, then close them; on any error abort them all and re-raise."""
    try:
        for result in results:
            for sink in sinks:
                sink.add(result)
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    written: list[Path] = []
    for sink in sinks:
        written.extend(sink.close())
    return written
