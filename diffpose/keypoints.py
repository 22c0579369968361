"""Keypoint conventions: joint layouts, skeletons, flip pairs and the maps between them.

Everything that says which joint sits at which index lives here, once.

Conventions (stated once for the whole package, tested in ``tests/core/test_keypoints.py``):

* **Coordinates** are ``(x, y)`` in pixels of the full image, x to the right, y down.
  ``keypoints[..., 0]`` is x, ``keypoints[..., 1]`` is y.
* **Pixel centres** sit at integer coordinates: pixel ``(col, row)`` covers
  ``[col - 0.5, col + 0.5) x [row - 0.5, row + 0.5)``, so the centre of the top-left pixel is ``(0, 0)``.
  This is the convention of OpenCV's ``warpAffine`` and of mmpose/DCPose heatmaps.
* **Sizes** are written ``(W, H)`` when a tuple names "width, height" (e.g. an image size passed to
  OpenCV) and ``(H, W)`` for array shapes. Every function says which.
* **Boxes** are ``(x, y, w, h)`` with ``(x, y)`` the top-left corner (COCO and PoseTrack18 ``bbox`` /
  ``bbox_head``). PoseTrack17 head boxes are corners ``x1, y1, x2, y2`` and are converted on read.
* **Visibility** ``v`` is kept as the file gives it. PoseTrack18 ground truth uses ``v in {0, 1}``
  (1 = labelled), COCO uses ``{0: not labelled, 1: labelled but not visible, 2: labelled and visible}``,
  prediction files put the joint *score* in the ``v`` slot. Whether a joint exists at all is a separate
  boolean ``present``: in PoseTrack18 a joint is absent iff it is exactly ``(0, 0, 0)`` (poseval's rule),
  in PoseTrack17 iff no point with its id is listed.
* **Occluded** is our own per-joint flag (SynthTrack): the joint is labelled at its true position but
  hidden in the pixels. Stored in PoseTrack18 files under the annotation key ``keypoints_occluded``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """A joint layout: names in index order, a skeleton and left/right flip pairs (0-based)."""

    name: str
    joints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``perm`` such that ``kp_flipped = kp[perm]`` swaps left and right joints."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


# --------------------------------------------------------------------------------------------------
# PoseTrack18 / PoseTrack21: COCO order with the eyes replaced by head_bottom and head_top.
# The ears (3, 4) are never labelled in PoseTrack; they are placeholders.
# --------------------------------------------------------------------------------------------------
POSETRACK18_JOINTS = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# The skeleton as PoseTrack18's ``categories[0].skeleton`` writes it: 1-based, copied from COCO.
POSETRACK18_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

_COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

POSETRACK18 = Layout(
    name="posetrack18",
    joints=POSETRACK18_JOINTS,
    skeleton=tuple((a - 1, b - 1) for a, b in POSETRACK18_SKELETON_1BASED),
    # head_bottom / head_top are on the midline: they do not flip (unlike COCO's eyes).
    flip_pairs=_COCO_FLIP_PAIRS[1:],
)

# Joints PoseTrack never labels (ears).
POSETRACK18_UNLABELED = (3, 4)

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

COCO = Layout(
    name="coco",
    joints=COCO_JOINTS,
    skeleton=POSETRACK18.skeleton,
    flip_pairs=_COCO_FLIP_PAIRS,
)

# --------------------------------------------------------------------------------------------------
# PoseTrack17 / poseval: 15 joints, LSP-style ids plus nose and head_top (poseval ``Joint``).
# --------------------------------------------------------------------------------------------------
POSETRACK17_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "nose", "head_top",
)  # fmt: skip

POSETRACK17 = Layout(
    name="posetrack17",
    joints=POSETRACK17_JOINTS,
    skeleton=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (9, 10), (10, 11),
              (8, 12), (9, 12), (12, 13), (13, 14), (2, 8), (3, 9)),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
)  # fmt: skip

# poseval names PoseTrack18's ``head_bottom`` "neck"; otherwise the names agree.
POSETRACK18_NAME_OF_POSEVAL = {
    name: ("head_bottom" if name == "neck" else name) for name in POSETRACK17_JOINTS
}

# ``kp15 = kp17[POSEVAL_FROM_POSETRACK18]``: poseval joint i is PoseTrack18 joint POSEVAL_FROM_POSETRACK18[i].
POSEVAL_FROM_POSETRACK18 = np.array(
    [POSETRACK18_JOINTS.index(POSETRACK18_NAME_OF_POSEVAL[n]) for n in POSETRACK17_JOINTS]
)
# The inverse: PoseTrack18 joint k is poseval joint POSETRACK18_TO_POSEVAL[k] (-1 for the ears).
POSETRACK18_TO_POSEVAL = np.full(len(POSETRACK18_JOINTS), -1)
POSETRACK18_TO_POSEVAL[POSEVAL_FROM_POSETRACK18] = np.arange(len(POSETRACK17_JOINTS))

# The paper-table groups over poseval joints (poseval ``getCum``). Total = mean of the 15 joints.
POSEVAL_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (14, 12, 13),  # head_top, neck, nose
    "Shoulder": (8, 9),
    "Elbow": (7, 10),
    "Wrist": (6, 11),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
GROUP_SHORT_NAMES = {
    "Head": "Head", "Shoulder": "Shou", "Elbow": "Elb", "Wrist": "Wri",
    "Hip": "Hip", "Knee": "Knee", "Ankle": "Ankl", "Total": "Total",
}  # fmt: skip

# --------------------------------------------------------------------------------------------------
# MPII: 16 joint ids (used by the Bonn multi-person sample, which labels 14 of them).
# --------------------------------------------------------------------------------------------------
MPII_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip

MPII = Layout(
    name="mpii",
    joints=MPII_JOINTS,
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
              (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
)  # fmt: skip

# MPII id -> PoseTrack18 index, for the joints both have (upper_neck is PoseTrack's head_bottom).
POSETRACK18_FROM_MPII: dict[int, int] = {
    0: POSETRACK18_JOINTS.index("right_ankle"),
    1: POSETRACK18_JOINTS.index("right_knee"),
    2: POSETRACK18_JOINTS.index("right_hip"),
    3: POSETRACK18_JOINTS.index("left_hip"),
    4: POSETRACK18_JOINTS.index("left_knee"),
    5: POSETRACK18_JOINTS.index("left_ankle"),
    8: POSETRACK18_JOINTS.index("head_bottom"),
    9: POSETRACK18_JOINTS.index("head_top"),
    10: POSETRACK18_JOINTS.index("right_wrist"),
    11: POSETRACK18_JOINTS.index("right_elbow"),
    12: POSETRACK18_JOINTS.index("right_shoulder"),
    13: POSETRACK18_JOINTS.index("left_shoulder"),
    14: POSETRACK18_JOINTS.index("left_elbow"),
    15: POSETRACK18_JOINTS.index("left_wrist"),
}

# OKS sigmas for PoseTrack18 joints (mmpose), used for OKS-based matching (tracking, NMS).
POSETRACK18_OKS_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
     0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)  # fmt: skip

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (POSETRACK18, COCO, POSETRACK17, MPII)
}


def layout_named(name: str) -> Layout:
    """The layout called ``name`` (``posetrack18``, ``coco``, ...); a ``KeyError`` naming the choices otherwise."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def labelled_joints(layout: Layout) -> np.ndarray:
    """``(J,)`` bool: the joints a layout's annotations can hold (PoseTrack18 never labels the ears)."""
    mask = np.ones(layout.num_joints, dtype=bool)
    if layout is POSETRACK18:
        mask[list(POSETRACK18_UNLABELED)] = False
    return mask


