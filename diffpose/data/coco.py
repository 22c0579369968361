"""COCO keypoint annotations and COCO keypoint *results* <-> :mod:`diffpose.data.records`.

Annotations (``person_keypoints_*.json``): ``images``, ``annotations`` (``keypoints`` = J x (x, y, v) with
v in {0, 1, 2}, ``bbox`` (x, y, w, h), ``area``, ``iscrowd``, ``num_keypoints``, ``segmentation``),
``categories`` (one person category naming the joints), ``info``, ``licenses``. One file is one
:class:`Video` named after the file stem, one :class:`Frame` per image in file order (``is_labeled=True``,
``size`` from width/height), persons attached by ``image_id`` in file order. The layout comes from
``categories`` (COCO names give :data:`~diffpose.keypoints.COCO`). Image ids and annotation ids must be
unique (COCO evaluation indexes both; a repeat is an error naming both entries).

Joint rule (COCO's): ``present = v > 0``; ``v`` is kept verbatim in ``visibility``; coordinates of absent
joints read as (0, 0). An annotation without ``keypoints`` (a box-only one) reads as
``pose_annotated=False``. Everything else (info, licenses, segmentation, area, ...) is kept in ``extra``.
The PoseTrack18 person keys ``bbox_head``, ``track_id``, ``score``, ``scores`` and ``keypoints_occluded``
are understood too, so PoseTrack records survive a trip through COCO.

Writing is verbatim by default, so read -> write -> read is lossless; frames without an image id get fresh
ids (above the largest existing one). ``fill_missing=True`` also adds what COCO evaluation needs when a
record lacks it: annotation ids, ``category_id`` (1), ``iscrowd`` (0), ``num_keypoints`` (present joints)
and ``area`` (box area). ``Frame.is_labeled`` is not stored: every COCO image is labelled.

Results (``[{image_id, category_id, keypoints, score}, ...]``): read into ``{image_id: [Person, ...]}``;
here a joint is absent iff it is exactly ``(0, 0, 0)`` (the v slot usually holds a score).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from diffpose.data.posetrack18 import categories_for, layout_from_categories
from diffpose.data.records import Frame, Person, Video
from diffpose.data.validate import check_coordinates, get, integer, load_json, number, number_array, type_name
from diffpose.errors import DataFormatError
from diffpose.io_utils import atomic_write_json
from diffpose.keypoints import COCO, Layout

_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_PERSON_KEYS = {"id", "image_id", "keypoints", "bbox", "bbox_head", "track_id", "score", "scores",
                "keypoints_occluded"}  # fmt: skip


def _json_number(x: float) -> int | float:
    """Integral values as JSON integers (as COCO files do), others as floats."""
    xf = float(x)
    return int(xf) if xf.is_integer() and abs(xf) < 2**53 else xf


def _image_id(value: Any, path: Path | str, field: str) -> int | str:
    if isinstance(value, str):
        return value
    return integer(value, path, field)


# --------------------------------------------------------------------------------------------------
# Persons (shared by annotations and results)
# --------------------------------------------------------------------------------------------------
def _read_person(ann: Any, where: str, num_joints: int, path: Path | str, coco_rule: bool) -> Person:
    """One annotation / result. ``coco_rule``: present iff v > 0; else absent iff exactly (0, 0, 0)."""
    if not isinstance(ann, dict):
        raise DataFormatError(f"expected an object, got {type_name(ann)}", path, where)
    if ann.get("id") is not None:
        where += f" (id {ann['id']})"
    person = Person.empty(num_joints)
    if "keypoints" in ann:
        kps = number_array(ann["keypoints"], path, f"{where}.keypoints", 3 * num_joints)
        kps = kps.reshape(num_joints, 3)  # (J, 3) = (x, y, v)
        check_coordinates(kps[None, :, :2], path, lambda _: f"{where}.keypoints")  # 1e300 is not a position
        if coco_rule:
            person.present = kps[:, 2] > 0
        else:
            person.present = ~((kps[:, 0] == 0) & (kps[:, 1] == 0) & (kps[:, 2] == 0))
        person.keypoints = np.where(person.present[:, None], kps[:, :2], 0.0)  # (J, 2)
        person.visibility = kps[:, 2].copy()
    else:
        person.pose_annotated = False
    if ann.get("scores"):  # an empty list means "no scores", as in PoseTrack18
        person.scores = number_array(ann["scores"], path, f"{where}.scores", num_joints)
    if "keypoints_occluded" in ann:
        person.occluded = number_array(ann["keypoints_occluded"], path, f"{where}.keypoints_occluded",
                                       num_joints) != 0
    if ann.get("bbox") is not None:
        person.box = number_array(ann["bbox"], path, f"{where}.bbox", 4)
    if ann.get("bbox_head") is not None:
        person.head_box = number_array(ann["bbox_head"], path, f"{where}.bbox_head", 4)
    if ann.get("track_id") is not None:
        person.track_id = integer(ann["track_id"], path, f"{where}.track_id")
    if ann.get("score") is not None:
        person.score = number(ann["score"], path, f"{where}.score")
    if ann.get("id") is not None:
        person.id = integer(ann["id"], path, f"{where}.id")
    person.extra = {k: v for k, v in ann.items() if k not in _PERSON_KEYS}
    return person


def _person_dict(person: Person, image_id: int | str, where: str, coco_rule: bool,
                 fill: bool = False) -> dict[str, Any]:
    """One annotation (``coco_rule``) or result; ``fill`` adds COCO's required fields where missing."""
    out: dict[str, Any] = dict(person.extra)
    if person.id is not None:
        out["id"] = int(person.id)
    out["image_id"] = image_id
    if fill or not coco_rule:  # results always need a category
        out.setdefault("category_id", 1)
    if person.pose_annotated or person.present.any() or not coco_rule:  # results always carry keypoints
        if coco_rule and (person.visibility[person.present] <= 0).any():
            raise DataFormatError("a present joint has v <= 0, which COCO reads as absent", field=where)
        kps = np.zeros((person.num_joints, 3))  # (J, 3) = (x, y, v)
        kps[:, :2] = np.where(person.present[:, None], person.keypoints, 0.0)
        # An absent joint must not read back as present: v <= 0 under COCO's rule, exactly 0 otherwise.
        absent_v = np.minimum(person.visibility, 0.0) if coco_rule else 0.0
        kps[:, 2] = np.where(person.present, person.visibility, absent_v)
        if not np.isfinite(kps).all():
            raise DataFormatError("keypoints or visibility are not finite", field=f"{where}.keypoints")
        out["keypoints"] = [_json_number(v) for v in kps.reshape(-1)]
        if fill:
            out.setdefault("num_keypoints", int(person.present.sum()))
    if person.box is not None:
        out["bbox"] = [_json_number(v) for v in person.box]
        if fill:
            out.setdefault("area", _json_number(person.box[2] * person.box[3]))
    if fill:
        out.setdefault("iscrowd", 0)
    if person.head_box is not None:
        out["bbox_head"] = [_json_number(v) for v in person.head_box]
    if person.track_id is not None:
        out["track_id"] = int(person.track_id)
    if person.score is not None:
        out["score"] = float(person.score)
    if person.scores is not None:
        if np.isnan(person.scores).any():
            raise DataFormatError("per-joint scores contain NaN, which JSON cannot store", field=f"{where}.scores")
        out["scores"] = [_json_number(v) for v in person.scores]
    if person.occluded is not None:
        out["keypoints_occluded"] = [int(v) for v in person.occluded]
    return out


