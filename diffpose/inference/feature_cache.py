"""Reuse of backbone features across the overlapping clip windows of a video.

Run naively, DiffPose crops every frame of a person's ``T``-frame window with the key frame's box and runs
the backbone on all ``T`` crops: ``T`` backbone passes per person and frame. With reuse, every person crop
of a frame goes through the backbone **once**, and a clip is assembled from features already computed:

* the key frame's own crop, always exact (cropped with its own box);
* each neighbour frame ``s``: the cached crop of frame ``s`` whose image region overlaps the key crop's
  most (IoU of the two crops' regions, at least ``min_iou``) -- usually the same person's crop in frame
  ``s`` -- mapped into the key crop's token grid by :func:`~diffpose.inference.feature_warp.warp_features`
  (an exact copy when the two crops coincide);
* when no crop of frame ``s`` overlaps enough (the person is new, a box is missing, or frame ``s``'s boxes
  are not known yet), frame ``s`` is cropped with the key box as the exact path does, and that crop joins
  the cache, so the next key frame can reuse it.

A :class:`CacheEntry` starts with the crop's pixels and gets its features when the pipeline next runs the
backbone (:meth:`FeatureCache.pending` -> :meth:`FeatureCache.fill`); pixels are dropped then. Entries of
frames no window needs any more are evicted, so memory is ``O(window x persons)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from diffpose.inference.feature_warp import TokenGeometry, crop_region, region_iou, warp_features


@dataclass(eq=False)
class CacheEntry:
    """One crop of one frame.

    Attributes:
        frame: frame index; matrix: ``(2, 3)`` image -> crop; region: ``(4,)`` image rectangle it covers.
        pixels: ``(3, H_in, W_in)`` float32 normalised crop until the backbone has run, then None.
        features: ``(D, h, w)`` backbone features once computed, else None.
        key: True for a crop made with one of the frame's own boxes, False for a crop made with a
            neighbour's box (a fallback).
    """

    frame: int
    matrix: np.ndarray
    region: np.ndarray
    pixels: np.ndarray | None = None
    features: torch.Tensor | None = None
    key: bool = True


@dataclass
class CacheStats:
    """Counts over one video: backbone crops run, clip slots served exactly, warped, or by a fallback crop."""

    backbone_crops: int = 0
    same_crop: int = 0  # neighbour slot served by a crop identical to the key crop (no warp)
    warped: int = 0  # neighbour slot served by another crop of that frame, warped
    fallback: int = 0  # neighbour slot that needed its own crop with the key box
    clips: int = 0

    def backbone_per_clip(self) -> float:
        return self.backbone_crops / self.clips if self.clips else 0.0


@dataclass
class FeatureCache:
    """Per-frame person crops and their backbone features, matched by crop-region IoU.

    Args:
        geometry: the backbone's token geometry (for warping).
        min_iou: a neighbour crop is reused when its region's IoU with the key crop's is at least this.
        padding: ``grid_sample`` padding for key tokens outside the reused crop (``"border"`` or ``"zeros"``).
    """

    geometry: TokenGeometry
    min_iou: float = 0.5
    padding: str = "border"
    frames: dict[int, list[CacheEntry]] = field(default_factory=dict)
    stats: CacheStats = field(default_factory=CacheStats)

    def reset(self) -> None:
        self.frames.clear()
        self.stats = CacheStats()

    def exact(self, frame: int, matrix: np.ndarray, crop: Callable[[], np.ndarray], key: bool = True) -> CacheEntry:
        """The entry of ``frame`` cropped with exactly ``matrix``, created (``crop()`` -> pixels) if absent."""
        for e in self.frames.get(frame, []):
            if np.array_equal(e.matrix, matrix):
                e.key = e.key or key
                return e
        entry = CacheEntry(frame, np.asarray(matrix, dtype=np.float64), crop_region(matrix, self.geometry.crop_size),
                           pixels=crop(), key=key)
        self.frames.setdefault(frame, []).append(entry)
        return entry

    def match(self, frame: int, matrix: np.ndarray) -> CacheEntry | None:
        """The entry of ``frame`` whose region overlaps ``matrix``'s crop most, if its IoU >= ``min_iou``."""
        entries = self.frames.get(frame, [])
        if not entries:
            return None
        ious = region_iou(crop_region(matrix, self.geometry.crop_size), np.stack([e.region for e in entries]))
        best = int(np.argmax(ious))
        return entries[best] if ious[best] >= self.min_iou else None

    def slot(self, frame: int, matrix: np.ndarray, crop: Callable[[], np.ndarray]) -> CacheEntry:
        """The entry serving a neighbour ``frame`` of a clip whose key crop is ``matrix``: a match, else a fallback."""
        entry = self.match(frame, matrix)
        if entry is None:
            self.stats.fallback += 1
            return self.exact(frame, matrix, crop, key=False)
        if np.array_equal(entry.matrix, matrix):
            self.stats.same_crop += 1
        else:
            self.stats.warped += 1
        return entry

    def pending(self) -> list[CacheEntry]:
        """Entries still waiting for the backbone, in insertion order."""
        return [e for entries in self.frames.values() for e in entries if e.features is None]

    def fill(self, entries: Sequence[CacheEntry], features: torch.Tensor) -> None:
        """Store ``features (N, D, h, w)`` for ``entries`` (the same order) and drop their pixels."""
        for e, f in zip(entries, features):
            e.features, e.pixels = f, None
        self.stats.backbone_crops += len(entries)

    def evict_before(self, frame: int) -> None:
        """Forget entries of frames before ``frame`` (clips already holding them keep their references)."""
        for f in [f for f in self.frames if f < frame]:
            del self.frames[f]

    def assemble(self, slots: Sequence[Sequence[CacheEntry]], key_matrices: Sequence[np.ndarray]) -> torch.Tensor:
        """Clip features ``(N, T, D, h, w)`` from ``N`` clips' ``T`` entries each, mapped onto the key crops.

        Every entry must have its features. Entries cropped exactly like the key crop are used as they are;
        the others are warped, all in one batched ``grid_sample``.
        """
        feats = [[e.features for e in row] for row in slots]
        todo = [(i, j) for i, row in enumerate(slots) for j, e in enumerate(row)
                if not np.array_equal(e.matrix, key_matrices[i])]
        if todo:
            src = torch.stack([slots[i][j].features for i, j in todo])  # (M, D, h, w)
            warped = warp_features(src, np.stack([key_matrices[i] for i, _ in todo]),
                                   np.stack([slots[i][j].matrix for i, j in todo]), self.geometry, self.padding)
            for (i, j), f in zip(todo, warped):
                feats[i][j] = f
        self.stats.clips += len(slots)
        return torch.stack([torch.stack(row) for row in feats])  # (N, T, D, h, w)
