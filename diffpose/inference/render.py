"""Drawing poses and writing the rendered video or frames.

:func:`draw_poses` paints each person's skeleton (``layout.skeleton``) in a colour of its track id, a dot per
joint, a circle of radius = the joint's uncertainty (pixels; none when it is below one pixel), the box and
the track id. Joints with a score below ``min_score`` -- and the limbs that touch them -- are drawn faint
(30% opacity). The never-labelled ears are not drawn.

Sinks (see :mod:`diffpose.inference.outputs`):

* :class:`VideoRenderer` writes an mp4 (``mp4v``) at the input's frame rate. It writes to a temporary file
  in the target folder and renames it over the target only when the whole video is done and reads back
  (re-opened with OpenCV, every frame counted: its writer does not report a full disk). The video takes
  the first frame's size; a later frame of another size (a folder of mixed images) is drawn at its own
  size and then scaled into the video's, aspect kept, on black bars (:func:`letterbox`).
* :class:`FrameFolderRenderer` writes ``DIR/<index:06d>.png``, each file atomically.

Both write wherever they are told: ``diffpose infer`` tells them staged paths (:mod:`diffpose.io_outputs`),
so the video and the frame folder land together with the other outputs, or not at all.
"""

from __future__ import annotations

import colorsys
import contextlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose
from diffpose.inference.pipeline import FrameResult
from diffpose.io_utils import atomic_write_bytes, check_writable, output_target
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED, Layout

FAINT_ALPHA = 0.3  # opacity of low-score joints and limbs
_GOLDEN = 0.618033988749895


DRAW_LIMIT = 2.0**20  # drawing coordinates are clipped to this (OpenCV takes 32-bit ints; far outside any frame)

