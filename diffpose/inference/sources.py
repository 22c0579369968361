"""Frame sources: a video file, a folder of frames or a PoseTrack sequence, decoded one frame at a time.

Every source yields :class:`SourceFrame` objects in temporal order and never holds more than the frame it
is decoding, so a consumer that keeps a bounded window keeps bounded memory whatever the video's length.

* :class:`VideoFileSource`: anything OpenCV's ``VideoCapture`` decodes (mp4, avi, mkv, ...). Frame ``i``
  (0-based) gets ``image_id = i`` and the name ``<video stem>/<i:06d>.jpg`` (PoseTrack's naming; no such
  file exists). ``fps`` comes from the container.
* :class:`FolderSource`: the images (``.jpg .jpeg .png .bmp .tif .tiff .webp``) of one folder, in natural
  order of their names (``frame2`` before ``frame10``). Frame ``i`` gets ``image_id = i`` and the name
  ``<folder name>/<file name>``.
* :class:`PoseTrackSource`: the frames listed by a PoseTrack18 per-video JSON file, in file order, read from
  ``ROOT/<file_name>``. ``ROOT`` defaults to the JSON's grandparent's parent (the PoseTrack layout
  ``ROOT/annotations/<split>/<seq>.json``). Frames keep the file's image ids and names and carry their
  annotation (:class:`~diffpose.data.records.Frame`), which ``--boxes gt`` reads. Opening checks that every
  listed frame exists (``stat`` only), so a half-downloaded sequence fails before the first frame, and refuses
  a ``file_name`` that leaves ``ROOT`` (absolute or with ``..``, checked lexically) or a GT box of negative
  size (:func:`~diffpose.data.clip_dataset.check_sequence`); a frame far from its stated ``width`` /
  ``height`` is refused when it is read.

:func:`open_source` picks the kind from the path: a folder, a ``.json`` file or anything else (a video).
Images are RGB uint8 ``(H, W, 3)`` (:func:`~diffpose.data.images.read_rgb`: grayscale, RGBA and 16-bit
files are converted; an empty, cut-short or undecodable frame, or one whose header claims more than
:data:`~diffpose.data.images.MAX_PIXELS` pixels, stops the run naming the file). Frames may
differ in size: each keeps its own, and poses are reported in that frame's pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from diffpose.data.clip_dataset import check_sequence
from diffpose.data.dataset_root import check_dataset_root
from diffpose.data.images import IMAGE_SUFFIXES, check_frame_size, check_frames_exist, read_rgb
from diffpose.data.paths import confined
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.data.records import Frame, Video
from diffpose.errors import DiffPoseError

DEFAULT_FPS = 25.0


@dataclass
class SourceFrame:
    """One decoded frame.

    Attributes:
        index: 0-based position in the video.
        image: ``(H, W, 3)`` RGB uint8.
        name: the frame's ``file_name`` in output files.
        image_id: key for detection files and outputs (PoseTrack image id, else ``index``).
        annotation: the PoseTrack annotation of this frame (PoseTrack sources only), else None.
    """

    index: int
    image: np.ndarray
    name: str
    image_id: int
    annotation: Frame | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(W, H)``."""
        return int(self.image.shape[1]), int(self.image.shape[0])


class FrameSource:
    """Base class: iterate to get :class:`SourceFrame` objects in order (each iteration starts afresh).

    Attributes:
        path: what the user gave; name: sequence name for outputs (file or folder stem).
        fps: frames per second (container value, or the ``fps`` given for folders and sequences).
        num_frames: number of frames if known before decoding (for progress bars), else None.
        video: the PoseTrack annotation of a sequence (frames, image ids, ``vid_id``), else None.
    """

    path: Path
    name: str
    fps: float
    num_frames: int | None = None
    video: Video | None = None

    def __iter__(self) -> Iterator[SourceFrame]:  # pragma: no cover - abstract
        raise NotImplementedError


def _read_image(path: Path) -> np.ndarray:
    """``(H, W, 3)`` RGB uint8 from an image file (gray, RGBA, 16-bit converted); a one-line error otherwise."""
    return read_rgb(path)


