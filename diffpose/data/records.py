"""The one typed in-memory form that every reader returns and every writer takes.

``Video`` -> ``Frame`` -> ``Person``. Arrays are numpy (no torch in the data layer). Joint arrays follow
the video's :class:`~diffpose.keypoints.Layout` (PoseTrack18's 17 joints for all PoseTrack-style data).

Conventions are those of :mod:`diffpose.keypoints`: ``(x, y)`` pixels, boxes ``(x, y, w, h)``, the ``v`` value
kept as the file gives it and a separate ``present`` mask for "this joint exists".

Fields a reader does not understand are kept in ``extra`` dicts so that read -> write -> read loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffpose.keypoints import POSETRACK18, Layout


def _eq_optional_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


@dataclass(eq=False)
class Person:
    """One person in one frame.

    Attributes:
        keypoints: ``(J, 2)`` float64, ``(x, y)`` pixels. Absent joints hold ``(0, 0)``.
        visibility: ``(J,)`` float64, the file's ``v`` value (GT label flag, or the score in predictions).
        present: ``(J,)`` bool, the joint is annotated / predicted.
        scores: ``(J,)`` float64 per-joint confidences, NaN where the file gave none; None when the
            file gave no scores for this person at all (PoseTrack18 ``"scores": []``).
        box: ``(4,)`` float64 person box ``(x, y, w, h)``, or None.
        head_box: ``(4,)`` float64 head box ``(x, y, w, h)``, or None.
        track_id: identity within the video, or None.
        score: person (box) confidence, or None.
        occluded: ``(J,)`` bool, our flag for joints labelled but hidden in the pixels; None if unknown.
        pose_annotated: False for a PoseTrack17 ``annorect`` without ``annopoints`` (poseval drops those).
        id: annotation id, or None.
        extra: other fields of the annotation, kept verbatim.
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    present: np.ndarray
    scores: np.ndarray | None = None
    box: np.ndarray | None = None
    head_box: np.ndarray | None = None
    track_id: int | None = None
    score: float | None = None
    occluded: np.ndarray | None = None
    pose_annotated: bool = True
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, num_joints: int = POSETRACK18.num_joints, **kwargs: Any) -> Person:
        """A person with no joints present (a box-only annotation, for example)."""
        return cls(
            keypoints=np.zeros((num_joints, 2)),
            visibility=np.zeros(num_joints),
            present=np.zeros(num_joints, dtype=bool),
            **kwargs,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Person):
            return NotImplemented
        return (
            _eq_optional_array(self.keypoints, other.keypoints)
            and _eq_optional_array(self.visibility, other.visibility)
            and _eq_optional_array(self.present, other.present)
            and _eq_optional_array(self.scores, other.scores)
            and _eq_optional_array(self.box, other.box)
            and _eq_optional_array(self.head_box, other.head_box)
            and _eq_optional_array(self.occluded, other.occluded)
            and self.track_id == other.track_id
            and self.score == other.score
            and self.pose_annotated == other.pose_annotated
            and self.id == other.id
            and self.extra == other.extra
        )


@dataclass(eq=False)
class Frame:
    """One video frame and the people in it.

    Attributes:
        file_name: image path as the annotation writes it (relative to the dataset root).
        frame_index: 0-based position in the video.
        image_id: the file's image id (PoseTrack18 ``id``), or None.
        is_labeled: the frame carries pose annotation.
        persons: people in the frame, in file order.
        ignore_regions: polygons, each ``(N, 2)`` float64 ``(x, y)`` pixels.
        size: image size ``(W, H)`` if known.
        extra: other image fields, kept verbatim.
    """

    file_name: str
    frame_index: int
    image_id: int | None = None
    is_labeled: bool = False
    persons: list[Person] = field(default_factory=list)
    ignore_regions: list[np.ndarray] = field(default_factory=list)
    size: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.file_name == other.file_name
            and self.frame_index == other.frame_index
            and self.image_id == other.image_id
            and self.is_labeled == other.is_labeled
            and self.persons == other.persons
            and len(self.ignore_regions) == len(other.ignore_regions)
            and all(_eq_optional_array(a, b) for a, b in zip(self.ignore_regions, other.ignore_regions))
            and self.size == other.size
            and self.extra == other.extra
        )


@dataclass(eq=False)
class Video:
    """A sequence of frames with one joint layout.

    Attributes:
        name: sequence name, e.g. ``"012834_mpii_test"`` (PoseTrack18 file stem).
        frames: all frames in temporal order, labelled or not.
        layout: joint layout of every person's arrays.
        vid_id: the file's video id string (PoseTrack18 ``vid_id``), or None.
        categories: the file's ``categories`` list, kept verbatim for writing, or None.
        extra: other top-level fields, kept verbatim.
    """

    name: str
    frames: list[Frame] = field(default_factory=list)
    layout: Layout = POSETRACK18
    vid_id: str | None = None
    categories: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def labeled_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.is_labeled]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Video):
            return NotImplemented
        return (
            self.name == other.name
            and self.frames == other.frames
            and self.layout == other.layout
            and self.vid_id == other.vid_id
            and self.categories == other.categories
            and self.extra == other.extra
        )


@dataclass
class Detection:
    """A person box from a detector: ``box`` is ``(x, y, w, h)`` float64 pixels."""

    image_id: int | str
    box: np.ndarray
    score: float
    category_id: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detection):
            return NotImplemented
        return (
            self.image_id == other.image_id
            and _eq_optional_array(self.box, other.box)
            and self.score == other.score
            and self.category_id == other.category_id
            and self.extra == other.extra
        )
