"""PoseTrack18 / PoseTrack21 per-video JSON (COCO-like) <-> :class:`~diffpose.data.records.Video`.

File layout (see ``posetrack-format-and-eval.md`` §2-3): ``{"images": [...], "annotations": [...],
"categories": [one "person" category]}``; ``images`` lists every frame of the video in order,
annotations attach to frames by ``image_id``; ``keypoints`` is ``J x (x, y, v)`` with ``J`` the length
of ``categories[0].keypoints``; a joint is absent iff it is exactly ``(0, 0, 0)`` (poseval's rule).

A merged file holding several videos (mmpose's ``posetrack18_val.json``) is read with
:func:`read_posetrack18_videos`, which splits frames by their image directory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffpose.data.records import Frame, Person, Video
from diffpose.data.validate import check_coordinates, get, integer, load_json, number, number_array
from diffpose.errors import DataFormatError
from diffpose.io_utils import atomic_write_json
from diffpose.keypoints import LAYOUTS, POSETRACK18, Layout

_IMAGE_KEYS = {"id", "file_name", "is_labeled", "ignore_regions_x", "ignore_regions_y", "width", "height"}
_PERSON_KEYS = {"id", "image_id", "track_id", "bbox", "bbox_head", "keypoints", "scores", "score",
                "keypoints_occluded"}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Layout from ``categories``
# --------------------------------------------------------------------------------------------------
def layout_from_categories(categories: Any, path: Path | str) -> Layout:
    """The joint layout named by a ``categories`` list (one ``person`` category)."""
    if not isinstance(categories, list) or len(categories) != 1 or not isinstance(categories[0], dict):
        raise DataFormatError("expected a list with exactly one category", path, "categories")
    names = get(categories[0], "keypoints", path, "categories[0]", list)
    if not all(isinstance(n, str) for n in names):
        raise DataFormatError("expected a list of joint names", path, "categories[0].keypoints")
    if len(set(names)) != len(names):
        raise DataFormatError("joint names repeat", path, "categories[0].keypoints")
    for layout in LAYOUTS.values():
        if tuple(names) == layout.joints:
            return layout
    skeleton_1 = categories[0].get("skeleton") or []
    try:
        skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in skeleton_1)
    except (TypeError, ValueError):
        raise DataFormatError("expected pairs of 1-based joint indices", path, "categories[0].skeleton") from None
    flips = []
    for i, name in enumerate(names):
        if name.startswith("left_") and ("right_" + name[5:]) in names:
            flips.append((i, names.index("right_" + name[5:])))
    return Layout(name="custom", joints=tuple(names), skeleton=skeleton, flip_pairs=tuple(flips))


def categories_for(layout: Layout) -> list[dict[str, Any]]:
    """A ``categories`` list describing ``layout`` (the form poseval reads)."""
    return [{
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(layout.joints),
        "skeleton": [[a + 1, b + 1] for a, b in layout.skeleton],
    }]  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _bulk_numbers(values: list[Any], length: int, path: Path | str, field: Callable[[int], str]) -> np.ndarray:
    """``(N, length)`` float64 from N lists of numbers; on any problem, name the first bad entry."""
    if not values:
        return np.zeros((0, length))
    try:
        arr = np.asarray(values)
        ok = arr.dtype.kind in "iuf" and arr.ndim == 2 and arr.shape[1] == length
    except ValueError:  # ragged
        ok = False
    if ok:
        arr = arr.astype(np.float64)
        if np.isfinite(arr).all():
            return arr
    for i, value in enumerate(values):
        number_array(value, path, field(i), length)  # raises with a precise message
    raise DataFormatError("expected lists of finite numbers", path, field(0))  # pragma: no cover


def _read_persons(anns: list[Any], num_joints: int, path: Path | str) -> list[Person]:
    """All annotations of a file at once (vectorised conversion, per-item errors)."""

    def where(k: int) -> str:
        return f"annotations[{k}]" + (f" (id {anns[k]['id']})" if "id" in anns[k] else "")

    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or "keypoints" not in ann:
            get(ann, "keypoints", path, f"annotations[{k}]")  # raises
    kps = _bulk_numbers([a["keypoints"] for a in anns], 3 * num_joints, path, lambda k: where(k) + ".keypoints")
    kps = kps.reshape(len(anns), num_joints, 3)  # (N, J, 3) = (x, y, v)
    check_coordinates(kps[..., :2], path, lambda k: where(k) + ".keypoints")  # 1e300 is not a position
    present = ~((kps[..., 0] == 0) & (kps[..., 1] == 0) & (kps[..., 2] == 0))  # (N, J)

    def optional(key: str, length: int) -> list[np.ndarray | None]:
        # poseval: a joint gets a score only if ``scores`` is a non-empty list; boxes may be absent.
        idx = [k for k, a in enumerate(anns) if a.get(key)]
        out: list[np.ndarray | None] = [None] * len(anns)
        arr = _bulk_numbers([anns[k][key] for k in idx], length, path, lambda i: f"{where(idx[i])}.{key}")
        for row, k in enumerate(idx):
            out[k] = arr[row]
        return out

    scores = optional("scores", num_joints)
    boxes = optional("bbox", 4)
    head_boxes = optional("bbox_head", 4)
    occluded = optional("keypoints_occluded", num_joints)
    persons = []
    for k, ann in enumerate(anns):
        track_id, score, ann_id = ann.get("track_id"), ann.get("score"), ann.get("id")
        if track_id is not None and (type(track_id) is not int):
            track_id = integer(track_id, path, f"{where(k)}.track_id")
        if ann_id is not None and (type(ann_id) is not int):
            ann_id = integer(ann_id, path, f"{where(k)}.id")
        if score is not None and (type(score) is not float or not math.isfinite(score)):
            score = number(score, path, f"{where(k)}.score")
        persons.append(Person(
            keypoints=kps[k, :, :2],
            visibility=kps[k, :, 2],
            present=present[k],
            scores=scores[k],
            box=boxes[k],
            head_box=head_boxes[k],
            track_id=track_id,
            score=score,
            occluded=None if occluded[k] is None else occluded[k] != 0,
            id=ann_id,
            extra={key: v for key, v in ann.items() if key not in _PERSON_KEYS},
        ))  # fmt: skip
    return persons


def _read_ignore_regions(img: dict, path: Path | str, where: str) -> list[np.ndarray]:
    xs, ys = img.get("ignore_regions_x"), img.get("ignore_regions_y")
    if xs is None and ys is None:
        return []
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise DataFormatError("expected parallel lists of polygons", path, f"{where}.ignore_regions_x/y")
    regions = []
    for r, (px, py) in enumerate(zip(xs, ys)):
        fx = number_array(px, path, f"{where}.ignore_regions_x[{r}]")
        fy = number_array(py, path, f"{where}.ignore_regions_y[{r}]", len(fx))
        regions.append(np.stack([fx, fy], axis=1))  # (N, 2) = (x, y)
    return regions


def _read_frame(img: Any, i: int, path: Path | str) -> Frame:
    if not isinstance(img, dict):
        raise DataFormatError("expected an object", path, f"images[{i}]")
    where = f"images[{i}]"
    file_name = get(img, "file_name", path, where, str)
    size = None
    if isinstance(img.get("width"), (int, float)) and isinstance(img.get("height"), (int, float)):
        size = (integer(img["width"], path, f"{where}.width"), integer(img["height"], path, f"{where}.height"))
    extra = {k: v for k, v in img.items() if k not in _IMAGE_KEYS}
    for key in ("width", "height"):
        if key in img and size is None:
            extra[key] = img[key]
    is_labeled = img.get("is_labeled", False)
    if not isinstance(is_labeled, (bool, int)):
        raise DataFormatError(f"expected true/false, got {is_labeled!r}", path, f"{where}.is_labeled")
    return Frame(
        file_name=file_name,
        frame_index=0,
        image_id=None if img.get("id") is None else integer(img["id"], path, f"{where}.id"),
        is_labeled=bool(is_labeled),
        ignore_regions=_read_ignore_regions(img, path, where),
        size=size,
        extra=extra,
    )


def posetrack18_videos_from_dict(data: Any, path: Path | str = "<memory>") -> list[Video]:
    """Parse a PoseTrack18-style dict into videos, one per image directory, in order of appearance."""
    if not isinstance(data, dict):
        raise DataFormatError(f"expected a JSON object with 'images' and 'annotations', got {type(data).__name__}",
                              path)
    if "annolist" in data:
        raise DataFormatError("this is a PoseTrack17 annolist file; read it with read_posetrack17", path)
    images = get(data, "images", path, "", list)
    annotations = get(data, "annotations", path, "", list, default=[])
    categories = data.get("categories")
    layout = POSETRACK18 if categories is None else layout_from_categories(categories, path)

    frames = [_read_frame(img, i, path) for i, img in enumerate(images)]
    by_id: dict[int, Frame] = {}
    for i, frame in enumerate(frames):
        if frame.image_id is None:
            raise DataFormatError("missing required key", path, f"images[{i}].id")
        if frame.image_id in by_id:
            raise DataFormatError(f"duplicate image id {frame.image_id}", path, f"images[{i}].id")
        by_id[frame.image_id] = frame
    persons = _read_persons(annotations, layout.num_joints, path)
    for k, (ann, person) in enumerate(zip(annotations, persons)):
        image_id = get(ann, "image_id", path, f"annotations[{k}]")
        frame = by_id.get(image_id) if isinstance(image_id, int) and not isinstance(image_id, bool) else None
        if frame is None:
            raise DataFormatError(f"image_id {image_id!r} is not in 'images'", path, f"annotations[{k}].image_id")
        frame.persons.append(person)

    groups: dict[str, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(os.path.dirname(frame.file_name), []).append(frame)
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    videos = []
    for directory, vframes in groups.items():
        for index, frame in enumerate(vframes):
            frame.frame_index = index
        vid_id = vframes[0].extra.get("vid_id")
        videos.append(Video(
            name=os.path.basename(directory) or Path(str(path)).stem,
            frames=vframes,
            layout=layout,
            vid_id=None if vid_id is None else str(vid_id),
            categories=categories,
            extra=dict(extra),
        ))  # fmt: skip
    return videos


def read_posetrack18_videos(path: str | Path) -> list[Video]:
    """Read a PoseTrack18/21 JSON file that may hold several videos (split by image directory)."""
    return posetrack18_videos_from_dict(load_json(path), path)


def read_posetrack18(path: str | Path) -> Video:
    """Read one PoseTrack18/21 per-video JSON file. The video is named after the file's stem."""
    videos = read_posetrack18_videos(path)
    if len(videos) > 1:
        dirs = ", ".join(repr(v.name) for v in videos[:3]) + (", ..." if len(videos) > 3 else "")
        raise DataFormatError(
            f"holds frames of {len(videos)} videos ({dirs}); a per-video file was expected "
            "(use read_posetrack18_videos for merged files)", path, "images[].file_name")
    if not videos:
        return Video(name=Path(path).stem, frames=[], categories=None)
    video = videos[0]
    video.name = Path(path).stem
    return video


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _number(x: float) -> int | float:
    """Write integral values as JSON integers (as the PoseTrack files do), others as floats."""
    xf = float(x)
    return int(xf) if xf.is_integer() and abs(xf) < 2**53 else xf