class VideoFileSource(FrameSource):
    """Frames of a video file, decoded with OpenCV. Opening checks that the first frame decodes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise DiffPoseError("video file does not exist" if not self.path.exists() else "is not a file", self.path)
        if self.path.stat().st_size == 0:
            raise DiffPoseError("video file is empty", self.path)
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise DiffPoseError("cannot open as a video (corrupt, or a format OpenCV cannot decode)", self.path)
            ok, first = cap.read()
            if not ok or first is None:
                raise DiffPoseError("no frame can be decoded (empty or corrupt video)", self.path)
            fps = cap.get(cv2.CAP_PROP_FPS)
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS
        self.num_frames = count if count > 0 else None
        self.decoded = 0  # frames decoded by the last complete iteration

    def __iter__(self) -> Iterator[SourceFrame]:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DiffPoseError("cannot open as a video", self.path)
        index = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                yield SourceFrame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{self.name}/{index:06d}.jpg", index)
                index += 1
        finally:
            cap.release()
        if index == 0:
            raise DiffPoseError("no frame can be decoded (empty or corrupt video)", self.path)
        self.decoded = index


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FolderSource(FrameSource):
    """The image files of one folder (not its subfolders), in natural order of their names."""

    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS):
        self.path = Path(path)
        self.name = self.path.resolve().name
        if not self.path.is_dir():
            raise DiffPoseError("folder does not exist" if not self.path.exists() else "is not a folder", self.path)
        files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if not files:
            raise DiffPoseError(f"no image files ({' '.join(IMAGE_SUFFIXES)}) in this folder", self.path)
        self.files = sorted(files, key=lambda p: _natural_key(p.name))
        self.fps = float(fps)
        self.num_frames = len(self.files)

    def __iter__(self) -> Iterator[SourceFrame]:
        for index, file in enumerate(self.files):
            yield SourceFrame(index, _read_image(file), f"{self.name}/{file.name}", index)


def default_root(json_path: Path) -> Path:
    """The dataset root of a PoseTrack file ``ROOT/annotations/<split>/<seq>.json``: its grandparent's parent."""
    return json_path.resolve().parent.parent.parent


class PoseTrackSource(FrameSource):
    """The frames of a PoseTrack18 per-video JSON file, read from ``root / file_name``."""

    def __init__(self, path: str | Path, root: str | Path | None = None, fps: float = DEFAULT_FPS):
        self.path = Path(path)
        check_dataset_root(root if root is not None else default_root(self.path))
        self.video = read_posetrack18(self.path)
        self.name = self.video.name
        if not self.video.frames:
            raise DiffPoseError("the sequence lists no images", self.path, "images")
        self.root = Path(root) if root is not None else default_root(self.path)
        check_sequence(self.video, self.root, self.path)  # names inside ROOT, no negative GT box
        first = self.root / self.video.frames[0].file_name
        if not first.is_file():
            how = "--root" if root is not None else "the default root (the JSON's grandparent's parent); pass --root"
            raise DiffPoseError(f"first frame {self.video.frames[0].file_name!r} not found under {self.root} ({how})",
                                self.path)
        check_frames_exist(self.root, [f.file_name for f in self.video.frames], f"listed by {self.path.name}")
        self.fps = float(fps)
        self.num_frames = len(self.video.frames)

    def __iter__(self) -> Iterator[SourceFrame]:
        for index, frame in enumerate(self.video.frames):
            image_id = frame.image_id if frame.image_id is not None else index
            path = confined(self.root, frame.file_name, self.path, f"images[{index}].file_name", what="file_name")
            image = _read_image(path)
            check_frame_size(image, frame.size, path)
            yield SourceFrame(index, image, frame.file_name, image_id, frame)


def open_source(path: str | Path, root: str | Path | None = None, fps: float | None = None) -> FrameSource:
    """A folder -> :class:`FolderSource`; ``*.json`` -> :class:`PoseTrackSource`; else :class:`VideoFileSource`.

    ``fps`` is used for folders and sequences (default 25); a video file keeps its own rate.
    """
    path = Path(path)
    if not path.exists():
        raise DiffPoseError("input does not exist (expected a video file, a folder of frames or a PoseTrack18 "
                            "JSON file)", path)
    if root is not None and path.suffix.lower() != ".json":
        raise DiffPoseError("--root applies to PoseTrack JSON input only", path)
    if path.is_dir():
        return FolderSource(path, fps or DEFAULT_FPS)
    if path.suffix.lower() == ".json":
        return PoseTrackSource(path, root, fps or DEFAULT_FPS)
    return VideoFileSource(path)
