"""Writing a SynthTrack dataset: names, splits, labeling pattern, parallel generation, manifest.

Layout (PoseTrack18's)::

    OUT_DIR/images/{train,val}/<seq>/<NNNNNN>.jpg       every frame, 0-based 6-digit names
    OUT_DIR/annotations/{train,val}/<seq>.json          one PoseTrack18 JSON per video
    OUT_DIR/synthtrack.json                             manifest, written last

``<seq>`` is ``SSSSSS_mpii_train`` for train and ``SSSSSS_mpii_test`` for val (like real PoseTrack val).
Train sequences are numbered from 1; val sequences from the next multiple of 100 plus 1 (``000101`` when
there are fewer than 100 train videos). Image ids are ``10^10 + SSSSSS * 10^4 + frame`` (``frame_id`` too),
annotation ids ``image_id * 100 + person index``; track ids count people in order of first appearance.

Video ``i`` of a split is drawn from ``SeedSequence([seed, split code, i])`` only, so the bytes do not depend
on the number of workers or on the other videos.
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from diffpose.data.dataset_root import INCOMPLETE, MANIFEST
from diffpose.data.images import opencv_before_fork
from diffpose.data.posetrack18 import categories_for, write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.errors import DiffPoseError
from diffpose.io_utils import atomic_write_bytes, atomic_write_json
from diffpose.keypoints import POSETRACK18
from diffpose.synth.presets import SYNTHTRACK_VERSION, SynthPreset
from diffpose.synth.video import simulate

SPLITS = ("train", "val")
SPLIT_CODE = {"train": 0, "val": 1}
SEQ_SUFFIX = {"train": "mpii_train", "val": "mpii_test"}


def sequence_numbers(split: str, n_train: int, n_val: int) -> list[int]:
    """The 6-digit sequence numbers of a split's videos."""
    if split == "train":
        return list(range(1, n_train + 1))
    first = 100 * math.ceil((n_train + 1) / 100) + 1
    return list(range(first, first + n_val))


def sequence_name(split: str, number: int) -> str:
    return f"{number:06d}_{SEQ_SUFFIX[split]}"


def image_id(number: int, frame: int) -> int:
    """PoseTrack18 image id ``1 * 10^10 + SSSSSS * 10^4 + FFFF`` (type 1 = mpii)."""
    return 10**10 + number * 10**4 + frame


def labeled_frames(split: str, frames: int, preset: SynthPreset) -> np.ndarray:
    """``(frames,)`` bool. Train: a centred run of ``train_labeled`` frames; val: every ``val_label_stride``-th."""
    mask = np.zeros(frames, dtype=bool)
    if split == "train":
        run = min(preset.train_labeled, frames)
        start = (frames - run) // 2
        mask[start: start + run] = True
    else:
        mask[:: preset.val_label_stride] = True
    return mask


@dataclass(frozen=True)
class VideoJob:
    out_dir: str
    preset: SynthPreset
    seed: int
    split: str
    index: int  # position in the split
    number: int  # 6-digit sequence number


@dataclass
class VideoSummary:
    split: str
    index: int
    name: str
    frames: int
    labeled: int
    persons: int
    joints: int
    occluded: int


def _assign_tracks(frames: list[Frame], owners: list[list[int]]) -> None:
    """Track id = rank of the person's first labeled appearance; annotation id = image_id * 100 + index."""
    track_of: dict[int, int] = {}
    for frame, who in zip(frames, owners):
        for i in who:
            track_of.setdefault(i, len(track_of))
        pairs = sorted(zip((track_of[i] for i in who), frame.persons), key=lambda p: p[0])
        frame.persons = [p for _, p in pairs]
        for k, (tid, person) in enumerate(pairs):
            person.track_id = tid
            person.id = frame.image_id * 100 + k