def _person_dict(person: Person, image_id: int | None, layout: Layout) -> dict[str, Any]:
    if person.num_joints != layout.num_joints:
        raise DataFormatError(f"person has {person.num_joints} joints, layout {layout.name!r} has "
                              f"{layout.num_joints}", field="keypoints")
    kps = np.zeros((person.num_joints, 3))
    kps[:, :2] = person.keypoints
    kps[:, 2] = person.visibility
    kps[~person.present] = 0.0  # an absent joint is exactly (0, 0, 0)
    out: dict[str, Any] = dict(person.extra)
    if person.id is not None:
        out["id"] = person.id
    out["image_id"] = image_id
    if person.track_id is not None:
        out["track_id"] = int(person.track_id)
    out.setdefault("category_id", 1)
    if person.box is not None:
        out["bbox"] = [_number(v) for v in person.box]
    if person.head_box is not None:
        out["bbox_head"] = [_number(v) for v in person.head_box]
    out["keypoints"] = [_number(v) for v in kps.reshape(-1)]
    if person.scores is not None and np.isnan(person.scores).any():
        raise DataFormatError("per-joint scores contain NaN, which PoseTrack18 cannot store", field="scores")
    out["scores"] = [] if person.scores is None else [_number(v) for v in person.scores]
    if person.score is not None:
        out["score"] = float(person.score)
    if person.occluded is not None:
        out["keypoints_occluded"] = [int(v) for v in person.occluded]
    return out