# --------------------------------------------------------------------------------------------------
# Keypoint annotations
# --------------------------------------------------------------------------------------------------
def _read_frame(img: Any, i: int, path: Path | str) -> Frame:
    where = f"images[{i}]"
    if not isinstance(img, dict):
        raise DataFormatError(f"expected an object, got {type_name(img)}", path, where)
    size = None
    if "width" in img and "height" in img:
        size = (integer(img["width"], path, f"{where}.width"), integer(img["height"], path, f"{where}.height"))
    extra = {k: v for k, v in img.items() if k not in _IMAGE_KEYS or (k in ("width", "height") and size is None)}
    return Frame(
        file_name=get(img, "file_name", path, where, str),
        frame_index=i,
        image_id=integer(get(img, "id", path, where), path, f"{where}.id"),
        is_labeled=True,
        size=size,
        extra=extra,
    )


def coco_from_dict(data: Any, path: Path | str = "<memory>") -> Video:
    """Parse a COCO keypoint annotation dict into one video named after ``path``'s stem."""
    if not isinstance(data, dict):
        raise DataFormatError(f"expected a JSON object with 'images' and 'annotations', got {type_name(data)}",
                              path)
    images = get(data, "images", path, "", list)
    annotations = get(data, "annotations", path, "", list)
    categories = data.get("categories")
    layout: Layout = COCO if categories is None else layout_from_categories(categories, path)
    frames = [_read_frame(img, i, path) for i, img in enumerate(images)]
    by_id: dict[int, Frame] = {}
    for i, frame in enumerate(frames):
        if frame.image_id in by_id:
            raise DataFormatError(f"duplicate image id {frame.image_id}", path, f"images[{i}].id")
        by_id[frame.image_id] = frame
    ann_index: dict[int, int] = {}
    for k, ann in enumerate(annotations):
        person = _read_person(ann, f"annotations[{k}]", layout.num_joints, path, coco_rule=True)
        if person.id is not None:
            if person.id in ann_index:  # COCO evaluation keys annotations by id: a repeat would replace one
                raise DataFormatError(f"duplicate annotation id {person.id} (also annotations[{ann_index[person.id]}])",
                                      path, f"annotations[{k}].id")
            ann_index[person.id] = k
        image_id = get(ann, "image_id", path, f"annotations[{k}]")
        frame = by_id.get(image_id) if isinstance(image_id, int) and not isinstance(image_id, bool) else None
        if frame is None:
            raise DataFormatError(f"image_id {image_id!r} is not in 'images'", path, f"annotations[{k}].image_id")
        frame.persons.append(person)
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    return Video(name=Path(str(path)).stem, frames=frames, layout=layout, categories=categories, extra=extra)


