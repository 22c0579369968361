"""A contact sheet of generated frames with their ground truth drawn, read back from the written files.

Each column is one labeled frame (from a different video), as generated on top and annotated below: the
skeleton in the person's track colour, every labeled joint as a filled dot, occluded joints as a white ring
with a red cross, the head box in white, the person box (thin) with the track id, ignore regions in grey.
Because the sheet is drawn from the JPEGs and JSON on disk, it also shows that the files agree with each other.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from diffpose.data.posetrack18 import read_posetrack18
from diffpose.data.records import Frame
from diffpose.errors import DiffPoseError
from diffpose.io_utils import atomic_write_bytes
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED

# Track colours (BGR), bright enough to read on any background.
PALETTE = ((0, 215, 255), (255, 128, 0), (60, 220, 60), (200, 60, 255), (40, 40, 255), (255, 255, 0),
           (0, 140, 255), (255, 0, 200), (160, 255, 160), (255, 180, 120))
_EDGES = tuple((a, b) for a, b in POSETRACK18.skeleton
               if a not in POSETRACK18_UNLABELED and b not in POSETRACK18_UNLABELED)


def _pt(p: np.ndarray, scale: float) -> tuple[int, int]:
    return int(round(p[0] * scale * 16)), int(round(p[1] * scale * 16))


def draw_ground_truth(image: np.ndarray, frame: Frame, scale: float = 1.0) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8 BGR resized by ``scale`` with the frame's annotation drawn on it."""
    h, w = image.shape[:2]
    out = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    aa = cv2.LINE_AA
    for region in frame.ignore_regions:
        pts = np.round(region * scale * 16).astype(np.int32)
        cv2.polylines(out, [pts], True, (170, 170, 170), 1, aa, 4)
    for person in frame.persons:
        colour = PALETTE[(person.track_id or 0) % len(PALETTE)]
        kp, present = person.keypoints, person.present
        occluded = person.occluded if person.occluded is not None else np.zeros(len(kp), dtype=bool)
        if person.box is not None:
            x, y, bw, bh = person.box
            cv2.rectangle(out, _pt(np.array([x, y]), scale), _pt(np.array([x + bw, y + bh]), scale), colour, 1, aa, 4)
            cv2.putText(out, str(person.track_id), (int(x * scale) + 2, int(y * scale) + 11), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, colour, 1, aa)
        if person.head_box is not None:
            x, y, bw, bh = person.head_box
            cv2.rectangle(out, _pt(np.array([x, y]), scale), _pt(np.array([x + bw, y + bh]), scale),
                          (255, 255, 255), 1, aa, 4)
        for a, b in _EDGES:
            if present[a] and present[b]:
                cv2.line(out, _pt(kp[a], scale), _pt(kp[b], scale), colour, 1, aa, 4)
        r = max(2, int(round(3 * scale))) * 16
        for j in np.flatnonzero(present):
            c = _pt(kp[j], scale)
            if occluded[j]:
                cv2.circle(out, c, r + 16, (255, 255, 255), 1, aa, 4)
                d = r // 2 + 16
                cv2.line(out, (c[0] - d, c[1] - d), (c[0] + d, c[1] + d), (0, 0, 255), 1, aa, 4)
                cv2.line(out, (c[0] - d, c[1] + d), (c[0] + d, c[1] - d), (0, 0, 255), 1, aa, 4)
            else:
                cv2.circle(out, c, r, colour, -1, aa, 4)
                cv2.circle(out, c, r, (0, 0, 0), 1, aa, 4)
    return out


def _pick_frames(frames: list[Frame], count: int, min_gap: int = 6) -> list[Frame]:
    """Up to ``count`` labeled frames with people, the most occluded joints first (then the most people, then
    the earliest), at least ``min_gap`` frames apart."""
    keyed = [((-sum(int(p.occluded.sum()) for p in f.persons if p.occluded is not None), -len(f.persons),
               f.frame_index), f) for f in frames if f.persons]
    picked: list[Frame] = []
    for _, f in sorted(keyed, key=lambda kf: kf[0]):
        if len(picked) < count and all(abs(f.frame_index - g.frame_index) >= min_gap for g in picked):
            picked.append(f)
    return picked


def make_preview(root: str | Path, out_path: str | Path, frames: int = 3, scale: float = 0.8) -> Path:
    """Write a PNG contact sheet: ``frames`` labeled frames side by side, as generated (top row) and with the
    ground truth drawn (bottom row), resized by ``scale``.

    Frames come from the val videos first, then train, one per video in turn (more than one per video only
    when there are fewer videos than frames).
    """
    root = Path(root)
    files = [f for split in ("val", "train") for f in sorted((root / "annotations" / split).glob("*.json"))]
    if not files:
        raise DiffPoseError("no annotation files to preview", root / "annotations")
    per_video = [_pick_frames(read_posetrack18(path).frames, frames) for path in files[:frames]]
    chosen = [v[r] for r in range(frames) for v in per_video if r < len(v)][:frames]
    if not chosen:
        raise DiffPoseError("no labeled frame with people to preview", root / "annotations")
    columns = []
    for frame in chosen:
        image = cv2.imread(str(root / frame.file_name), cv2.IMREAD_COLOR)
        if image is None:
            raise DiffPoseError("cannot read the image", root / frame.file_name)
        plain = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        _caption(plain, f"{Path(frame.file_name).parent.name} / {Path(frame.file_name).stem}")
        columns.append((plain, draw_ground_truth(image, frame, scale)))
    th, tw = columns[0][0].shape[:2]
    gap = 4
    sheet = np.full((2 * (th + gap) + gap, len(columns) * (tw + gap) + gap, 3), 32, dtype=np.uint8)
    for c, pair in enumerate(columns):
        for r, tile in enumerate(pair):
            y, x = gap + r * (th + gap), gap + c * (tw + gap)
            sheet[y: y + th, x: x + tw] = tile
    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover - cv2 only fails on invalid arguments
        raise DiffPoseError("PNG encoding failed", out_path)
    return atomic_write_bytes(buf.tobytes(), out_path)


def _caption(tile: np.ndarray, text: str) -> None:
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    tile[: h + 8, : w + 8] //= 3
    cv2.putText(tile, text, (4, h + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