def posetrack18_videos_to_dict(videos: list[Video]) -> dict[str, Any]:
    """The PoseTrack18 JSON dict of one or several videos (all with the same layout)."""
    if not videos:
        return {"images": [], "annotations": [], "categories": categories_for(POSETRACK18)}
    layout = videos[0].layout
    if any(v.layout != layout for v in videos):
        raise DataFormatError("videos with different joint layouts cannot share one file")
    images, annotations = [], []
    for video in videos:
        for frame in video.frames:
            img: dict[str, Any] = dict(frame.extra)
            if frame.image_id is not None:
                img["id"] = frame.image_id
            img["file_name"] = frame.file_name
            img["is_labeled"] = bool(frame.is_labeled)
            if video.vid_id is not None:
                img.setdefault("vid_id", video.vid_id)
            img.setdefault("nframes", len(video.frames))
            if frame.image_id is not None:
                img.setdefault("frame_id", frame.image_id)
            if frame.size is not None:
                img["width"], img["height"] = int(frame.size[0]), int(frame.size[1])
            if frame.ignore_regions or "ignore_regions_x" not in img:
                img["ignore_regions_x"] = [[_number(v) for v in r[:, 0]] for r in frame.ignore_regions]
                img["ignore_regions_y"] = [[_number(v) for v in r[:, 1]] for r in frame.ignore_regions]
            images.append(img)
            annotations.extend(_person_dict(p, frame.image_id, layout) for p in frame.persons)
    out: dict[str, Any] = dict(videos[0].extra)
    out["images"] = images
    out["annotations"] = annotations
    out["categories"] = videos[0].categories if videos[0].categories is not None else categories_for(layout)
    return out


def posetrack18_to_dict(video: Video) -> dict[str, Any]:
    return posetrack18_videos_to_dict([video])


def write_posetrack18(video: Video, path: str | Path) -> Path:
    """Write one video as a PoseTrack18 JSON file, atomically."""
    return atomic_write_json(posetrack18_to_dict(video), path)


def write_posetrack18_videos(videos: list[Video], path: str | Path) -> Path:
    """Write several videos into one merged PoseTrack18-style JSON file, atomically."""
    return atomic_write_json(posetrack18_videos_to_dict(videos), path)
