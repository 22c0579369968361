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
3. boxes are sanitised (non-finite, zero-area and wholly outside the image dropped and counted; boxes partly
   outside kept whole, as in training).

Ready frames queue up until ``batch_size`` persons or ``max_frames_per_batch`` frames are pending; then all
their person clips go through the model in as few calls as possible, the tracker assigns ids frame by frame
and the results are yielded in order. A frame that needs propagation first flushes the queue (it needs the
poses of the frame before it).

The provider is asked for a frame's boxes as soon as the frame is decoded (still once per frame, in order),
so that with **feature reuse** (``PipelineOptions.reuse``, :mod:`diffpose.inference.feature_cache`) the
crops of the frames ahead of a key frame are known when its clip is assembled: every person crop of a
frame then goes through the backbone once. Without reuse (the exact path) every clip crops all ``T`` frames
with its key box, as ``diffpose test`` does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from diffpose.data.records import Frame
from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose, Predictor
from diffpose.inference.boxes import Boxes, BoxProvider, propagate_boxes, sanitize_boxes
from diffpose.inference.feature_cache import CacheEntry, FeatureCache
from diffpose.inference.feature_warp import TokenGeometry
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
    reuse: bool = False  # feature reuse: one backbone pass per person crop of a frame (models of >1 frame)
    reuse_min_iou: float = 0.5  # a neighbour crop is reused when its region's IoU with the key crop's is >= this