def joint_map(src: Layout, dst: Layout) -> np.ndarray:
    """``(J_dst,)`` int: for each joint of ``dst``, the index of the joint of ``src`` with the same name, or -1
    (``src`` lacks it: COCO has no ``head_bottom`` / ``head_top``, PoseTrack18 no eyes)."""
    return np.array([src.joints.index(name) if name in src.joints else -1 for name in dst.joints])


def convert_layout(keypoints: np.ndarray, scores: np.ndarray, src: Layout, dst: Layout
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One person's ``keypoints (J_src, 2)`` and ``scores (J_src,)`` in ``dst``'s joint order, matched by name.

    Returns ``keypoints (J_dst, 2)``, ``scores (J_dst,)`` and ``present (J_dst,)`` bool; a joint ``src`` lacks, or
    one ``dst``'s annotations never hold (:func:`labelled_joints`), is absent: ``(0, 0)`` with score 0.
    """
    index = joint_map(src, dst)
    present = (index >= 0) & labelled_joints(dst)
    safe = np.maximum(index, 0)
    kp = np.where(present[:, None], np.asarray(keypoints, dtype=np.float64)[safe], 0.0)  # (J_dst, 2)
    sc = np.where(present, np.asarray(scores, dtype=np.float64)[safe], 0.0)  # (J_dst,)
    return kp, sc, present


def layout_from_names(names: list[str] | tuple[str, ...]) -> Layout | None:
    """The known layout whose joint names are exactly ``names`` (in order), or None."""
    for layout in LAYOUTS.values():
        if tuple(names) == layout.joints:
            return layout
    return None


def posetrack18_to_poseval(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Select and reorder a 17-long PoseTrack18 joint ``axis`` into poseval's 15 joints.

    For keypoints shaped ``(..., 17, 2)`` pass ``axis=-2``.
    """
    return np.take(np.asarray(values), POSEVAL_FROM_POSETRACK18, axis=axis)