def track_colour(track_id: int | None) -> tuple[int, int, int]:
    """A bright BGR colour per track id (golden-ratio hues, so neighbouring ids differ); grey for None."""
    if track_id is None:
        return (200, 200, 200)
    r, g, b = colorsys.hsv_to_rgb((track_id * _GOLDEN) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _draw_person(canvas: np.ndarray, faint: np.ndarray, person: PersonPose, layout: Layout, min_score: float,
                 thickness: int) -> None:
    """Strong parts on ``canvas``, weak ones on ``faint`` (blended in later); both BGR ``(H, W, 3)``."""
    colour = track_colour(person.track_id)
    drawn = np.ones(len(person.scores), dtype=bool)
    if layout is POSETRACK18:
        drawn[list(POSETRACK18_UNLABELED)] = False
    strong = person.scores >= min_score
    pts = np.round(np.clip(person.keypoints, -DRAW_LIMIT, DRAW_LIMIT)).astype(np.int64)  # (J, 2), OpenCV's int range
    for a, b in layout.skeleton:
        if drawn[a] and drawn[b]:
            target = canvas if strong[a] and strong[b] else faint
            cv2.line(target, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), colour, thickness,
                     cv2.LINE_AA)
    for j in np.flatnonzero(drawn):
        target = canvas if strong[j] else faint
        centre = (int(pts[j, 0]), int(pts[j, 1]))
        cv2.circle(target, centre, thickness + 1, colour, -1, cv2.LINE_AA)
        radius = int(round(float(person.uncertainty[j])))
        if radius >= 1:
            cv2.circle(target, centre, radius, colour, 1, cv2.LINE_AA)
    x, y, w, h = (int(round(v)) for v in np.clip(person.box, -DRAW_LIMIT, DRAW_LIMIT))
    cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 1)
    if person.track_id is not None:
        label = str(person.track_id)
        scale = max(0.4, thickness * 0.25)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y - th - 4, 0)
        cv2.rectangle(canvas, (x, top), (x + tw + 4, top + th + 4), colour, -1)
        cv2.putText(canvas, label, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_poses(image_rgb: np.ndarray, persons: list[PersonPose], layout: Layout = POSETRACK18,
               min_score: float = 0.2) -> np.ndarray:
    """The frame ``(H, W, 3)`` RGB uint8 with every person drawn; returns a new BGR uint8 image."""
    base = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)  # (H, W, 3)
    thickness = max(1, int(round(min(base.shape[:2]) / 240)))
    canvas, faint = base.copy(), base.copy()
    for person in persons:
        _draw_person(canvas, faint, person, layout, min_score, thickness)
    changed = (faint != base).any(axis=2)  # (H, W) pixels with faint parts
    if changed.any():
        blend = cv2.addWeighted(faint, FAINT_ALPHA, canvas, 1 - FAINT_ALPHA, 0)
        canvas[changed] = blend[changed]
    return canvas


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image (H, W, 3)`` scaled to fit ``size = (W', H')`` with its aspect kept, centred on black."""
    out_w, out_h = size
    h, w = image.shape[:2]
    scale = min(out_w / w, out_h / h)
    new_w, new_h = max(1, min(out_w, round(w * scale))), max(1, min(out_h, round(h * scale)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((out_h, out_w, 3), dtype=image.dtype)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


class VideoRenderer:
    """Writes drawn frames to an mp4 file atomically (temporary file in the same folder, renamed at the end)."""

    def __init__(self, path: str | Path, fps: float, layout: Layout = POSETRACK18, min_score: float = 0.2,
                 shown: str | Path | None = None):
        self.path, self.fps, self.layout, self.min_score = check_writable(path), float(fps), layout, min_score
        self.path = output_target(self.path)  # a symlink: the rendered video replaces its target
        self.shown = Path(shown) if shown is not None else self.path  # named in messages (path may be staged)
        self.writer: cv2.VideoWriter | None = None
        self.tmp: Path | None = None
        self.size: tuple[int, int] | None = None
        self.resized = 0  # frames of another size than the first, scaled into the video's size
        self.frames = 0  # frames handed to the writer

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4",
                                       dir=self.path.parent)
        except OSError as e:
            raise DiffPoseError(f"cannot write here: {e.strerror or e}", self.shown) from None
        os.close(fd)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a published video gets the usual mode
        self.tmp, self.size = Path(tmp), size
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if not self.writer.isOpened():
            self.abort()
            raise DiffPoseError("OpenCV cannot open an mp4v video writer for this file", self.shown)

    def add(self, result: FrameResult) -> None:
        if result.image is None:
            raise DiffPoseError("the pipeline did not keep frame images (PipelineOptions.keep_images)", self.shown)
        if self.writer is None:
            self._open(result.size)
        drawn = draw_poses(result.image, result.persons, self.layout, self.min_score)
        if result.size != self.size:  # a video has one size: fit this frame into it, keeping its aspect
            drawn = letterbox(drawn, self.size)
            self.resized += 1
        self.writer.write(drawn)
        self.frames += 1

    def close(self) -> list[Path]:
        if self.writer is None:
            raise DiffPoseError("no frames to render", self.shown)
        self.writer.release()
        self.writer = None
        readable = count_video_frames(self.tmp)  # OpenCV's writer does not report a full disk: read it back
        if readable != self.frames:
            self.abort()
            kept = "the previous file is kept" if self.shown.exists() else "nothing was written"
            raise DiffPoseError(f"the rendered video does not read back ({readable} of {self.frames} frames "
                                f"decodable; disk full?); {kept}", self.shown)
        os.replace(self.tmp, self.path)
        return [self.path]

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


def count_video_frames(path: str | Path) -> int:
    """How many frames OpenCV decodes from ``path`` (0 when it cannot open it)."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


class FrameFolderRenderer:
    """Writes each drawn frame to ``folder/<index:06d>.png`` (atomically, one by one). ``diffpose infer`` gives
    it a staged folder of :class:`~diffpose.io_outputs.Outputs`, which replaces the real folder whole at the
    end; given a real folder, frames already written stay when the run fails."""

    def __init__(self, folder: str | Path, layout: Layout = POSETRACK18, min_score: float = 0.2,
                 shown: str | Path | None = None):
        self.folder, self.layout, self.min_score = check_writable(folder, folder=True), layout, min_score
        self.shown = Path(shown) if shown is not None else self.folder  # named in messages
        self.count = 0

    def add(self, result: FrameResult) -> None:
        if result.image is None:
            raise DiffPoseError("the pipeline did not keep frame images (PipelineOptions.keep_images)", self.shown)
        ok, png = cv2.imencode(".png", draw_poses(result.image, result.persons, self.layout, self.min_score))
        if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
            raise DiffPoseError("cannot encode PNG", self.shown)
        atomic_write_bytes(png.tobytes(), self.folder / f"{result.index:06d}.png")
        self.count += 1

    def close(self) -> list[Path]:
        return [self.folder]

    def abort(self) -> None:
        """Frames already written stay (each is complete); nothing else to undo."""
