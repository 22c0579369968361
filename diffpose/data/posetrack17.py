"""PoseTrack17 "annolist" JSON and its MATLAB ``.mat`` twin <-> :class:`~diffpose.data.records.Video`.

File layout (``posetrack-format-and-eval.md`` §1): ``{"annolist": [frame, ...]}``, one entry per video frame.
The JSON twins were written by jsonlab with ``SingletArray``, so every scalar and every single struct is
wrapped in a one-element list (``"x": [394]``, ``"image": [{"name": ...}]``); the reader also accepts the
bare values. A ``.mat`` file is loaded with ``loadmat(squeeze_me=True, struct_as_record=False)`` and turned
into that same JSON form (:func:`plain_from_mat`), so one parser serves both.

Records use the PoseTrack18 17-joint layout: poseval joint id ``i`` goes to index
``POSEVAL_FROM_POSETRACK18[i]`` (id 12 "neck" is ``head_bottom``); the ears are never present. A joint is
present iff a point with its id is listed. The head box corners ``x1, y1, x2, y2`` become
``head_box = (x1, y1, x2 - x1, y2 - y1)``.

poseval nuance kept in :attr:`Person.pose_annotated`: an ``annorect`` without ``annopoints``, with empty
``annopoints`` or without a ``point`` key is dropped from evaluation (poseval ``rectHasPoints``) while its
frame still counts; ``"point": []`` *is* annotated (with zero joints).

Not stored by PoseTrack17 (lost when other records are written here): person box, annotation / image ids,
image size, occlusion flags, scores of absent joints, the ears, ``categories`` and ``vid_id``.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from diffpose.data.records import Frame, Person, Video
from diffpose.data.validate import check_coordinates, get, load_json, number, type_name
from diffpose.errors import DataFormatError
from diffpose.io_utils import atomic_write_json, atomic_write_with
from diffpose.keypoints import POSETRACK17, POSETRACK18, POSEVAL_FROM_POSETRACK18

_FRAME_KEYS = {"image", "annorect", "is_labeled", "ignore_regions"}
_RECT_KEYS = {"x1", "y1", "x2", "y2", "track_id", "score", "annopoints"}
_POINT_KEYS = {"id", "x", "y", "is_visible", "score"}
POINT_EXTRA = "point_extra"  # Person.extra key: {point field: per-joint list (None where absent)}
_MAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


# --------------------------------------------------------------------------------------------------
# Head box corners <-> (x, y, w, h)
# --------------------------------------------------------------------------------------------------
def head_box_from_corners(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """``(4,)`` float64 box ``(x1, y1, x2 - x1, y2 - y1)``."""
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _far_edge(start: float, length: float) -> float:
    """The float nearest ``start + length`` whose difference to ``start`` is exactly ``length``.

    Plain ``start + length`` can round so that re-reading gives a width one ulp off; this keeps
    read -> write -> read exact.
    """
    end = start + length
    for candidate in (end, math.nextafter(end, math.inf), math.nextafter(end, -math.inf)):
        if candidate - start == length:
            return candidate
    return end


def corners_from_head_box(box: np.ndarray) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` of a ``(4,)`` box ``(x, y, w, h)``, inverse of :func:`head_box_from_corners`."""
    x, y, w, h = (float(v) for v in box)
    return x, y, _far_edge(x, w), _far_edge(y, h)


