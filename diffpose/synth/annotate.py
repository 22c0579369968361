"""Ground truth from the rendered frame: which joints are labeled, which are occluded, boxes, ignore regions.

Rules (each one is tested in ``tests/synth/test_synth.py``):

* **Labeled.** Every joint except the ears (never labeled in PoseTrack) is labeled with ``v = 1`` at its
  true position, occluded or not, as long as it lies within ``margin`` pixels of the image (PoseTrack also
  has joints a little outside the image, e.g. y = -24.9). Joints further out are absent, ``(0, 0, 0)``.
* **Annotated.** A person is annotated in a labeled frame iff at least one labelable joint lies inside the
  image; people entirely outside are not.
* **Occluded.** A labeled joint inside the image is occluded iff at least half of the pixels within
  ``radius`` of it (the disc around its pixel, clipped to the image) show something painted *after* all of
  the joint's own body parts (:data:`diffpose.synth.render.JOINT_PARTS`): an occluder, torn rows, another
  person in front, or one of the person's own limbs in front. It is read off the canvas ``order`` map.
  Joints outside the image are never flagged.
* **Person box** ``(x, y, w, h)``: the tight box of the 15 labelable joints' true positions (including
  joints outside the image), scaled x1.3 about its centre (PoseTrack's rule).
* **Head box** ``(x, y, w, h)``: the bounding box of the drawn head ellipse together with the nose,
  head_bottom and head_top, so it always contains the three head joints.
* Coordinates are rounded to 0.01 px first; boxes are rounded outwards to 0.01 px.
"""

from __future__ import annotations

import numpy as np

from diffpose.data.records import Person
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED
from diffpose.synth.render import JOINT_PARTS, HeadEllipse

LABELABLE = np.ones(POSETRACK18.num_joints, dtype=bool)
LABELABLE[list(POSETRACK18_UNLABELED)] = False
HEAD_JOINTS = tuple(POSETRACK18.index(n) for n in ("nose", "head_bottom", "head_top"))
BOX_SCALE = 1.3
COORD_DECIMALS = 2  # coordinates are written to 0.01 px


def joint_orders(part_orders: np.ndarray) -> np.ndarray:
    """``(17,)`` int: for each joint the latest draw order among its own parts (0 if none was drawn)."""
    return np.array([max((int(part_orders[p]) for p in parts), default=0) for parts in JOINT_PARTS], dtype=np.int64)


