"""Crop geometry: person box -> affine transform into the model's input crop, and augmentation draws.

One affine transform is shared by every frame of a clip (the key frame's enlarged box crops the key frame
and its neighbours, method §1), so a point that does not move in the image lands on the same crop pixel in
every frame.

Convention (see :mod:`diffpose.keypoints`): pixel centres at integer coordinates in the image and in the
crop. A crop of ``(W, H)`` pixels spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; the box
``(cx +- bw/2, cy +- bh/2)`` maps onto exactly that span, so with rotation ``r`` (degrees, counter-clockwise
in the image as seen on screen) and an optional horizontal flip::

    [u, v] = R(r) @ ([x, y] - [cx, cy]) * [W / bw, H / bh] + [W / 2 - 0.5, H / 2 - 0.5]
    flip:   u -> W - 1 - u

The same 2x3 matrix drives ``cv2.warpAffine`` (which samples source pixel centres at integer coordinates)
and the keypoints, so images and labels cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose.keypoints import Layout


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned crop region in image pixels: centre ``(cx, cy)`` and size ``(w, h)``."""

    cx: float
    cy: float
    w: float
    h: float

    @classmethod
    def from_xywh(cls, box: np.ndarray, aspect: float, enlarge: float = 1.25) -> CropBox:
        """Centre of ``box = (x, y, w, h)``, grown to the crop aspect ``W / H`` then by ``enlarge``."""
        x, y, w, h = (float(v) for v in box)
        w, h = max(w, 1.0), max(h, 1.0)
        if w > aspect * h:
            h = w / aspect
        else:
            w = h * aspect
        return cls(x + box[2] / 2.0, y + box[3] / 2.0, w * enlarge, h * enlarge)

    def scaled(self, factor: float) -> CropBox:
        return CropBox(self.cx, self.cy, self.w * factor, self.h * factor)

    def shifted(self, dx: float, dy: float) -> CropBox:
        return CropBox(self.cx + dx, self.cy + dy, self.w, self.h)


def box_from_keypoints(keypoints: np.ndarray, present: np.ndarray, scale: float = 1.3) -> np.ndarray | None:
    """The tight box of the present joints scaled about its centre (PoseTrack's rule): ``(x, y, w, h)``."""
    if not present.any():
        return None
    pts = keypoints[present]  # (N, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, size = (lo + hi) / 2, (hi - lo) * scale
    return np.array([centre[0] - size[0] / 2, centre[1] - size[1] / 2, size[0], size[1]])


def crop_matrix(box: CropBox, crop_size: tuple[int, int], rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """The ``(2, 3)`` affine matrix mapping image ``(x, y)`` to crop ``(u, v)``; ``crop_size`` is ``(W, H)``."""
    width, height = crop_size
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    # image y points down, so a counter-clockwise on-screen rotation uses [[c, s], [-s, c]]
    rot = np.array([[cos, sin], [-sin, cos]])
    scale = np.diag([width / box.w, height / box.h])
    lin = scale @ rot  # (2, 2)
    offset = np.array([width / 2.0 - 0.5, height / 2.0 - 0.5]) - lin @ np.array([box.cx, box.cy])
    mat = np.concatenate([lin, offset[:, None]], axis=1)  # (2, 3)
    if flip:
        mat = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([mat, [0, 0, 1]])
    return mat


def apply_affine(mat: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points with a ``(2, 3)`` matrix."""
    return points @ mat[:, :2].T + mat[:, 2]


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` inverse of a ``(2, 3)`` affine matrix (crop -> image)."""
    full = np.vstack([mat, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation ranges (DCPose-style; method §4). ``p_*`` are probabilities."""

    p_flip: float = 0.5
    rotation_std: float = 30.0  # degrees, clipped to +-2 std, applied with p_rotate
    p_rotate: float = 0.6
    scale_std: float = 0.25  # box scale ~ clip(N(1, std), 1 - std, 1 + std)
    p_half_body: float = 0.3
    half_body_min_joints: int = 8
    brightness: float = 0.25  # multiplicative jitter range
    contrast: float = 0.25
    saturation: float = 0.25
    shift: float = 0.05  # centre jitter, fraction of the box size


@dataclass(frozen=True)
class ClipAugment:
    """One draw of augmentation for one clip (shared by all its frames)."""

    flip: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    half_body: str = ""  # "", "upper" or "lower"
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


def draw_augment(rng: np.random.Generator, aug: Augmentation) -> ClipAugment:
    """A fresh augmentation draw; call it every time a sample is read."""
    rot = 0.0
    if rng.random() < aug.p_rotate:
        rot = float(np.clip(rng.normal(0, aug.rotation_std), -2 * aug.rotation_std, 2 * aug.rotation_std))
    scale = float(np.clip(rng.normal(1.0, aug.scale_std), 1 - aug.scale_std, 1 + aug.scale_std))
    half = ""
    if rng.random() < aug.p_half_body:
        half = "upper" if rng.random() < 0.5 else "lower"
    return ClipAugment(
        flip=bool(rng.random() < aug.p_flip),
        rotation=rot,
        scale=scale,
        shift=(float(rng.uniform(-aug.shift, aug.shift)), float(rng.uniform(-aug.shift, aug.shift))),
        half_body=half,
        brightness=float(rng.uniform(1 - aug.brightness, 1 + aug.brightness)),
        contrast=float(rng.uniform(1 - aug.contrast, 1 + aug.contrast)),
        saturation=float(rng.uniform(1 - aug.saturation, 1 + aug.saturation)),
    )


UPPER_BODY = ("nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist")


def half_body_box(keypoints: np.ndarray, present: np.ndarray, layout: Layout, part: str,
                  min_joints: int) -> np.ndarray | None:
    """Box of the upper or lower body joints (scaled x1.5), or None if too few joints are present."""
    if present.sum() <= min_joints:
        return None
    upper = np.array([n in UPPER_BODY for n in layout.joints])
    sel = present & (upper if part == "upper" else ~upper)
    if sel.sum() < 2:
        return None
    return box_from_keypoints(keypoints, sel, scale=1.5)


def colour_jitter(image: np.ndarray, a: ClipAugment) -> np.ndarray:
    """Brightness, contrast and saturation jitter on an ``(H, W, 3)`` float32 RGB image in [0, 1]."""
    out = image * a.brightness
    mean = out.mean()
    out = (out - mean) * a.contrast + mean
    grey = out.mean(axis=2, keepdims=True)
    out = (out - grey) * a.saturation + grey
    return np.clip(out, 0.0, 1.0)