def generate_video(job: VideoJob) -> VideoSummary:
    """Render one video and write its JPEGs and PoseTrack18 JSON. Runs in a worker process."""
    preset = job.preset
    name = sequence_name(job.split, job.number)
    root = Path(job.out_dir)
    labeled = labeled_frames(job.split, preset.frames, preset)
    _, renders = simulate(preset, job.seed, SPLIT_CODE[job.split], job.index, preset.frames)
    frames: list[Frame] = []
    owners: list[list[int]] = []
    for r in renders:
        rel = f"images/{job.split}/{name}/{r.t:06d}.jpg"
        atomic_write_bytes(r.jpeg, root / rel)
        persons: list[Person] = [p for _, p in r.persons] if labeled[r.t] else []
        frames.append(Frame(
            file_name=rel, frame_index=r.t, image_id=image_id(job.number, r.t), is_labeled=bool(labeled[r.t]),
            persons=persons, ignore_regions=r.ignore_regions if labeled[r.t] else [], size=preset.image_size,
        ))  # fmt: skip
        owners.append([i for i, _ in r.persons] if labeled[r.t] else [])
    _assign_tracks(frames, owners)
    video = Video(name=name, frames=frames, layout=POSETRACK18, vid_id=f"{job.number:06d}",
                  categories=categories_for(POSETRACK18))
    write_posetrack18(video, root / "annotations" / job.split / f"{name}.json")
    people = [p for f in frames for p in f.persons]
    return VideoSummary(
        split=job.split, index=job.index, name=name, frames=preset.frames, labeled=int(labeled.sum()),
        persons=len(people), joints=int(sum(p.present.sum() for p in people)),
        occluded=int(sum(p.occluded.sum() for p in people if p.occluded is not None)),
    )  # fmt: skip


def generate(out_dir: str | Path, preset: SynthPreset, seed: int = 0, workers: int = 2,
             progress: bool = True) -> dict[str, Any]:
    """Generate the train and val splits of ``preset`` into ``out_dir``; returns the manifest (also written).

    ``workers`` processes render videos in parallel (1 = in this process); the output bytes are the same
    for any number of workers.
    """
    if seed < 0:
        raise DiffPoseError(f"expected a seed >= 0, got {seed}", field="--seed")
    out = Path(out_dir)
    n_val = preset.val_videos()
    jobs = [VideoJob(str(out), preset, seed, split, i, number)
            for split, n in (("train", preset.train_videos), ("val", n_val))
            for i, number in enumerate(sequence_numbers(split, preset.train_videos, n_val))]
    # written first, removed last: a SynthTrack output without a manifest is recognised as interrupted
    atomic_write_json({"dataset": "SynthTrack", "status": "generating"}, out / INCOMPLETE)
    bar = tqdm(total=len(jobs), desc="synthtrack", unit="video", disable=not progress)
    summaries: list[VideoSummary] = []
    if workers <= 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for job in jobs:
                summaries.append(generate_video(job))
                bar.update(1)
        finally:
            cv2.setNumThreads(threads)
    else:
        threads = cv2.getNumThreads()
        opencv_before_fork()  # the workers inherit a single-threaded OpenCV
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                try:
                    futures = [pool.submit(generate_video, job) for job in jobs]
                    for fut in as_completed(futures):
                        summaries.append(fut.result())
                        bar.update(1)
                except BaseException:  # an error, Ctrl-C or SIGTERM: stop the workers now, not after their videos
                    stop_pool(pool)
                    raise
        finally:
            cv2.setNumThreads(threads)
    bar.close()
    summaries.sort(key=lambda s: (SPLITS.index(s.split), s.index))
    manifest = {
        "dataset": "SynthTrack",
        "version": SYNTHTRACK_VERSION,
        "preset": preset.name,
        "seed": seed,
        "image_size": list(preset.image_size),
        "layout": "posetrack18",
        "splits": {split: _split_counts([s for s in summaries if s.split == split]) for split in SPLITS},
        "settings": preset.to_dict(),
    }
    atomic_write_json(manifest, out / MANIFEST, indent=2)
    (out / INCOMPLETE).unlink(missing_ok=True)
    return manifest


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the worker processes of ``pool`` and drop its queued jobs (``shutdown`` alone waits for running ones)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout=5)


def _split_counts(items: list[VideoSummary]) -> dict[str, Any]:
    return {
        "videos": len(items),
        "frames": sum(s.frames for s in items),
        "labeled_frames": sum(s.labeled for s in items),
        "persons": sum(s.persons for s in items),
        "joints": sum(s.joints for s in items),
        "occluded_joints": sum(s.occluded for s in items),
        "sequences": [s.name for s in items],
    }