def inside_image(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(J,)`` bool: the joint ``(J, 2)`` falls on a pixel of a ``(W, H)`` image (pixel centres at integers)."""
    w, h = size
    return (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)


def labeled_joints(xy: np.ndarray, size: tuple[int, int], margin: float) -> np.ndarray:
    """``(J,)`` bool: labelable and within ``margin`` pixels of the ``(W, H)`` image."""
    w, h = size
    near = (xy[:, 0] >= -0.5 - margin) & (xy[:, 0] < w - 0.5 + margin) & \
        (xy[:, 1] >= -0.5 - margin) & (xy[:, 1] < h - 0.5 + margin)
    return near & LABELABLE


def disc(radius: int) -> np.ndarray:
    """``(K, 2)`` integer ``(dx, dy)`` offsets with ``dx^2 + dy^2 <= radius^2``."""
    r = int(radius)
    d = np.arange(-r, r + 1)
    dx, dy = np.meshgrid(d, d, indexing="xy")
    keep = dx * dx + dy * dy <= r * r
    return np.stack([dx[keep], dy[keep]], axis=1)  # (K, 2)


def occlusion_flags(order: np.ndarray, xy: np.ndarray, own_order: np.ndarray, check: np.ndarray,
                    radius: int) -> np.ndarray:
    """``(J,)`` bool occlusion flags from the canvas ``order`` map ``(H, W)``.

    Joint ``j`` (where ``check[j]``) is occluded iff at least half of the in-image pixels of the disc of
    ``radius`` around its pixel have ``order > own_order[j]``, i.e. were painted over its own parts.
    """
    h, w = order.shape
    flags = np.zeros(len(xy), dtype=bool)
    idx = np.flatnonzero(check)
    if len(idx) == 0:
        return flags
    px = np.floor(xy[idx] + 0.5).astype(np.int64)[:, None, :] + disc(radius)[None]  # (N, K, 2) pixel (col, row)
    ok = (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)  # (N, K)
    cols, rows = np.clip(px[..., 0], 0, w - 1), np.clip(px[..., 1], 0, h - 1)
    covered = (order[rows, cols] > own_order[idx, None]) & ok  # (N, K)
    n_ok = ok.sum(axis=1)
    flags[idx] = (n_ok > 0) & (2 * covered.sum(axis=1) >= n_ok)
    return flags


def keypoint_box(xy: np.ndarray, mask: np.ndarray, scale: float = BOX_SCALE) -> np.ndarray:
    """``(4,)`` box ``(x, y, w, h)``: the tight box of ``xy[mask]`` scaled by ``scale`` about its centre."""
    pts = xy[mask]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0 * scale
    return np.concatenate([centre - half, 2.0 * half])


def head_box(centre: np.ndarray, half_width: float, half_height: float, up: np.ndarray,
             head_points: np.ndarray) -> np.ndarray:
    """``(4,)`` box ``(x, y, w, h)`` around an ellipse (half-axes across / along unit ``up``) and ``head_points``
    ``(K, 2)``."""
    ux, uy = float(up[0]), float(up[1])
    ex = np.hypot(half_width * uy, half_height * ux)
    ey = np.hypot(half_width * ux, half_height * uy)
    lo = np.minimum(centre - [ex, ey], head_points.min(axis=0))
    hi = np.maximum(centre + [ex, ey], head_points.max(axis=0))
    return np.concatenate([lo, hi - lo])


def round_box_out(box: np.ndarray, decimals: int = COORD_DECIMALS) -> np.ndarray:
    """``(x, y, w, h)`` rounded outwards to ``decimals`` so that it still contains what it contained."""
    k = 10.0**decimals
    lo = np.floor(box[:2] * k) / k
    hi = np.ceil((box[:2] + box[2:]) * k) / k
    return np.concatenate([lo, np.round(hi - lo, decimals)])


def annotate_person(xy: np.ndarray, own_order: np.ndarray, head: HeadEllipse,
                    order: np.ndarray, margin: float, radius: int) -> Person | None:
    """The ground truth :class:`Person` for one drawn person, or ``None`` when it is entirely outside the image.

    Args:
        xy: ``(17, 2)`` true joint positions in image pixels.
        own_order: ``(17,)`` from :func:`joint_orders`.
        head: ``(centre (2,), half_width, half_height, up (2,))`` of the drawn head ellipse.
        order: the canvas ``order`` map ``(H, W)`` after everything was drawn.
    """
    size = (order.shape[1], order.shape[0])
    xy = np.round(xy, COORD_DECIMALS)
    inside = inside_image(xy, size)
    if not (inside & LABELABLE).any():
        return None
    present = labeled_joints(xy, size, margin)
    occluded = occlusion_flags(order, xy, own_order, present & inside, radius)
    return Person(
        keypoints=np.where(present[:, None], xy, 0.0),  # (J, 2)
        visibility=present.astype(np.float64),
        present=present,
        scores=None,
        box=round_box_out(keypoint_box(xy, LABELABLE)),
        head_box=round_box_out(head_box(head[0], head[1], head[2], head[3], xy[list(HEAD_JOINTS)])),
        occluded=occluded,
    )


def ignore_region(xy: np.ndarray, pad: float, size: tuple[int, int]) -> np.ndarray | None:
    """A rectangle ``(4, 2)`` around points ``(N, 2)`` padded by ``pad`` px and clipped to the ``(W, H)`` image
    (``None`` if it misses the image). Used around groups of tiny people that are not annotated."""
    w, h = size
    lo = np.maximum(xy.min(axis=0) - pad, [0.0, 0.0])
    hi = np.minimum(xy.max(axis=0) + pad, [w - 1.0, h - 1.0])
    if (hi <= lo).any():
        return None
    return np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