@dataclass
class PipelineStats:
    """Counts over one run."""

    frames: int = 0
    persons: int = 0
    propagated_persons: int = 0
    provider_frames: int = 0  # frames whose boxes came from the provider
    dropped_boxes: int = 0  # non-finite or zero area inside the image
    model_calls: int = 0
    backbone_crops: int = 0  # crops that went through the backbone
    seconds: float = 0.0
    track_ids: set[int] = field(default_factory=set)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Pending:
    frame: SourceFrame
    boxes: Boxes
    clips: list[np.ndarray]  # each (T, 3, H_in, W_in); empty with reuse
    matrices: list[np.ndarray]  # each (2, 3)
    slots: list[list[CacheEntry]] = field(default_factory=list)  # with reuse: each person's T cache entries


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
        self.reuse = self.options.reuse and len(predictor.offsets) > 1  # one-frame clips have nothing to reuse
        self.cache = FeatureCache(TokenGeometry.from_model_config(predictor.cfg.model), self.options.reuse_min_iou)
        self.stats = PipelineStats()

    def run(self, source: FrameSource) -> Iterator[FrameResult]:
        """Stream ``source`` through the model; the noise generator and tracker restart for every video."""
        self.predictor.reseed()
        self.tracker.reset()
        self.stats = PipelineStats()
        self._pending: list[_Pending] = []
        self._previous: list[PersonPose] = []
        self._provided: dict[int, Boxes | None] = {}  # provider boxes of decoded frames not yet ready
        self.cache.reset()
        start = time.perf_counter()
        offsets = self.predictor.offsets
        lo, hi = min(offsets), max(offsets)
        buffer: deque[SourceFrame] = deque()  # decoded frames next_t + lo .. last read
        next_t, last = 0, -1
        for frame, boxes in self._frames_with_boxes(source):
            buffer.append(frame)
            last = frame.index
            self._provided[frame.index] = boxes
            while next_t + hi <= last:
                yield from self._ready(buffer, next_t, None)
                next_t += 1
                self._drop(buffer, next_t + lo)
        while next_t <= last:  # the tail: windows clamped at the last frame
            yield from self._ready(buffer, next_t, last)
            next_t += 1
            self._drop(buffer, next_t + lo)
        yield from self._flush()
        self.stats.backbone_crops += self.cache.stats.backbone_crops
        self.stats.seconds = time.perf_counter() - start

    def _drop(self, buffer: deque[SourceFrame], first_needed: int) -> None:
        """Forget decoded frames and cached crops before ``first_needed`` (no window needs them)."""
        while buffer and buffer[0].index < first_needed:
            buffer.popleft()
        self.cache.evict_before(first_needed)

    # ------------------------------------------------------------------------------------------
    # Per frame
    # ------------------------------------------------------------------------------------------
    def _frames_with_boxes(self, source: Iterable[SourceFrame]) -> Iterator[tuple[SourceFrame, Boxes | None]]:
        """Every frame of ``source`` in order with its provider boxes (:meth:`boxes_for`). A provider with
        ``frames_per_call > 1`` and a ``many(frames) -> [Boxes, ...]`` method (the built-in detector on a GPU) is
        asked for that many consulted frames at once; the frames wait for their batch."""
        per_call = int(getattr(self.provider, "frames_per_call", 1))
        if per_call <= 1:
            for frame in source:
                yield frame, self.boxes_for(frame)
            return
        held: list[SourceFrame] = []
        for frame in source:
            held.append(frame)
            if sum(self._consulted(f) for f in held) == per_call:
                yield from self._boxes_of_many(held)
                held = []
        yield from self._boxes_of_many(held)

    def _consulted(self, frame: SourceFrame) -> bool:
        return self.provider is not None and frame.index % self.options.detect_every == 0

    def _boxes_of_many(self, frames: list[SourceFrame]) -> Iterator[tuple[SourceFrame, Boxes | None]]:
        asked = [f for f in frames if self._consulted(f)]
        found = dict(zip((f.index for f in asked), self.provider.many(asked) if asked else []))
        for frame in frames:
            boxes = found.get(frame.index)
            yield frame, None if boxes is None else self._sanitized(frame, boxes)

    def boxes_for(self, frame: SourceFrame) -> Boxes | None:
        """The provider's sanitised boxes for ``frame`` on consulted frames, None otherwise (then propagation)."""
        if not self._consulted(frame):
            return None
        boxes = self.provider(frame)
        return None if boxes is None else self._sanitized(frame, boxes)

    def _sanitized(self, frame: SourceFrame, boxes: Boxes) -> Boxes:
        self.stats.provider_frames += 1
        boxes, dropped = sanitize_boxes(boxes, frame.size)
        self.stats.dropped_boxes += dropped
        return boxes

    def _ready(self, buffer: deque[SourceFrame], t: int, end: int | None) -> Iterator[FrameResult]:
        first = buffer[0].index
        frame = buffer[t - first]
        top = end if end is not None else t + max(self.predictor.offsets)
        window = [min(max(t + o, 0), top) for o in self.predictor.offsets]  # frame indices, clamped
        boxes = self._provided.pop(t, None)
        if boxes is None and self.options.propagate:
            yield from self._flush()  # propagation needs frame t - 1's poses
            boxes = propagate_boxes(self._previous, self.options.propagate_min_score, 2, self.options.propagate_scale)
            boxes, dropped = sanitize_boxes(boxes, frame.size)
            self.stats.dropped_boxes += dropped
        if boxes is None:
            boxes = Boxes.empty("none")
        if self.reuse:
            slots = self._reuse_slots(buffer, t, top, window, boxes)
            matrices = [row[window.index(t)].matrix for row in slots]
            self._pending.append(_Pending(frame, boxes, [], matrices, slots))
        else:
            crops = [self.predictor.crop([buffer[s - first].image for s in window], box) for box in boxes.xywh]
            self._pending.append(_Pending(frame, boxes, [c for c, _ in crops], [m for _, m in crops]))
        persons = sum(len(p.boxes) for p in self._pending)
        if persons >= self.predictor.batch_size or len(self._pending) >= self.options.max_frames_per_batch:
            yield from self._flush()

    def _reuse_slots(self, buffer: deque[SourceFrame], t: int, top: int, window: list[int],
                     boxes: Boxes) -> list[list[CacheEntry]]:
        """Each person's ``T`` cache entries: the key crop (exact) and, per neighbour frame, a reusable crop of
        that frame or a crop with the key box. Crops of the frames ahead whose boxes are known join first."""
        first = buffer[0].index
        pred = self.predictor

        def cropper(s: int, mat: np.ndarray):
            return lambda: pred.crop_frame(buffer[s - first].image, mat)

        for s in range(t + 1, top + 1):
            ahead = self._provided.get(s)
            for box in ahead.xywh if ahead is not None else []:
                mat = pred.crop_matrix(box)
                self.cache.exact(s, mat, cropper(s, mat))
        slots = []
        for box in boxes.xywh:
            mat = pred.crop_matrix(box)
            slots.append([self.cache.exact(s, mat, cropper(s, mat)) if s == t else
                          self.cache.slot(s, mat, cropper(s, mat)) for s in window])
        return slots

    def _flush(self) -> Iterator[FrameResult]:
        batch, self._pending = self._pending, []
        if not batch:
            return
        n = sum(len(p.boxes) for p in batch)
        poses: list[PersonPose] = []
        if n:
            boxes = np.concatenate([p.boxes.xywh for p in batch])  # (N, 4)
            scores = np.concatenate([p.boxes.scores for p in batch])  # (N,)
            origins = [p.boxes.origin for p in batch for _ in range(len(p.boxes))]
            matrices = [m for p in batch for m in p.matrices]
            if self.reuse:
                slots = [row for p in batch for row in p.slots]
                self._run_backbone(slots)
                pred = self.predictor
                results = [pred.run_features(self.cache.assemble(slots[c], matrices[c])) for c in pred.chunks(n)]
                poses = pred.poses(results, matrices, boxes, scores, origins)
            else:
                clips = np.stack([c for p in batch for c in p.clips])  # (N, T, 3, H_in, W_in)
                poses = self.predictor.predict_clips(clips, matrices, boxes, scores, origins)
                self.stats.backbone_crops += clips.shape[0] * clips.shape[1]
            self.stats.model_calls += -(-n // self.predictor.batch_size)
        k = 0
        for p in batch:
            persons = poses[k: k + len(p.boxes)]
            k += len(p.boxes)
            yield self._finish(p.frame, persons)

    def _run_backbone(self, slots: list[list[CacheEntry]]) -> None:
        """Backbone features for every entry the clips need, and for the crops ahead already in the cache."""
        todo = {e: None for row in slots for e in row if e.features is None}
        todo.update({e: None for e in self.cache.pending()})
        if todo:
            entries = list(todo)
            self.cache.fill(entries, self.predictor.backbone(np.stack([e.pixels for e in entries])))

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
