"""Result files: PoseTrack18 JSON (with track ids) and COCO keypoint results, written atomically at the end.

Both writers are *sinks*: ``add(result)`` for every :class:`~diffpose.inference.pipeline.FrameResult` in
order, then ``close()`` (writes the file) or ``abort()`` (writes nothing). A sink writes wherever it is told;
``diffpose infer`` tells it a staged path of :class:`~diffpose.io_outputs.Outputs`, and :func:`consume`
moves all the outputs into place together once every sink closed fine. They keep only the poses, about
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
from diffpose.io_outputs import Outputs
from diffpose.io_utils import check_writable
from diffpose.keypoints import POSETRACK18, Layout, convert_layout, joint_map


class Sink(Protocol):
    """Anything that consumes frame results in order."""

    def add(self, result: FrameResult) -> None: ...

    def close(self) -> list[Path]: ...

    def abort(self) -> None: ...


def person_record(pose: PersonPose, layout: Layout = POSETRACK18, model_layout: Layout | None = None) -> Person:
    """A prediction :class:`~diffpose.data.records.Person` in the file's ``layout`` from a pose in the model's
    joint layout (default: the same): joints matched by name, those the model lacks or the file never labels
    (PoseTrack18's ears; a COCO model's missing ``head_bottom`` / ``head_top``) absent; score in ``v``,
    uncertainty in ``extra``."""
    model_layout = model_layout or layout
    num_joints = len(pose.scores)
    if num_joints != model_layout.num_joints:
        raise DiffPoseError(f"the model predicts {num_joints} joints; the {model_layout.name} layout has "
                            f"{model_layout.num_joints}", field="keypoints")
    keypoints, scores, present = convert_layout(pose.keypoints, pose.scores, model_layout, layout)
    uncertainty = np.asarray(pose.uncertainty, dtype=np.float64)
    if model_layout is not layout:
        index = joint_map(model_layout, layout)
        uncertainty = np.where(index >= 0, uncertainty[np.maximum(index, 0)], 0.0)
    return Person(
        keypoints=keypoints,
        visibility=scores.copy(),
        present=present,
        scores=scores,
        box=np.asarray(pose.box, dtype=np.float64),
        track_id=pose.track_id,
        score=float(scores[present].mean()) if present.any() else 0.0,
        extra={"uncertainty": [round(float(u), 3) for u in uncertainty]},
    )


class PoseTrackWriter:
    """Collects results and writes one PoseTrack18 JSON file at :meth:`close`.

    Args:
        path: output file; name: the video's name; template: the input's PoseTrack annotation (keeps its
            ``vid_id`` and ``categories``), if any; model_layout: the joints the model predicts (default:
            PoseTrack18's own), written in PoseTrack18's layout.
    """

    def __init__(self, path: str | Path, name: str, template: Video | None = None,
                 model_layout: Layout = POSETRACK18):
        self.path, self.name, self.template, self.layout = check_writable(path), name, template, POSETRACK18
        self.model_layout = model_layout
        self.frames: list[Frame] = []

    def add(self, result: FrameResult) -> None:
        ann = result.annotation
        self.frames.append(Frame(
            file_name=result.name, frame_index=result.index, image_id=result.image_id,
            is_labeled=ann.is_labeled if ann is not None else True,
            persons=[person_record(p, self.layout, self.model_layout) for p in result.persons], size=result.size,
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
    """Collects results and writes one COCO keypoint results JSON file at :meth:`close`, keypoints in the
    model's own joint ``layout`` (a COCO model writes COCO's 17 joints)."""

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


def consume(results: Iterable[FrameResult], sinks: list[Sink], outputs: Outputs | None = None) -> list[Path]:
    """Feed every result to every sink in order, then close them; on any error (in a sink's ``add`` or
    ``close``, or an interrupt) abort them all and re-raise.

    With ``outputs`` (:class:`~diffpose.io_outputs.Outputs`, whose staged paths the sinks write to) the outputs
    are committed only once every sink closed fine, and discarded on any error; the paths returned are then the
    committed outputs. Without it each sink publishes its own file when it closes."""
    written: list[Path] = []
    try:
        for result in results:
            for sink in sinks:
                sink.add(result)
        for sink in sinks:
            written.extend(sink.close())
    except BaseException:
        for sink in sinks:
            sink.abort()
        if outputs is not None:
            outputs.discard()
        raise
    return outputs.commit() if outputs is not None else written
