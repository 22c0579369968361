"""Person clips for training and testing: a key frame's person box crops the key frame and its neighbours.

* :func:`load_split` reads ``ROOT/annotations/<split>/*.json`` (PoseTrack18 layout, real or SynthTrack);
  image paths in the files are relative to ``ROOT``. The split must be one folder name, and every
  ``file_name`` must stay inside ``ROOT`` (no absolute path, no ``..``; checked lexically, so a symlinked
  ``images`` folder is fine: :func:`~diffpose.data.paths.confined`). A GT person box of negative width or
  height is refused naming the file (:func:`check_sequence`); a zero-size one is skipped, as before.
* A frame image whose size is far from the ``width`` / ``height`` its annotation states is refused when
  it is read (:func:`~diffpose.data.images.check_frame_size`).
* :class:`ClipDataset` yields one sample per (labelled key frame, person box). Boxes come from the ground
  truth (training, ``--boxes gt``) or from a detection file (testing). The box, enlarged by 25% to the crop
  aspect, defines **one affine transform shared by all frames of the clip**; neighbours at the configured
  offsets (default -2..+2) are clamped to the video's ends (the key frame repeats there).
* Augmentation (flip with joint swap, rotation, scale, shift, half-body, colour) is drawn for every read
  from a generator seeded by ``(seed, epoch, index)``: it differs between epochs, is identical across
  worker counts and restarts, so a resumed run sees exactly the data of an uninterrupted one.
* Heatmap targets and their visibility weights come from :class:`~diffpose.codec.HeatmapCodec`.

A sample is a dict of tensors: ``frames (T, 3, H, W)`` normalised RGB, ``heatmaps (J, Hh, Wh)``,
``weights (J,)``, ``keypoints (J, 2)`` crop pixels, ``occluded (J,)``, ``matrix (2, 3)`` image -> crop, and
integers ``video``, ``frame``, ``person`` (index into the frame's GT persons, -1 for detections),
plus ``box_score``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from diffpose.codec import HeatmapCodec
from diffpose.data.crops import IMAGENET_MEAN, IMAGENET_STD, crop_image, normalise, normalise_crop
from diffpose.data.dataset_root import check_dataset_root
from diffpose.data.detections import MIN_BOX_SIDE
from diffpose.data.images import check_frame_size, check_frames_exist, read_rgb
from diffpose.data.paths import confined, single_name
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.data.records import Detection, Video
from diffpose.data.transforms import (
    Augmentation,
    ClipAugment,
    CropBox,
    apply_affine,
    box_from_keypoints,
    colour_jitter,
    crop_matrix,
    draw_augment,
    half_body_box,
)
from diffpose.errors import DataFormatError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipDataset", "ClipItem", "FrameReader", "detection_items", "gt_items",
           "load_split", "normalise"]


def check_sequence(video: Video, root: str | Path, path: str | Path) -> None:
    """Refuse a sequence read from ``path`` (one video, frames in ``images`` order) whose frame names leave
    ``root`` or whose GT person boxes have negative width or height."""
    for i, frame in enumerate(video.frames):
        confined(root, frame.file_name, path, f"images[{i}].file_name", what="file_name")
        for p, person in enumerate(frame.persons):
            box = person.box
            if box is not None and (box[2] < 0 or box[3] < 0):
                who = f"annotations (id {person.id})" if person.id is not None else f"person {p} of images[{i}]"
                raise DataFormatError(f"person box has negative size ({box[2]:g} x {box[3]:g}); expected [x, y, w, "
                                      "h] with w, h >= 0", path, f"{who}.bbox")


def load_split(root: str | Path, split: str) -> list[Video]:
    """All videos of ``ROOT/annotations/<split>/*.json``, sorted by file name (see :func:`check_sequence`)."""
    single_name(split, root, "split", what="split")
    check_dataset_root(root, split)  # an interrupted SynthTrack output is refused, saying how to regenerate it
    folder = Path(root) / "annotations" / split
    if not folder.is_dir():
        raise DataFormatError(f"no annotation folder for split {split!r} (expected ROOT/annotations/{split}/*.json)",
                              folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataFormatError("no *.json annotation files", folder)
    videos = [read_posetrack18(f) for f in files]
    for video, f in zip(videos, files):
        check_sequence(video, root, f)
    return videos


class FrameReader:
    """Reads frames as RGB uint8 (:func:`~diffpose.data.images.read_rgb`) with a small LRU cache."""

    def __init__(self, root: str | Path, cache_size: int = 32):
        self.root = Path(root)
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size

    def __call__(self, file_name: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """The frame ``ROOT/file_name``; with ``size`` (the annotation's ``(W, H)``) checked against it."""
        if file_name in self.cache:
            self.cache.move_to_end(file_name)
            return self.cache[file_name]
        path = confined(self.root, file_name, what="file_name")
        image = read_rgb(path)  # (H, W, 3) uint8; gray, RGBA, 16-bit converted
        check_frame_size(image, size, path)
        self.cache[file_name] = image
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return image


@dataclass(frozen=True)
class ClipItem:
    """One sample: a person box in a key frame."""

    video: int
    frame: int
    person: int  # index in the frame's GT persons, -1 for a detection
    box: tuple[float, float, float, float]  # (x, y, w, h) image pixels
    score: float = 1.0


def gt_items(videos: list[Video], labeled_only: bool = True, min_joints: int = 1) -> list[ClipItem]:
    """One item per GT person with at least ``min_joints`` labelled joints in each labelled frame."""
    items = []
    for v, video in enumerate(videos):
        for f, frame in enumerate(video.frames):
            if labeled_only and not frame.is_labeled:
                continue
            for p, person in enumerate(frame.persons):
                if person.present.sum() < min_joints:
                    continue
                box = person.box if person.box is not None else box_from_keypoints(person.keypoints, person.present)
                if box is None or box[2] <= 0 or box[3] <= 0:  # zero size: skipped (negative: see check_sequence)
                    continue
                items.append(ClipItem(v, f, p, tuple(float(x) for x in box)))
    return items


def detection_items(videos: list[Video], detections: list[Detection], min_score: float = 0.0,
                    labeled_only: bool = True) -> list[ClipItem]:
    """One item per detection box (score >= ``min_score``) in each (labelled) frame, matched by image id."""
    by_image: dict[int | str, list[Detection]] = {}
    for d in detections:
        if d.category_id == 1 and d.score >= min_score and d.box[2] >= MIN_BOX_SIDE and d.box[3] >= MIN_BOX_SIDE:
            by_image.setdefault(d.image_id, []).append(d)
    items = []
    for v, video in enumerate(videos):
        for f, frame in enumerate(video.frames):
            if labeled_only and not frame.is_labeled:
                continue
            for d in by_image.get(frame.image_id, []):
                items.append(ClipItem(v, f, -1, tuple(float(x) for x in d.box), float(d.score)))
    return items


class ClipDataset(Dataset):
    """Clips of ``len(offsets)`` frames around each item's key frame, cropped with one shared transform.

    Args:
        videos: the split's videos (records).
        root: dataset root; frame paths in the records are relative to it.
        items: the samples (:func:`gt_items` or :func:`detection_items`).
        codec: heatmap codec; its ``input_size`` ``(W, H)`` is the crop size.
        offsets: frame offsets relative to the key frame, e.g. ``(-2, -1, 0, 1, 2)``.
        enlarge: box enlargement factor (1.25).
        augment: augmentation ranges, or None for testing.
        seed: base seed of the augmentation draws.
        check_files: check now that every frame image the clips need exists (``stat`` only), so that a
            half-downloaded dataset fails before training rather than in the middle of it.
    """

    def __init__(self, videos: list[Video], root: str | Path, items: list[ClipItem], codec: HeatmapCodec,
                 offsets: tuple[int, ...] = (-2, -1, 0, 1, 2), enlarge: float = 1.25,
                 augment: Augmentation | None = None, seed: int = 0, check_files: bool = True):
        if 0 not in offsets:
            raise DataFormatError(f"frame offsets {offsets} must contain 0 (the key frame)", field="data.frame_offsets")
        self.videos, self.items, self.codec = videos, items, codec
        self.offsets, self.enlarge, self.augment, self.seed = tuple(offsets), enlarge, augment, seed
        self.reader = FrameReader(root)
        self.epoch = 0
        if check_files:
            check_frames_exist(root, self.frame_names(), "these clips need")

    def frame_names(self) -> list[str]:
        """The file names of every frame some clip reads (key frames and clamped neighbours), with repeats."""
        names = []
        for item in self.items:
            frames = self.videos[item.video].frames
            last = len(frames) - 1
            names.extend(frames[min(max(item.frame + off, 0), last)].file_name for off in self.offsets)
        return names

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on the epoch (call before building each epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _draw(self, index: int) -> ClipAugment:
        if self.augment is None:
            return ClipAugment()
        return draw_augment(np.random.default_rng([self.seed, self.epoch, index]), self.augment)

    def geometry(self, index: int, aug: ClipAugment) -> np.ndarray:
        """The ``(2, 3)`` image -> crop matrix of sample ``index`` under augmentation ``aug``."""
        item = self.items[index]
        crop_w, crop_h = self.codec.input_size
        box = np.asarray(item.box)
        if aug.half_body and item.person >= 0:
            person = self.videos[item.video].frames[item.frame].persons[item.person]
            half = half_body_box(person.keypoints, person.present, self.videos[item.video].layout, aug.half_body,
                                 self.augment.half_body_min_joints if self.augment else 8)
            box = half if half is not None else box
        crop = CropBox.from_xywh(box, crop_w / crop_h, self.enlarge).scaled(aug.scale)
        crop = crop.shifted(aug.shift[0] * crop.w, aug.shift[1] * crop.h)
        return crop_matrix(crop, (crop_w, crop_h), aug.rotation, aug.flip)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        video = self.videos[item.video]
        aug = self._draw(index)
        mat = self.geometry(index, aug)
        crop_w, crop_h = self.codec.input_size
        last = len(video.frames) - 1
        frames = []
        for off in self.offsets:
            frame = video.frames[min(max(item.frame + off, 0), last)]
            patch = crop_image(self.reader(frame.file_name, frame.size), mat, (crop_w, crop_h))  # (H, W, 3) uint8
            if self.augment is None:
                frames.append(normalise_crop(patch))  # (3, H, W), as diffpose infer crops
            else:
                frames.append(normalise(colour_jitter(patch.astype(np.float32) / 255.0, aug)))  # (3, H, W)
        num_joints = video.layout.num_joints
        keypoints = np.zeros((num_joints, 2))
        visible = np.zeros(num_joints, dtype=bool)
        occluded = np.zeros(num_joints, dtype=bool)
        if item.person >= 0:
            person = video.frames[item.frame].persons[item.person]
            keypoints = apply_affine(mat, person.keypoints)  # (J, 2) crop pixels
            visible = person.present.copy()
            if person.occluded is not None:
                occluded = person.occluded.copy()
            if aug.flip:
                perm = video.layout.flip_permutation()
                keypoints, visible, occluded = keypoints[perm], visible[perm], occluded[perm]
        heatmaps, weights = self.codec.encode(keypoints[None].astype(np.float32), visible[None])
        return {
            "frames": torch.from_numpy(np.stack(frames)),  # (T, 3, H, W)
            "heatmaps": torch.as_tensor(heatmaps[0], dtype=torch.float32),  # (J, Hh, Wh)
            "weights": torch.as_tensor(weights[0], dtype=torch.float32),  # (J,)
            "keypoints": torch.from_numpy(keypoints.astype(np.float32)),  # (J, 2)
            "occluded": torch.from_numpy(occluded),
            "matrix": torch.from_numpy(mat.astype(np.float64)),  # (2, 3) image -> crop
            "video": torch.tensor(item.video),
            "frame": torch.tensor(item.frame),
            "person": torch.tensor(item.person),
            "box_score": torch.tensor(item.score, dtype=torch.float32),
        }
