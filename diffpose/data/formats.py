"""Recognise an annotation file's format and read it (or write videos in a named format).

Detection rules, in order (the file is parsed once; the suffix is not trusted except ``.mat``):

1. **MATLAB** (suffix ``.mat`` or a ``MATLAB`` header): needs a variable ``annolist``. If its entries have
   ``annopoints`` and ``num_frames`` it is the **Bonn** multi-person file; if they have ``image`` or
   ``annorect`` it is **PoseTrack17**.
2. **JSON object with ``annolist``**: PoseTrack17.
3. **JSON object with ``images``**: **PoseTrack18/21** (per-video or merged) if any image carries a
   PoseTrack frame key (``is_labeled``, ``frame_id``, ``vid_id``, ``nframes``, ``ignore_regions_x/y``),
   which COCO images never have; otherwise **COCO** keypoints. (JHMDB's PoseTrack-like file counts as
   PoseTrack18.) The rule does not look at ``info`` / ``licenses`` or at file-name directories, which
   both kinds may or may not have.
4. **JSON object with ``annotations`` only, or a JSON list**: a list whose first item has ``keypoints`` is
   COCO keypoint **results**; one with ``bbox`` (or an empty list) is a **detections** file. These are
   not annotations: :func:`read_annotations` names the reader to use instead.

Anything else raises :class:`~diffpose.errors.DataFormatError` saying what was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffpose.data.bonn import bonn_from_mat, write_bonn_mat
from diffpose.data.coco import coco_from_dict, write_coco
from diffpose.data.posetrack17 import load_mat, posetrack17_from_dict, posetrack17_from_mat, write_posetrack17
from diffpose.data.posetrack18 import posetrack18_videos_from_dict, write_posetrack18, write_posetrack18_videos
from diffpose.data.records import Video
from diffpose.data.validate import load_json, type_name
from diffpose.errors import DataFormatError

FORMATS = ("posetrack18", "posetrack17", "bonn", "coco", "coco_results", "detections")
ANNOTATION_FORMATS = ("posetrack18", "posetrack17", "bonn", "coco")
_POSETRACK_IMAGE_KEYS = {"is_labeled", "frame_id", "vid_id", "nframes", "ignore_regions_x", "ignore_regions_y"}
_OTHER_READER = {
    "coco_results": "a COCO keypoint results file; read it with diffpose.data.coco.read_coco_results",
    "detections": "a detection-box file; read it with diffpose.data.detections.read_detections",
}


def _is_mat(path: Path) -> bool:
    if path.suffix.lower() == ".mat":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"MATLAB"
    except OSError:
        return False  # load_json reports the problem


def _load(path: str | Path) -> tuple[str, Any]:
    """``("mat", variables)`` or ``("json", data)``."""
    path = Path(path)
    if _is_mat(path):
        return "mat", load_mat(path)
    return "json", load_json(path)


def _mat_format(variables: dict[str, Any], path: Path | str) -> str:
    if "annolist" not in variables:
        raise DataFormatError(f"a .mat file without an 'annolist' variable (found {sorted(variables)}); "
                              "expected PoseTrack17 or Bonn", path)
    annolist = variables["annolist"]
    first = annolist.flat[0] if hasattr(annolist, "flat") and annolist.size else annolist
    fields = set(getattr(first, "_fieldnames", ()))
    if {"annopoints", "num_frames"} <= fields:
        return "bonn"
    if fields & {"image", "annorect"}:
        return "posetrack17"
    raise DataFormatError(f"annolist entries have fields {sorted(fields)}; expected PoseTrack17 "
                          "(image, annorect) or Bonn (name, num_frames, num_persons, annopoints)", path, "annolist")


def _json_format(data: Any, path: Path | str) -> str:
    if isinstance(data, dict):
        if "annolist" in data:
            return "posetrack17"
        if "images" in data:
            images = data["images"]
            if not isinstance(images, list):
                raise DataFormatError(f"expected a list, got {type_name(images)}", path, "images")
            posetrack = any(isinstance(img, dict) and img.keys() & _POSETRACK_IMAGE_KEYS for img in images)
            return "posetrack18" if posetrack else "coco"
        if "annotations" in data and isinstance(data["annotations"], list):
            if _json_format(data["annotations"], path) == "detections":
                return "detections"  # the {"annotations": [...]} form of a detection file
        raise DataFormatError(f"a JSON object with keys {sorted(data)[:8]}; expected 'annolist' (PoseTrack17) "
                              "or 'images' + 'annotations' (PoseTrack18 / COCO)", path)
    if isinstance(data, list):
        first = data[0] if data else {"bbox": None}
        if isinstance(first, dict) and "keypoints" in first:
            return "coco_results"
        if isinstance(first, dict) and "bbox" in first:
            return "detections"
        if isinstance(first, dict) and {"joints", "joints_vis"} <= first.keys():
            raise DataFormatError("MPII single-image JSON (joints / joints_vis) is not a supported format", path)
        raise DataFormatError(f"a JSON list whose first item is {type_name(first)} "
                              f"{sorted(first)[:6] if isinstance(first, dict) else ''}; expected detections "
                              "(bbox) or COCO results (keypoints)", path, "[0]")
    raise DataFormatError(f"expected a JSON object or list, got {type_name(data)}", path)


def detect_format(path: str | Path) -> str:
    """The format of the file at ``path``: one of :data:`FORMATS` (see the module docstring)."""
    kind, data = _load(path)
    return _mat_format(data, path) if kind == "mat" else _json_format(data, path)


def read_annotations(path: str | Path) -> list[Video]:
    """Read any supported annotation file into videos (PoseTrack17 and COCO files hold one video)."""
    kind, data = _load(path)
    fmt = _mat_format(data, path) if kind == "mat" else _json_format(data, path)
    if fmt in _OTHER_READER:
        raise DataFormatError(f"this is {_OTHER_READER[fmt]}, not an annotation file", path)
    if fmt == "bonn":
        return bonn_from_mat(data, path)
    if fmt == "posetrack17":
        return [posetrack17_from_mat(data, path) if kind == "mat" else posetrack17_from_dict(data, path)]
    if fmt == "coco":
        return [coco_from_dict(data, path)]
    return posetrack18_videos_from_dict(data, path)


def _one(videos: list[Video], fmt: str, path: str | Path) -> Video:
    if len(videos) != 1:
        raise DataFormatError(f"a {fmt} file holds exactly one video, got {len(videos)}", path)
    return videos[0]


def write_annotations(videos: list[Video], path: str | Path, fmt: str) -> Path:
    """Write ``videos`` in format ``fmt`` (one of :data:`ANNOTATION_FORMATS`), atomically.

    ``posetrack18`` writes a per-video file for one video and a merged file for several; ``posetrack17``
    (JSON, or ``.mat`` by suffix) and ``coco`` take exactly one video; ``bonn`` takes any number.
    """
    if fmt == "posetrack18":
        return write_posetrack18(videos[0], path) if len(videos) == 1 else write_posetrack18_videos(videos, path)
    if fmt == "posetrack17":
        return write_posetrack17(_one(videos, fmt, path), path)
    if fmt == "coco":
        return write_coco(_one(videos, fmt, path), path)
    if fmt == "bonn":
        return write_bonn_mat(videos, path)
    raise DataFormatError(f"unknown annotation format {fmt!r}; expected one of {', '.join(ANNOTATION_FORMATS)}",
                          path)