def read_coco(path: str | Path) -> Video:
    """Read a COCO keypoint annotation file as one video (see the module docstring for the rules)."""
    return coco_from_dict(load_json(path), path)


def _fresh_ids(ids: list[int | None]) -> list[int]:
    """``ids`` with each None replaced by a new number above the largest given one (1 when none is)."""
    nxt = max((i for i in ids if i is not None), default=0) + 1
    out = []
    for i in ids:
        if i is None:
            i, nxt = nxt, nxt + 1
        out.append(i)
    return out


def coco_to_dict(video: Video, fill_missing: bool = False) -> dict[str, Any]:
    """The COCO keypoint annotation dict of one video (``fill_missing``: see the module docstring)."""
    image_ids = _fresh_ids([frame.image_id for frame in video.frames])
    persons = [(frame_id, p) for frame, frame_id in zip(video.frames, image_ids, strict=True) for p in frame.persons]
    ann_ids = _fresh_ids([p.id for _, p in persons]) if fill_missing else [p.id for _, p in persons]
    images = []
    for frame, image_id in zip(video.frames, image_ids, strict=True):
        img: dict[str, Any] = dict(frame.extra)
        img["id"] = image_id
        img["file_name"] = frame.file_name
        if frame.size is not None:
            img["width"], img["height"] = int(frame.size[0]), int(frame.size[1])
        images.append(img)
    given = [i for i in ann_ids if i is not None]
    if len(set(given)) != len(given):
        repeated = next(i for i in given if given.count(i) > 1)
        raise DataFormatError(f"annotation id {repeated} is used twice; COCO needs unique ids", field="annotations")
    annotations = []
    for k, ((image_id, person), ann_id) in enumerate(zip(persons, ann_ids, strict=True)):
        if person.num_joints != video.layout.num_joints:
            raise DataFormatError(f"person has {person.num_joints} joints, layout {video.layout.name!r} has "
                                  f"{video.layout.num_joints}", field=f"annotations[{k}]")
        ann = _person_dict(person, image_id, f"annotations[{k}]", coco_rule=True, fill=fill_missing)
        if ann_id is not None:
            ann["id"] = ann_id
        annotations.append(ann)
    out: dict[str, Any] = dict(video.extra)
    out["images"] = images
    out["annotations"] = annotations
    out["categories"] = video.categories if video.categories is not None else categories_for(video.layout)
    return out


def write_coco(video: Video, path: str | Path, fill_missing: bool = False) -> Path:
    """Write one video as a COCO keypoint annotation file, atomically."""
    return atomic_write_json(coco_to_dict(video, fill_missing), path)


# --------------------------------------------------------------------------------------------------
# Keypoint results
# --------------------------------------------------------------------------------------------------
def coco_results_from_list(data: Any, path: Path | str = "<memory>") -> dict[int | str, list[Person]]:
    """Parse a COCO keypoint results list into ``{image_id: [Person, ...]}`` (first-appearance order)."""
    if not isinstance(data, list):
        raise DataFormatError(f"expected a JSON list of results, got {type_name(data)}", path)
    out: dict[int | str, list[Person]] = {}
    num_joints = None
    for k, res in enumerate(data):
        where = f"[{k}]"
        if not isinstance(res, dict):
            raise DataFormatError(f"expected an object, got {type_name(res)}", path, where)
        kps = get(res, "keypoints", path, where, list)
        if num_joints is None:
            if len(kps) == 0 or len(kps) % 3:
                raise DataFormatError(f"expected 3 numbers per joint, got {len(kps)} numbers", path,
                                      f"{where}.keypoints")
            num_joints = len(kps) // 3
        person = _read_person(res, where, num_joints, path, coco_rule=False)
        image_id = _image_id(get(res, "image_id", path, where), path, f"{where}.image_id")
        out.setdefault(image_id, []).append(person)
    return out


def read_coco_results(path: str | Path) -> dict[int | str, list[Person]]:
    """Read a COCO keypoint results file (``[{image_id, category_id, keypoints, score}, ...]``)."""
    return coco_results_from_list(load_json(path), path)


def coco_results_to_list(persons_by_image: dict[int | str, list[Person]]) -> list[dict[str, Any]]:
    """The results list, image by image; absent joints are written as (0, 0, 0)."""
    out = []
    for image_id, persons in persons_by_image.items():
        for k, person in enumerate(persons):
            out.append(_person_dict(person, image_id, f"image {image_id!r} person {k}", coco_rule=False))
    return out


def write_coco_results(persons_by_image: dict[int | str, list[Person]], path: str | Path) -> Path:
    """Write a COCO keypoint results file, atomically."""
    return atomic_write_json(coco_results_to_list(persons_by_image), path)
