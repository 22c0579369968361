"""SynthTrack presets: every knob of the generator in one frozen dataclass, three named settings.

Sizes are image pixels (person heights are divided by the video's mean camera zoom, so they hold on
average); an image size is written ``(W, H)``. Counts are per video unless
the field says otherwise. ``--videos N`` and ``--frames F`` on the command line replace
``train_videos`` and ``frames``; the number of val videos follows :func:`val_videos_for`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from diffpose.errors import DiffPoseError

# Bumped whenever the same (preset, seed) would give different bytes.
SYNTHTRACK_VERSION = "1.1"  # 1.1: shirts have a front (neckline, chest print), eyes on smaller faces


@dataclass(frozen=True)
class SynthPreset:
    """All generator settings. Ranges ``(lo, hi)`` are sampled uniformly per video or per person."""

    name: str
    image_size: tuple[int, int] = (384, 288)  # (W, H) of every frame
    train_videos: int = 48  # videos in the train split
    val_ratio: float = 0.25  # val videos = max(1, round(train_videos * val_ratio)) unless val_count is set
    val_count: int = 0  # val videos, when > 0 (then val_ratio is not used)
    frames: int = 36  # frames per video
    train_labeled: int = 24  # train: this many consecutive labeled frames, centred in the video
    val_label_stride: int = 4  # val: every n-th frame is labeled, starting at frame 0
    people: tuple[int, int] = (2, 5)  # annotated people per video (inclusive)
    height_px: tuple[float, float] = (80.0, 200.0)  # person height (head top to sole) in pixels
    crowd_prob: float = 0.35  # chance of a group of tiny unannotated people (with an ignore region)
    occluder_events: float = 2.5  # mean number of occluders passing in front of a person, per video
    occluder_scale: tuple[float, float] = (0.25, 0.6)  # occluder size relative to the person it passes
    blur_burst_prob: float = 0.03  # per-frame chance that a burst of 1-3 heavily blurred frames starts
    dropout_prob: float = 0.015  # per-frame chance of a 1-2 frame dropout (dark frame or torn rows)
    camera_shake_px: float = 1.5  # amplitude of the smooth hand-held shake
    camera_pan_px: float = 40.0  # largest pan over a whole video
    zoom_range: tuple[float, float] = (0.92, 1.12)  # camera zoom at the start and end of a video
    noise_sigma: tuple[float, float] = (2.0, 6.0)  # sensor noise std in 8-bit levels
    jpeg_quality: tuple[int, int] = (70, 92)  # JPEG quality per video (+-4 per frame)
    distractors: tuple[int, int] = (8, 16)  # limb-like distractors painted into the background
    clutter: tuple[int, int] = (6, 12)  # other background objects (boxes, balls, posters)
    label_margin_px: float = 12.0  # joints up to this far outside the image stay labeled (as in PoseTrack)
    occlusion_radius_px: int = 2  # a joint is occluded iff >= half of this disc is covered in front of it

    def val_videos(self) -> int:
        return self.val_count if self.val_count > 0 else val_videos_for(self, self.train_videos)

    def with_overrides(self, videos: int | None = None, frames: int | None = None,
                       val_videos: int | None = None) -> SynthPreset:
        """A copy with ``train_videos`` / ``frames`` / the val count replaced (``None`` keeps the preset's value).

        Video ``i`` of a split is the same for any number of videos in the split (its draws are seeded by
        ``(seed, split, i)``), so a larger dataset holds a smaller one's videos.
        """
        changes: dict[str, int] = {}
        if videos is not None:
            if videos < 1:
                raise DiffPoseError(f"expected at least 1 video, got {videos}", field="--videos")
            changes["train_videos"] = videos
        if val_videos is not None:
            if val_videos < 1:
                raise DiffPoseError(f"expected at least 1 val video, got {val_videos}", field="--val-videos")
            changes["val_count"] = val_videos
        if frames is not None:
            if not 1 <= frames <= 9999:
                raise DiffPoseError(f"expected 1 to 9999 frames (image ids keep 4 digits), got {frames}",
                                    field="--frames")
            changes["frames"] = frames
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (tuples become lists), written into the manifest."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def val_videos_for(preset: SynthPreset, train_videos: int) -> int:
    """Number of val videos that goes with ``train_videos`` train videos (at least 1)."""
    return max(1, int(math.floor(train_videos * preset.val_ratio + 0.5)))


def easy() -> SynthPreset:
    """Few, large people; little occlusion, blur or noise."""
    return SynthPreset(
        name="easy",
        train_videos=32,
        people=(1, 3),
        height_px=(110.0, 200.0),
        crowd_prob=0.1,
        occluder_events=1.0,
        blur_burst_prob=0.0,
        dropout_prob=0.0,
        camera_shake_px=0.5,
        camera_pan_px=20.0,
        zoom_range=(0.97, 1.05),
        noise_sigma=(1.0, 3.0),
        jpeg_quality=(85, 95),
        distractors=(3, 6),
        clutter=(3, 6),
    )


def default() -> SynthPreset:
    """The benchmark: sized for the ``tiny`` model preset to learn on a CPU."""
    return SynthPreset(name="default")


def hard() -> SynthPreset:
    """More and smaller people, frequent occluders, blur bursts, dropouts and strong compression."""
    return SynthPreset(
        name="hard",
        people=(3, 7),
        height_px=(60.0, 220.0),
        crowd_prob=0.6,
        occluder_events=4.0,
        occluder_scale=(0.3, 0.8),
        blur_burst_prob=0.06,
        dropout_prob=0.03,
        camera_shake_px=3.0,
        camera_pan_px=60.0,
        zoom_range=(0.85, 1.2),
        noise_sigma=(4.0, 10.0),
        jpeg_quality=(45, 75),
        distractors=(14, 24),
        clutter=(10, 16),
    )


PRESETS = {"easy": easy, "default": default, "hard": hard}


def get_preset(name: str) -> SynthPreset:
    """The preset called ``name``; a :class:`DiffPoseError` lists the known names otherwise."""
    if name not in PRESETS:
        raise DiffPoseError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}", field="--preset")
    return PRESETS[name]()
