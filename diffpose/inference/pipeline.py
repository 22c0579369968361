"""Streaming inference over a video: a window of ``2*delta+1`` decoded frames, poses out in frame order.

Frame ``t`` needs the frames at ``t + offsets`` (``cfg.data.frame_offsets``, e.g. -2..+2; the baseline only
``t``). The pipeline keeps a deque of decoded frames and makes frame ``t`` *ready* as soon as frame
``t + max(offsets)`` has been read; at the ends of the video the window is clamped like
:class:`~diffpose.data.clip_dataset.ClipDataset` does (the first / last frame repeats). A ready frame is
cropped right away, so a decoded frame is dropped once ``t + min(offsets)`` has passed it: memory is
``O(window + batch)``, never ``O(video)``.

Boxes of frame ``t`` (see :mod:`diffpose.inference.boxes`):

1. on frames ``t % detect_every == 0`` the provider (detections, ground truth or a detector) is asked;
2. where it gives no information -- or on the frames in between -- boxes are **propagated** from frame
   ``t - 1``'s poses (keypoint box of the confident joints, scaled 1.3), unless propagation is off;
3. boxes are sanitised (non-finite dropped, clipped to the image, zero-area dropped, counted).

Ready frames queue up until ``batch_size`` persons or ``max_frames_per_batch`` frames are pending; then all
their person clips go through the model in as few calls as possible, the tracker assigns ids frame by frame
and the results are yielded in order. A frame that needs propagation first flushes the queue (it needs the
poses of the frame before it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from diffpose.data.records import Frame
from diffpose.errors import DiffPoseError
from diffpose.inference.boxes import Boxes, BoxProvider, propagate_boxes, sanitize_boxes
from diffpose.inference.predictor import PersonPose, Predictor
from diffpose.inference.sources import FrameSource, SourceFrame
from diffpose.inference.tracking import Tracker


@dataclass
class FrameResult:
    """The poses of one frame.

    Attributes:
        index: 0-based frame index; name: the frame's ``file_name``; image_id: its image id.
        size: ``(W, H)``; persons: the people found, each with a ``track_id``.
        annotation: the PoseTrack annotation frame (PoseTrack sources), else None.
        image: the RGB uint8 ``(H, W, 3)`` frame when the pipeline keeps images (for rendering), else None.
    """

    index: int
    name: str
    image_id: int
    size: tuple[int, int]
    persons: list[PersonPose]
    annotation: Frame | None = None
    image: np.ndarray | None = None


@dataclass
class PipelineOptions:
    """How boxes are obtained and how much is batched."""

    detect_every: int = 1  # ask the provider on frames t % detect_every == 0 only
    propagate: bool = True  # fill frames without provider boxes from the previous frame's poses
    propagate_min_score: float = 0.2  # joints below this score do not shape a propagated box
    propagate_scale: float = 1.3  # propagated box = keypoint box scaled about its centre
    max_frames_per_batch: int = 8  # frames pending at most before the model runs
    keep_images: bool = False  # attach each frame's image to its result (rendering)


@dataclass
class PipelineStats:
    """Counts over one run."""

    frames: int = 0
    persons: int = 0
    propagated_persons: int = 0
    provider_frames: int = 0  # frames whose boxes came from the provider
    dropped_boxes: int = 0  # non-finite or zero area inside the image
    model_calls: int = 0
    seconds: float = 0.0
    track_ids: set[int] = field(default_factory=set)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Pending:
    frame: SourceFrame
    boxes: Boxes
    clips: list[np.ndarray]  # each (T, 3, H_in, W_in)
    matrices: list[np.ndarray]  # each (2, 3)


class StreamingPipeline:
    """Frames in, tracked poses out, one :class:`FrameResult` per frame in order.

    Args:
        predictor: the model and its pre/post-processing.
        provider: where boxes come from (None: propagation only, which finds nobody without a first box).
        tracker: assigns track ids (a fresh :class:`Tracker` by default; reset for every video).
        options: see :class:`PipelineOptions`.
    """

    def __init__(self, predictor: Predictor, provider: BoxProvider | None, tracker: Tracker | None = None,
                 options: PipelineOptions | None = None):
        self.predictor, self.provider = predictor, provider
        self.tracker = tracker or Tracker()
        self.options = options or PipelineOptions()
        if self.options.detect_every < 1:
            raise DiffPoseError(f"expected detect_every >= 1, got {self.options.detect_every}", field="--detect-every")
        self.stats = PipelineStats()

    def run(self, source: FrameSource) -> Iterator[FrameResult]:
        """Stream ``source`` through the model; the noise generator and tracker restart for every video."""
        self.predictor.reseed()
        self.tracker.reset()
        self.stats = PipelineStats()
        self._pending: list[_Pending] = []
        self._previous: list[PersonPose] = []
        start = time.perf_counter()
        offsets = self.predictor.offsets
        lo, hi = min(offsets), max(offsets)
        buffer: deque[SourceFrame] = deque()  # decoded frames next_t + lo .. last read
        next_t, last = 0, -1
        for frame in source:
            buffer.append(frame)
            last = frame.index
            while next_t + hi <= last:
                yield from self._ready(buffer, next_t, None)
                next_t += 1
                while buffer and buffer[0].index < next_t + lo:
                    buffer.popleft()
        while next_t <= last:  # the tail: windows clamped at the last frame
            yield from self._ready(buffer, next_t, last)
            next_t += 1
            while buffer and buffer[0].index < next_t + lo:
                buffer.popleft()
        yield from self._flush()
        self.stats.seconds = time.perf_counter() - start

    # ------------------------------------------------------------------------------------------
    # Per frame
    # ------------------------------------------------------------------------------------------
    def boxes_for(self, frame: SourceFrame) -> Boxes | None:
        """The provider's boxes for ``frame`` on consulted frames, None otherwise (then propagation)."""
        if self.provider is None or frame.index % self.options.detect_every:
            return None
        boxes = self.provider(frame)
        if boxes is not None:
            self.stats.provider_frames += 1
        return boxes

    def _ready(self, buffer: deque[SourceFrame], t: int, end: int | None) -> Iterator[FrameResult]:
        first = buffer[0].index
        frame = buffer[t - first]
        top = end if end is not None else t + max(self.predictor.offsets)
        window = [buffer[min(max(t + o, 0), top) - first].image for o in self.predictor.offsets]
        boxes = self.boxes_for(frame)
        if boxes is None and self.options.propagate:
            yield from self._flush()  # propagation needs frame t - 1's poses
            boxes = propagate_boxes(self._previous, self.options.propagate_min_score, 2, self.options.propagate_scale)
        if boxes is None:
            boxes = Boxes.empty("none")
        boxes, dropped = sanitize_boxes(boxes, frame.size)
        self.stats.dropped_boxes += dropped
        crops = [self.predictor.crop(window, box) for box in boxes.xywh]
        self._pending.append(_Pending(frame, boxes, [c for c, _ in crops], [m for _, m in crops]))
        persons = sum(len(p.boxes) for p in self._pending)
        if persons >= self.predictor.batch_size or len(self._pending) >= self.options.max_frames_per_batch:
            yield from self._flush()

    def _flush(self) -> Iterator[FrameResult]:
        batch, self._pending = self._pending, []
        if not batch:
            return
        clips = [c for p in batch for c in p.clips]
        poses: list[PersonPose] = []
        if clips:
            boxes = np.concatenate([p.boxes.xywh for p in batch])  # (N, 4)
            scores = np.concatenate([p.boxes.scores for p in batch])  # (N,)
            origins = [p.boxes.origin for p in batch for _ in range(len(p.boxes))]
            poses = self.predictor.predict_clips(np.stack(clips), [m for p in batch for m in p.matrices], boxes,
                                                 scores, origins)
            self.stats.model_calls += -(-len(clips) // self.predictor.batch_size)
        k = 0
        for p in batch:
            persons = poses[k: k + len(p.boxes)]
            k += len(p.boxes)
            yield self._finish(p.frame, persons)

    def _finish(self, frame: SourceFrame, persons: list[PersonPose]) -> FrameResult:
        num_joints = self.predictor.num_joints
        ids = self.tracker.update(
            np.array([p.box for p in persons]).reshape(-1, 4),
            np.array([p.keypoints for p in persons]).reshape(-1, num_joints, 2),
            np.array([p.scores for p in persons]).reshape(-1, num_joints),
        )
        for person, tid in zip(persons, ids):
            person.track_id = tid
        self._previous = persons
        self.stats.frames += 1
        self.stats.persons += len(persons)
        self.stats.propagated_persons += sum(p.origin == "propagated" for p in persons)
        self.stats.track_ids.update(ids)
        return FrameResult(index=frame.index, name=frame.name, image_id=frame.image_id, size=frame.size,
                           persons=persons, annotation=frame.annotation,
                           image=frame.image if self.options.keep_images else None)
