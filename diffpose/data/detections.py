"""Person detection files (COCO / PoseTrack style) <-> a list of :class:`~diffpose.data.records.Detection`.

File layout: a JSON list ``[{"bbox": [x, y, w, h], "category_id": 1, "image_id": 785, "score": 0.99}, ...]``
(mmpose's ``*_human_detections.json`` and COCO ``*_det_AP_H_56.json``). The dict form
``{"annotations": [...]}`` is read too; other top-level keys of that form are not kept, and the writer
always writes the list form. Boxes are ``(x, y, w, h)`` pixels with ``w, h >= 0``; ``image_id`` is an
integer or a string; a missing ``category_id`` reads as 1; unknown keys are kept in ``Detection.extra``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from diffpose.data.records import Detection
from diffpose.data.validate import get, integer, load_json, number, number_array, type_name
from diffpose.errors import DataFormatError
from diffpose.io_utils import atomic_write_json

_KEYS = {"bbox", "category_id", "image_id", "score"}
# A box narrower or lower than this (pixels) holds no person a pose model can see (1e-9 pixels is a degenerate
# detection, and its crop would be a magnification of one pixel by 1e11): dropped and counted like a box without
# area, in diffpose test (filter_detections) and in diffpose infer (sanitize_boxes).
MIN_BOX_SIDE = 1.0


def _read_detection(item: Any, k: int, path: Path | str) -> Detection:
    where = f"[{k}]"
    if not isinstance(item, dict):
        raise DataFormatError(f"expected an object with bbox, image_id and score, got {type_name(item)}",
                              path, where)
    box = number_array(get(item, "bbox", path, where), path, f"{where}.bbox", 4)
    if box[2] < 0 or box[3] < 0:
        raise DataFormatError(f"expected width and height >= 0, got {box[2]:g} x {box[3]:g}", path, f"{where}.bbox")
    image_id = get(item, "image_id", path, where)
    if not isinstance(image_id, str):
        image_id = integer(image_id, path, f"{where}.image_id")
    category_id = item.get("category_id", 1)
    return Detection(
        image_id=image_id,
        box=box,
        score=number(get(item, "score", path, where), path, f"{where}.score"),
        category_id=integer(category_id, path, f"{where}.category_id"),
        extra={key: v for key, v in item.items() if key not in _KEYS},
    )


def detections_from_list(data: Any, path: Path | str = "<memory>") -> list[Detection]:
    """Parse a detection list (or ``{"annotations": [...]}``) in file order."""
    if isinstance(data, dict):
        data = get(data, "annotations", path, "", list)
    if not isinstance(data, list):
        raise DataFormatError(f"expected a JSON list of detections, got {type_name(data)}", path)
    return [_read_detection(item, k, path) for k, item in enumerate(data)]


def read_detections(path: str | Path) -> list[Detection]:
    """Read a detection-box file into a list of detections, in file order."""
    return detections_from_list(load_json(path), path)


def _json_number(x: float) -> int | float:
    xf = float(x)
    return int(xf) if xf.is_integer() and abs(xf) < 2**53 else xf


def detections_to_list(detections: list[Detection]) -> list[dict[str, Any]]:
    """The JSON list form of ``detections``."""
    out = []
    for k, det in enumerate(detections):
        box = [float(v) for v in det.box]
        if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
            raise DataFormatError(f"expected a finite box (x, y, w, h) with w, h >= 0, got {box}", field=f"[{k}].bbox")
        if not math.isfinite(det.score):
            raise DataFormatError(f"expected a finite score, got {det.score!r}", field=f"[{k}].score")
        item: dict[str, Any] = dict(det.extra)
        item.update(bbox=[_json_number(v) for v in box], category_id=int(det.category_id),
                    image_id=det.image_id, score=float(det.score))
        out.append(item)
    return out


def write_detections(detections: list[Detection], path: str | Path) -> Path:
    """Write detections as a JSON list, atomically."""
    return atomic_write_json(detections_to_list(detections), path)


def detections_by_image(detections: list[Detection], min_score: float = 0.0,
                        category_id: int | None = 1) -> dict[int | str, list[Detection]]:
    """Group detections by image, keeping ``score >= min_score`` and the given category (None: all).

    Images appear in order of their first kept detection; each image's detections keep file order.
    """
    out: dict[int | str, list[Detection]] = {}
    for det in detections:
        if det.score >= min_score and (category_id is None or det.category_id == category_id):
            out.setdefault(det.image_id, []).append(det)
    return out


def filter_detections(detections: list[Detection], min_score: float = 0.0, category_id: int = 1,
                      area: bool = True) -> tuple[list[Detection], dict[str, int]]:
    """The detections a pose model uses (``category_id``, ``score >= min_score``, with ``area`` also width and
    height >= :data:`MIN_BOX_SIDE`) and how many were dropped for each reason (only reasons that dropped some)."""
    kept: list[Detection] = []
    dropped = {"not a person (category_id != 1)": 0, f"score below {min_score:g}": 0,
               f"narrower or lower than {MIN_BOX_SIDE:g} pixel": 0}
    reasons = list(dropped)
    for det in detections:
        if det.category_id != category_id:
            dropped[reasons[0]] += 1
        elif not det.score >= min_score:
            dropped[reasons[1]] += 1
        elif area and not (det.box[2] >= MIN_BOX_SIDE and det.box[3] >= MIN_BOX_SIDE):
            dropped[reasons[2]] += 1
        else:
            kept.append(det)
    return kept, {k: v for k, v in dropped.items() if v}


def check_dropped(path: str | Path, total: int, kept: int, dropped: dict[str, int], command: str) -> None:
    """One warning line on stderr when boxes were dropped; an error when every box was (0 persons otherwise)."""
    if not dropped:
        return
    why = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
    if total and not kept:
        raise DataFormatError(f"all {total} boxes dropped ({why}); no person would be estimated", path)
    print(f"diffpose {command}: warning: {path}: dropped {total - kept} of {total} boxes ({why})", file=sys.stderr)