# --------------------------------------------------------------------------------------------------
# MATLAB <-> jsonlab-style plain values
# --------------------------------------------------------------------------------------------------
def load_mat(path: str | Path) -> dict[str, Any]:
    """The variables of a MATLAB v5 ``.mat`` file (``squeeze_me=True, struct_as_record=False``)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("file does not exist" if not path.exists() else "is not a file", path)
    if path.stat().st_size == 0:
        raise DataFormatError("file is empty, expected a MATLAB .mat file", path)
    try:
        mdict = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:
        raise DataFormatError("MATLAB v7.3 (HDF5) files are not supported; re-save with -v7", path) from None
    except Exception as e:  # scipy raises many types (ValueError, TypeError, EOFError, zlib.error) on bad files
        raise DataFormatError(f"cannot read as a MATLAB .mat file: {e}", path) from None
    return {k: v for k, v in mdict.items() if not k.startswith("__")}


def _is_struct(value: Any) -> bool:
    return hasattr(value, "_fieldnames")


def plain_from_mat(value: Any, element: bool = False, path: Path | str = "<memory>") -> Any:
    """A loaded MATLAB value in jsonlab's ``SingletArray`` JSON form.

    A field value (``element=False``) wraps a scalar or a single struct in a one-element list; items of an
    array (``element=True``) are plain. Structs become dicts, arrays lists, char arrays strings.
    """
    if _is_struct(value):
        d = {f: plain_from_mat(getattr(value, f), False, path) for f in value._fieldnames}
        return d if element else [d]
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            return str(value) if value.ndim == 0 else ("" if value.size == 0 else [str(s) for s in value])
        if value.ndim == 0:
            return plain_from_mat(value.item(), element, path)
        return [plain_from_mat(v, True, path) for v in value]  # iterates the first axis
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float)):
        return value if element else [value]
    raise DataFormatError(f"unsupported MATLAB value of type {type(value).__name__}", path)


def plain_to_mat(value: Any, path: Path | str, field: str) -> Any:
    """The inverse of :func:`plain_from_mat`: dicts -> structs, lists -> arrays / cells, for ``savemat``."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _MAT_NAME.fullmatch(key):
                raise DataFormatError(f"{key!r} is not a valid MATLAB field name", path, field)
        return {k: plain_to_mat(v, path, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            try:
                return np.array(value, dtype=np.int64 if all(isinstance(v, int) for v in value) else np.float64)
            except OverflowError:
                raise DataFormatError("integer too large for a .mat file", path, field) from None
        cells = np.empty(len(value), dtype=object)
        for i, v in enumerate(value):
            cells[i] = plain_to_mat(v, path, f"{field}[{i}]")
        return cells
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    raise DataFormatError(f"cannot store {type_name(value)} in a .mat file", path, field)


def save_mat(variables: dict[str, Any], path: str | Path) -> Path:
    """Write plain (JSON-like) ``variables`` as a compressed MATLAB v5 file, atomically."""
    mdict = plain_to_mat(variables, path, "")
    return atomic_write_with(
        lambda f: scipy.io.savemat(f, mdict, long_field_names=True, do_compression=True, oned_as="row"), path)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _unwrap(value: Any, path: Path | str, field: str) -> Any:
    """jsonlab's one-element list ``[v]`` -> ``v``; a bare value is accepted as is."""
    if isinstance(value, list):
        if len(value) != 1:
            raise DataFormatError(f"expected a one-element list, got {len(value)} elements", path, field)
        return value[0]
    return value


def _num(obj: dict, key: str, path: Path | str, where: str) -> float:
    return number(_unwrap(get(obj, key, path, where), path, f"{where}.{key}"), path, f"{where}.{key}")


def _int(obj: dict, key: str, path: Path | str, where: str) -> int:
    value = _num(obj, key, path, where)
    if not value.is_integer():
        raise DataFormatError(f"expected an integer, got {value!r}", path, f"{where}.{key}")
    return int(value)


def _flag(value: Any, path: Path | str, field: str) -> float:
    """A 0/1 style flag (``is_visible``, ``is_labeled``); JSON booleans are accepted."""
    value = _unwrap(value, path, field)
    return float(value) if isinstance(value, bool) else number(value, path, field)


def _items(value: Any, path: Path | str, field: str) -> list[Any]:
    """A list of structs; a single bare struct counts as a list of one."""
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise DataFormatError(f"expected a list, got {type_name(value)}", path, field)
    return value


def _read_points(points: list[Any], person: Person, path: Path | str, where: str) -> None:
    """Fill ``person``'s joint arrays from a PT17 ``point`` list (poseval ids 0..14)."""
    num_joints = person.num_joints
    scores = np.full(num_joints, np.nan)
    point_extra: dict[str, list[Any]] = {}
    for k, pt in enumerate(points):
        w = f"{where}[{k}]"
        if not isinstance(pt, dict):
            raise DataFormatError(f"expected an object, got {type_name(pt)}", path, w)
        pid = _int(pt, "id", path, w)
        if not 0 <= pid < POSETRACK17.num_joints:
            raise DataFormatError(f"expected a poseval joint id 0..14, got {pid}", path, f"{w}.id")
        j = int(POSEVAL_FROM_POSETRACK18[pid])
        if person.present[j]:
            raise DataFormatError(f"joint id {pid} is listed twice", path, f"{w}.id")
        person.present[j] = True
        person.keypoints[j] = _num(pt, "x", path, w), _num(pt, "y", path, w)  # (x, y)
        check_coordinates(person.keypoints[None, j], path, lambda _, w=w: w)  # 1e300 is not a position
        person.visibility[j] = _flag(pt["is_visible"], path, f"{w}.is_visible") if "is_visible" in pt else 1.0
        if "score" in pt:
            scores[j] = _num(pt, "score", path, w)
        for key in pt.keys() - _POINT_KEYS:
            point_extra.setdefault(key, [None] * num_joints)[j] = pt[key]
    if not np.isnan(scores).all():
        person.scores = scores
    if point_extra:
        person.extra[POINT_EXTRA] = point_extra


def _has_points(rect: dict) -> bool:
    """poseval's ``rectHasPoints``: ``annopoints[0]`` exists, is non-empty and has a ``point`` key."""
    ap = rect.get("annopoints")
    ap = [ap] if isinstance(ap, dict) else ap
    return isinstance(ap, list) and len(ap) > 0 and isinstance(ap[0], dict) and "point" in ap[0]


def _read_person(rect: Any, where: str, path: Path | str) -> Person:
    if not isinstance(rect, dict):
        raise DataFormatError(f"expected an object, got {type_name(rect)}", path, where)
    person = Person.empty(POSETRACK18.num_joints)
    corners = [k for k in ("x1", "y1", "x2", "y2") if k in rect]
    if corners and len(corners) < 4:
        missing = sorted({"x1", "y1", "x2", "y2"} - set(corners))
        raise DataFormatError("head box needs all of x1, y1, x2, y2", path, f"{where}.{missing[0]}")
    if corners:
        person.head_box = head_box_from_corners(*(_num(rect, k, path, where) for k in ("x1", "y1", "x2", "y2")))
    if "track_id" in rect:
        person.track_id = _int(rect, "track_id", path, where)
    if "score" in rect:
        person.score = _num(rect, "score", path, where)
    person.extra = {k: v for k, v in rect.items() if k not in _RECT_KEYS}
    person.pose_annotated = _has_points(rect)
    if person.pose_annotated:
        ap = rect["annopoints"]
        points = (ap if isinstance(ap, dict) else ap[0])["point"]
        _read_points(_items(points, path, f"{where}.annopoints[0].point"), person,
                     path, f"{where}.annopoints[0].point")
    return person


def _read_ignore_regions(value: Any, path: Path | str, where: str) -> list[np.ndarray]:
    regions = []
    for r, region in enumerate(_items(value, path, where)):
        w = f"{where}[{r}]"
        if not isinstance(region, dict):
            raise DataFormatError(f"expected an object with 'point', got {type_name(region)}", path, w)
        points = _items(get(region, "point", path, w), path, f"{w}.point")
        xy = np.zeros((len(points), 2))  # (N, 2) = (x, y)
        for k, pt in enumerate(points):
            pw = f"{w}.point[{k}]"
            if not isinstance(pt, dict):
                raise DataFormatError(f"expected an object, got {type_name(pt)}", path, pw)
            xy[k] = _num(pt, "x", path, pw), _num(pt, "y", path, pw)
        regions.append(xy)
    return regions


def _read_frame(entry: Any, i: int, path: Path | str) -> Frame:
    where = f"annolist[{i}]"
    if not isinstance(entry, dict):
        raise DataFormatError(f"expected an object, got {type_name(entry)}", path, where)
    images = _items(get(entry, "image", path, where), path, f"{where}.image")
    if len(images) != 1 or not isinstance(images[0], dict):
        raise DataFormatError("expected one object with 'name'", path, f"{where}.image")
    name = _unwrap(get(images[0], "name", path, f"{where}.image[0]"), path, f"{where}.image[0].name")
    if not isinstance(name, str):
        raise DataFormatError(f"expected a string, got {type_name(name)}", path, f"{where}.image[0].name")
    rects = _items(entry.get("annorect", []), path, f"{where}.annorect")
    persons = [_read_person(r, f"{where}.annorect[{k}]", path) for k, r in enumerate(rects)]
    if "is_labeled" in entry:
        flag = _flag(entry["is_labeled"], path, f"{where}.is_labeled")
        if flag not in (0.0, 1.0):
            raise DataFormatError(f"expected 0 or 1, got {flag!r}", path, f"{where}.is_labeled")
        is_labeled = flag == 1.0
    else:
        is_labeled = bool(persons)
    extra = {k: v for k, v in entry.items() if k not in _FRAME_KEYS}
    if images[0].keys() != {"name"}:
        extra["image"] = images  # other image fields, kept verbatim
    return Frame(
        file_name=name,
        frame_index=i,
        is_labeled=is_labeled,
        persons=persons,
        ignore_regions=_read_ignore_regions(entry.get("ignore_regions", []), path, f"{where}.ignore_regions"),
        extra=extra,
    )


def posetrack17_from_dict(data: Any, path: Path | str = "<memory>") -> Video:
    """Parse a PT17 ``{"annolist": [...]}`` dict (JSON, or a ``.mat`` via :func:`plain_from_mat`)."""
    if not isinstance(data, dict):
        raise DataFormatError(f"expected an object with 'annolist', got {type_name(data)}", path)
    annolist = _items(get(data, "annolist", path, ""), path, "annolist")
    frames = [_read_frame(entry, i, path) for i, entry in enumerate(annolist)]
    extra = {k: v for k, v in data.items() if k != "annolist"}
    return Video(name=Path(str(path)).stem, frames=frames, layout=POSETRACK18, extra=extra)


def posetrack17_from_mat(variables: dict[str, Any], path: Path | str = "<memory>") -> Video:
    """Parse the variables of a PT17 ``.mat`` file (as returned by :func:`load_mat`)."""
    return posetrack17_from_dict({k: plain_from_mat(v, False, path) for k, v in variables.items()}, path)


def read_posetrack17(path: str | Path) -> Video:
    """Read a PoseTrack17 annolist file: ``.mat`` by suffix, JSON otherwise. Named after the file stem."""
    if Path(path).suffix.lower() == ".mat":
        return posetrack17_from_mat(load_mat(path), path)
    return posetrack17_from_dict(load_json(path), path)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _num_out(x: float) -> int | float:
    """Integral values as integers (as the PoseTrack files do), others as floats."""
    xf = float(x)
    return int(xf) if xf.is_integer() and abs(xf) < 2**53 else xf


def _rect_dict(person: Person, where: str) -> dict[str, Any]:
    if person.num_joints != POSETRACK18.num_joints:
        raise DataFormatError(f"person has {person.num_joints} joints, PoseTrack17 needs the 17-joint "
                              "PoseTrack18 layout", field=where)
    out: dict[str, Any] = {k: v for k, v in person.extra.items() if k != POINT_EXTRA}
    if person.head_box is not None:
        for key, v in zip(("x1", "y1", "x2", "y2"), corners_from_head_box(person.head_box), strict=True):
            out[key] = [_num_out(v)]
    if person.score is not None:
        out["score"] = [float(person.score)]
    if person.track_id is not None:
        out["track_id"] = [int(person.track_id)]
    if not person.pose_annotated:
        if person.present.any():
            raise DataFormatError("has joints but pose_annotated is False; PoseTrack17 cannot store that",
                                  field=where)
        return out
    point_extra = person.extra.get(POINT_EXTRA, {})
    points = []
    for pid, j in enumerate(POSEVAL_FROM_POSETRACK18):
        if not person.present[j]:
            continue
        x, y = person.keypoints[j]
        v = person.visibility[j]
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(v)):
            raise DataFormatError("keypoint or visibility is not finite", field=f"{where}.point {pid}")
        pt: dict[str, Any] = {"id": [pid], "x": [_num_out(x)], "y": [_num_out(y)], "is_visible": [_num_out(v)]}
        if person.scores is not None and not math.isnan(person.scores[j]):
            pt["score"] = [float(person.scores[j])]
        for key, values in point_extra.items():
            if values[j] is not None:
                pt[key] = values[j]
        points.append(pt)
    out["annopoints"] = [{"point": points}]
    return out


def _frame_dict(frame: Frame, where: str) -> dict[str, Any]:
    image = copy.deepcopy(frame.extra["image"]) if "image" in frame.extra else [{}]
    image[0]["name"] = frame.file_name
    out: dict[str, Any] = {"image": image}
    out.update((k, v) for k, v in frame.extra.items() if k != "image")
    out["is_labeled"] = [int(frame.is_labeled)]
    out["annorect"] = [_rect_dict(p, f"{where}.annorect[{k}]") for k, p in enumerate(frame.persons)]
    if frame.ignore_regions:
        out["ignore_regions"] = [
            {"point": [{"x": [_num_out(x)], "y": [_num_out(y)]} for x, y in region]} for region in frame.ignore_regions
        ]
    return out


def posetrack17_to_dict(video: Video) -> dict[str, Any]:
    """The PT17 annolist dict of one video (jsonlab form: scalars in one-element lists)."""
    if video.layout != POSETRACK18:
        raise DataFormatError(f"PoseTrack17 writing needs the posetrack18 layout, got {video.layout.name!r}")
    out: dict[str, Any] = dict(video.extra)
    out["annolist"] = [_frame_dict(f, f"annolist[{i}]") for i, f in enumerate(video.frames)]
    return out


def write_posetrack17(video: Video, path: str | Path) -> Path:
    """Write one video as a PT17 annolist file, atomically: ``.mat`` by suffix, JSON otherwise."""
    data = posetrack17_to_dict(video)
    if Path(path).suffix.lower() == ".mat":
        return save_mat(data, path)
    return atomic_write_json(data, path)
