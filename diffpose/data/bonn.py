"""The Bonn multi-person PoseTrack ``annolist.mat`` (PoseTrack-CVPR2017) <-> a list of :class:`Video`.

File layout (``posetrack-format-and-eval.md`` §8.5), loaded with ``squeeze_me=True, struct_as_record=False``:
``annolist`` is a struct array, one entry per video, with fields ``name``, ``num_frames``, ``num_persons`` and
``annopoints``, a ``(num_persons, num_frames)`` cell array. A cell is empty when the person is not in that
frame, else a struct with ``point`` (struct array ``x, y, id, is_visible, is_truncated``; MPII joint ids)
and ``head_rect = [x1, y1, x2, y2]``. Frames are ``videos/<name>/%05d.jpg``, 1-based.

Records: the PoseTrack18 17-joint layout through ``POSETRACK18_FROM_MPII`` (MPII upper_neck is
``head_bottom``; the nose and ears are absent). ``track_id`` is the person's row, ``head_box`` is
``(x1, y1, x2 - x1, y2 - y1)``, persons of a frame are in row order and a frame ``is_labeled`` iff one of
its persons has points. Kept losslessly in ``Person.extra``: ``is_truncated`` (per joint of the 17, None
where absent) and ``unmapped_points`` (MPII joints PoseTrack lacks, e.g. pelvis / thorax, as dicts).

The writer stores only what the format has: file names are rebuilt from the video name, and person
boxes, scores, ids, image sizes and ignore regions are not stored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from diffpose.data.posetrack17 import (
    corners_from_head_box,
    head_box_from_corners,
    load_mat,
    plain_from_mat,
    plain_to_mat,
)
from diffpose.data.records import Frame, Person, Video
from diffpose.data.validate import number
from diffpose.errors import DataFormatError
from diffpose.io_utils import atomic_write_with
from diffpose.keypoints import MPII_JOINTS, POSETRACK18, POSETRACK18_FROM_MPII

_ENTRY_FIELDS = {"name", "num_frames", "num_persons", "annopoints"}
_PERSON_FIELDS = {"point", "head_rect"}
_POINT_FIELDS = {"x", "y", "id", "is_visible", "is_truncated"}
TRUNCATED = "is_truncated"  # Person.extra key: per-joint is_truncated (17 long, None where absent)
UNMAPPED = "unmapped_points"  # Person.extra key: points whose MPII id has no PoseTrack18 joint
_MISSING = object()


def frame_file_name(video_name: str, frame_index: int) -> str:
    """Image path of 0-based frame ``frame_index``: ``videos/<name>/%05d.jpg`` with 1-based numbers."""
    return f"videos/{video_name}/{frame_index + 1:05d}.jpg"


# --------------------------------------------------------------------------------------------------
# Checked access to loaded MATLAB values
# --------------------------------------------------------------------------------------------------
def _is_struct(value: Any) -> bool:
    return hasattr(value, "_fieldnames")


def _is_empty(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.size == 0


def _field(struct: Any, name: str, path: Path | str, where: str, default: Any = _MISSING) -> Any:
    if name not in struct._fieldnames:
        if default is not _MISSING:
            return default
        raise DataFormatError("missing required field", path, f"{where}.{name}")
    return getattr(struct, name)


def _structs(value: Any, path: Path | str, field: str) -> list[Any]:
    """A struct array as a list (squeezing turns a 1-element array into the bare struct)."""
    if _is_struct(value):
        return [value]
    if isinstance(value, np.ndarray) and value.dtype == object and all(_is_struct(v) for v in value.flat):
        return list(value.flat)
    raise DataFormatError(f"expected a struct array, got {type(value).__name__}", path, field)


def _scalar(value: Any, path: Path | str, field: str) -> float:
    """One finite real number (a MATLAB scalar, possibly still a 1-element array)."""
    if type(value) is float or type(value) is int:  # the common case, checked fast
        if math.isfinite(value):
            return float(value)
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "biuf":
            raise DataFormatError(f"expected one number, got an array of shape {value.shape}", path, field)
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    return number(value, path, field)


def _count(value: Any, path: Path | str, field: str) -> int:
    x = _scalar(value, path, field)
    if not x.is_integer() or x < 0:
        raise DataFormatError(f"expected a non-negative integer, got {x!r}", path, field)
    return int(x)


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _read_points(points: list[Any], person: Person, path: Path | str, where: str) -> None:
    truncated: list[int | float | None] = [None] * person.num_joints
    unmapped: list[dict[str, Any]] = []
    seen: set[int] = set()
    for k, pt in enumerate(points):
        w = f"{where}.point[{k}]"
        unknown = sorted(set(pt._fieldnames) - _POINT_FIELDS)
        if unknown:
            raise DataFormatError(f"unexpected point field (expected {sorted(_POINT_FIELDS)})", path,
                                  f"{w}.{unknown[0]}")
        mid = _count(_field(pt, "id", path, w), path, f"{w}.id")
        if mid >= len(MPII_JOINTS):
            raise DataFormatError(f"expected an MPII joint id 0..15, got {mid}", path, f"{w}.id")
        if mid in seen:
            raise DataFormatError(f"joint id {mid} is listed twice", path, f"{w}.id")
        seen.add(mid)
        x = _scalar(_field(pt, "x", path, w), path, f"{w}.x")
        y = _scalar(_field(pt, "y", path, w), path, f"{w}.y")
        vis_raw = _field(pt, "is_visible", path, w, None)
        vis = 1.0 if vis_raw is None or _is_empty(vis_raw) else _scalar(vis_raw, path, f"{w}.is_visible")
        trunc_raw = _field(pt, "is_truncated", path, w, None)
        trunc = None if trunc_raw is None or _is_empty(trunc_raw) else _plain_number(
            _scalar(trunc_raw, path, f"{w}.is_truncated"))
        if mid not in POSETRACK18_FROM_MPII:
            item = {"x": x, "y": y, "id": mid, "is_visible": _plain_number(vis)}
            if trunc is not None:
                item["is_truncated"] = trunc
            unmapped.append(item)
            continue
        j = POSETRACK18_FROM_MPII[mid]
        person.keypoints[j] = x, y  # (x, y)
        person.visibility[j] = vis
        person.present[j] = True
        truncated[j] = trunc
    if any(t is not None for t in truncated):
        person.extra[TRUNCATED] = truncated
    if unmapped:
        person.extra[UNMAPPED] = unmapped


def _read_person(entry: Any, track_id: int, path: Path | str, where: str) -> Person:
    if not _is_struct(entry):
        raise DataFormatError(f"expected a struct or an empty cell, got {type(entry).__name__}", path, where)
    person = Person.empty(POSETRACK18.num_joints, track_id=track_id)
    head = _field(entry, "head_rect", path, where, None)
    if head is not None and not _is_empty(head):
        arr = np.asarray(head)
        if arr.dtype.kind not in "biuf" or arr.size != 4 or not np.isfinite(arr.astype(float)).all():
            raise DataFormatError("expected 4 finite numbers [x1, y1, x2, y2]", path, f"{where}.head_rect")
        person.head_box = head_box_from_corners(*(float(v) for v in arr.reshape(-1)))
    person.extra = {f: plain_from_mat(getattr(entry, f), False, path)
                    for f in entry._fieldnames if f not in _PERSON_FIELDS}
    points = _field(entry, "point", path, where, None)
    person.pose_annotated = points is not None and not _is_empty(points)
    if person.pose_annotated:
        _read_points(_structs(points, path, f"{where}.point"), person, path, where)
    return person


def _person_frame_grid(annopoints: Any, num_persons: int, num_frames: int, path: Path | str,
                       where: str) -> np.ndarray:
    """The ``(P, F)`` object array of person-frame cells, undoing ``squeeze_me``."""
    if num_persons * num_frames == 1 and (_is_struct(annopoints) or _is_empty(annopoints)):
        grid = np.empty((1, 1), dtype=object)
        grid[0, 0] = annopoints
        return grid
    if not isinstance(annopoints, np.ndarray) or annopoints.size != num_persons * num_frames:
        shape = getattr(annopoints, "shape", type(annopoints).__name__)
        raise DataFormatError(f"expected {num_persons} x {num_frames} cells (num_persons x num_frames), "
                              f"got {shape}", path, f"{where}.annopoints")
    return annopoints.reshape(num_persons, num_frames)  # (P, F)


def _read_video(entry: Any, path: Path | str, where: str) -> Video:
    name = _field(entry, "name", path, where)
    if not isinstance(name, str):
        raise DataFormatError(f"expected a string, got {type(name).__name__}", path, f"{where}.name")
    num_frames = _count(_field(entry, "num_frames", path, where), path, f"{where}.num_frames")
    num_persons = _count(_field(entry, "num_persons", path, where), path, f"{where}.num_persons")
    grid = _person_frame_grid(_field(entry, "annopoints", path, where), num_persons, num_frames, path, where)
    frames = [Frame(file_name=frame_file_name(name, f), frame_index=f) for f in range(num_frames)]
    for p in range(num_persons):
        for f in range(num_frames):
            if not _is_empty(grid[p, f]):
                frames[f].persons.append(_read_person(grid[p, f], p, path, f"{where}.annopoints[{p},{f}]"))
    for frame in frames:
        frame.is_labeled = any(person.pose_annotated for person in frame.persons)
    extra = {f: plain_from_mat(getattr(entry, f), False, path) for f in entry._fieldnames if f not in _ENTRY_FIELDS}
    tracks = {person.track_id for frame in frames for person in frame.persons}
    if num_persons > max(tracks, default=-1) + 1:  # rows no frame uses: not recoverable from the persons
        extra["num_persons"] = num_persons
    return Video(name=name, frames=frames, layout=POSETRACK18, extra=extra)


def bonn_from_mat(variables: dict[str, Any], path: Path | str = "<memory>", video: str | None = None) -> list[Video]:
    """Parse the variables of a Bonn ``.mat`` (from :func:`~diffpose.data.posetrack17.load_mat`)."""
    if "annolist" not in variables:
        raise DataFormatError(f"missing variable (found {sorted(variables)})", path, "annolist")
    entries = _structs(variables["annolist"], path, "annolist")
    videos, names = [], []
    for i, entry in enumerate(entries):
        name = _field(entry, "name", path, f"annolist[{i}]")
        names.append(name)
        if video is None or name == video:
            videos.append(_read_video(entry, path, f"annolist[{i}]"))
    if video is not None and not videos:
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise DataFormatError(f"no video named {video!r} (the file has {shown})", path, "annolist[].name")
    return videos


def read_bonn_mat(path: str | Path, video: str | None = None) -> list[Video]:
    """Read a Bonn multi-person ``annolist.mat``: every video, or only the one named ``video``."""
    return bonn_from_mat(load_mat(path), path, video)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _empty_cell() -> np.ndarray:
    return np.zeros((1, 0))


def _person_struct(person: Person, path: Path | str, where: str) -> dict[str, Any]:
    if person.num_joints != POSETRACK18.num_joints:
        raise DataFormatError(f"person has {person.num_joints} joints, the Bonn format needs the 17-joint "
                              "PoseTrack18 layout", path, where)
    extra = {k: v for k, v in person.extra.items() if k not in (TRUNCATED, UNMAPPED)}
    out: dict[str, Any] = plain_to_mat(extra, path, where)
    if person.head_box is not None:
        out["head_rect"] = np.array(corners_from_head_box(person.head_box))
    if not person.pose_annotated:
        if person.present.any():
            raise DataFormatError("has joints but pose_annotated is False", path, where)
        out["point"] = _empty_cell()
        return out
    truncated = person.extra.get(TRUNCATED) or [None] * person.num_joints
    points = [dict(p) for p in person.extra.get(UNMAPPED, [])]
    for mid, j in POSETRACK18_FROM_MPII.items():
        if person.present[j]:
            point = {"x": float(person.keypoints[j, 0]), "y": float(person.keypoints[j, 1]), "id": mid,
                     "is_visible": _plain_number(float(person.visibility[j]))}
            if truncated[j] is not None:
                point["is_truncated"] = truncated[j]
            points.append(point)
    points.sort(key=lambda p: p["id"])
    cells = np.empty(len(points), dtype=object)
    cells[:] = points
    out["point"] = cells if points else _empty_cell()
    return out


def _video_struct(video: Video, path: Path | str, where: str) -> dict[str, Any]:
    if video.layout != POSETRACK18:
        raise DataFormatError(f"the Bonn format needs the posetrack18 layout, got {video.layout.name!r}", path, where)
    tracks = [p.track_id for frame in video.frames for p in frame.persons]
    if any(t is None or t < 0 for t in tracks):
        raise DataFormatError("every person needs a track_id >= 0 (its row in annopoints)", path, where)
    num_persons = max(max(tracks, default=-1) + 1, int(video.extra.get("num_persons", 0)))
    grid = np.empty((num_persons, len(video.frames)), dtype=object)  # (P, F)
    for p in range(num_persons):
        for f in range(len(video.frames)):
            grid[p, f] = _empty_cell()
    for f, frame in enumerate(video.frames):
        for person in frame.persons:
            if not _is_empty(grid[person.track_id, f]):
                raise DataFormatError(f"track_id {person.track_id} appears twice in frame {f}", path, where)
            grid[person.track_id, f] = _person_struct(person, path, f"{where}.annopoints[{person.track_id},{f}]")
    extra = {k: v for k, v in video.extra.items() if k != "num_persons"}
    out = plain_to_mat(extra, path, where)
    out.update(name=video.name, num_frames=len(video.frames), num_persons=num_persons, annopoints=grid)
    return out


def write_bonn_mat(videos: list[Video], path: str | Path) -> Path:
    """Write videos as a Bonn ``annolist.mat`` that :func:`read_bonn_mat` reads back, atomically."""
    entries = np.empty(len(videos), dtype=object)
    entries[:] = [_video_struct(v, path, f"annolist[{i}]") for i, v in enumerate(videos)]
    return atomic_write_with(lambda f: scipy.io.savemat(f, {"annolist": entries}, long_field_names=True,
                                                        do_compression=True, oned_as="row"), path)
