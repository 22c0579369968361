"""Drawing one person: body parts as shaded textured shapes, painted back to front.

A person is 17 parts (torso, neck, head with hair, face, an optional hat, and three segments per limb).
Front and back look different, as they do on real people, so that left and right can be told apart: the face
(with eyes) shows only from the front, the back of the head is hair, and a shirt shows its neckline and chest
print only from the front.
Each part gets a depth from the figure's 3D points (:func:`diffpose.synth.figure.project`) and the parts
are painted in order of increasing depth, so a near arm covers the torso and the torso covers the far arm;
a face turned away from the camera is painted before the back of the head and disappears behind it.
People are painted one after the other, far to near, by the caller.

:data:`JOINT_PARTS` says on which parts' surface each joint lies. A joint is *occluded* when the pixels
around it show something painted after all of its own parts (see :mod:`diffpose.synth.annotate`).
"""

from __future__ import annotations

import cv2
import numpy as np

from diffpose.keypoints import POSETRACK18
from diffpose.synth.appearance import Appearance, Material
from diffpose.synth.figure import FACE_CENTRE, HEAD_CENTRE, L_HAND, L_TOE, NECK_BASE, PELVIS, R_HAND, R_TOE, BodyShape
from diffpose.synth.figure import J as JOINT
from diffpose.synth.raster import Canvas, Field, capsule, ellipse, lambert, torso

PARTS = (
    "torso", "neck", "head", "face", "hat",
    "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot",
)  # fmt: skip
PART = {name: i for i, name in enumerate(PARTS)}
NUM_PARTS = len(PARTS)

# (part, point a, point b, BodyShape radius field at a, radius at b relative to a)
_LIMBS = []
for _s, _side in (("l", "left"), ("r", "right")):
    _LIMBS += [
        (f"{_s}_upper_arm", JOINT[f"{_side}_shoulder"], JOINT[f"{_side}_elbow"], "r_upper_arm", 0.85),
        (f"{_s}_forearm", JOINT[f"{_side}_elbow"], JOINT[f"{_side}_wrist"], "r_forearm", 0.75),
        (f"{_s}_hand", JOINT[f"{_side}_wrist"], L_HAND if _s == "l" else R_HAND, "r_hand", 1.15),
        (f"{_s}_thigh", JOINT[f"{_side}_hip"], JOINT[f"{_side}_knee"], "r_thigh", 0.72),
        (f"{_s}_shin", JOINT[f"{_side}_knee"], JOINT[f"{_side}_ankle"], "r_shin", 0.7),
        (f"{_s}_foot", JOINT[f"{_side}_ankle"], L_TOE if _s == "l" else R_TOE, "r_foot", 0.9),
    ]


def _joint_parts() -> tuple[tuple[int, ...], ...]:
    own: dict[str, tuple[str, ...]] = {
        "nose": ("face",),
        "head_bottom": ("torso", "neck", "head", "face", "hat"),
        "head_top": ("head", "face", "hat"),
        "left_ear": (), "right_ear": (),
    }  # fmt: skip
    for s, side in (("l", "left"), ("r", "right")):
        own[f"{side}_shoulder"] = ("torso", f"{s}_upper_arm")
        own[f"{side}_elbow"] = (f"{s}_upper_arm", f"{s}_forearm")
        own[f"{side}_wrist"] = (f"{s}_forearm", f"{s}_hand")
        own[f"{side}_hip"] = ("torso", f"{s}_thigh")
        own[f"{side}_knee"] = (f"{s}_thigh", f"{s}_shin")
        own[f"{side}_ankle"] = (f"{s}_shin", f"{s}_foot")
    return tuple(tuple(PART[p] for p in own[name]) for name in POSETRACK18.joints)


# JOINT_PARTS[j]: the parts whose surface joint j lies on (empty for the never-labelled ears).
JOINT_PARTS = _joint_parts()

# Depth offsets (body heights) that settle ties: arms hanging beside the torso are in front of it,
# the face is in front of the head when it faces the camera.
_DEPTH_BIAS = np.zeros(NUM_PARTS)
_DEPTH_BIAS[PART["torso"]] = -0.03
_DEPTH_BIAS[PART["head"]] = 0.015
_DEPTH_BIAS[PART["face"]] = 0.02
_DEPTH_BIAS[PART["hat"]] = 0.03
for _arm in ("upper_arm", "forearm", "hand"):  # arms hang a little in front of the thighs
    _DEPTH_BIAS[PART[f"l_{_arm}"]] = _DEPTH_BIAS[PART[f"r_{_arm}"]] = 0.01


# (centre (2,), half-width across, half-height along ``up``, unit ``up`` (2,)), image pixels.
HeadEllipse = tuple[np.ndarray, float, float, np.ndarray]


def _material(look: Appearance, part: str) -> Material:
    if part in ("neck", "face") or part.endswith("hand"):
        return look.skin
    if part.endswith("upper_arm"):
        return look.shirt
    if part.endswith("forearm"):
        return look.shirt if look.long_sleeves else look.skin
    if part.endswith("thigh"):
        return look.pants
    if part.endswith("shin"):
        return look.pants if look.long_pants else look.skin
    if part.endswith("foot"):
        return look.shoes
    return look.hair


def _half_width(front: float, side: float, yaw: float) -> float:
    """Projected half-width of a body cross-section with half-axes ``front`` (left-right) and ``side``."""
    return float(np.hypot(front * np.cos(yaw), side * np.sin(yaw)))


def draw_person(canvas: Canvas, xy: np.ndarray, z: np.ndarray, body: BodyShape, look: Appearance, yaw: float,
                face_yaw: float, height_px: float, light: np.ndarray, ambient: float, owner: int,
                details: bool = True) -> tuple[np.ndarray, HeadEllipse]:
    """Paint one person. Returns the draw order of each part ``(NUM_PARTS,)`` int32 (0 = not drawn) and the
    head ellipse as drawn (for the head box).

    Args:
        xy: ``(P, 2)`` image pixels of the figure's points; ``z``: ``(P,)`` depth (towards the camera).
        yaw / face_yaw: body and head facing (radians, 0 = towards the camera).
        height_px: standing height in image pixels (sets radii and texture scale).
        light: ``(3,)`` unit light direction (x right, y down, z to camera); ``ambient`` in [0, 1].
        owner: the value written into ``canvas.owner`` for this person's pixels.
        details: draw eyes and mouth (off for tiny background people).
    """
    size = canvas.size
    hp = float(height_px)
    fields: list[tuple[float, str, Field | None]] = []
    for name, a, b, radius, taper in _LIMBS:
        r = getattr(body, radius) * hp
        fields.append((0.5 * (z[a] + z[b]), name, capsule(xy[a], xy[b], r, r * taper, size)))
    neck_r = body.r_neck * hp
    hb = JOINT["head_bottom"]
    fields.append((0.5 * (z[NECK_BASE] + z[hb]), "neck", capsule(xy[NECK_BASE], xy[hb], neck_r, neck_r * 0.9, size)))
    w_top = _half_width(body.shoulder_half + 0.3 * body.r_upper_arm, body.chest_depth, yaw) * hp
    w_waist = _half_width(body.waist_half, body.chest_depth * 0.9, yaw) * hp
    w_hip = _half_width(body.hip_half + 0.8 * body.r_thigh, body.chest_depth, yaw) * hp
    fields.append((0.5 * (z[NECK_BASE] + z[PELVIS]), "torso",
                   torso(xy[NECK_BASE], xy[PELVIS], w_top, w_waist, w_hip, 0.035 * hp, size)))

    up = xy[JOINT["head_top"]] - xy[hb]
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    head_b = 0.5 * body.head_len * hp
    head_a = _half_width(0.5 * body.head_width, 0.5 * body.head_depth, face_yaw) * hp
    fields.append((z[HEAD_CENTRE], "head", ellipse(xy[HEAD_CENTRE], head_a, head_b, up, size)))
    face_a = 0.5 * body.head_width * (0.55 + 0.3 * abs(np.cos(face_yaw))) * hp
    fields.append((z[FACE_CENTRE], "face", ellipse(xy[FACE_CENTRE], face_a, 0.4 * body.head_len * hp, up, size)))
    if look.hat is not None:
        hat_c = xy[HEAD_CENTRE] + up * 0.2 * body.head_len * hp
        fields.append((z[HEAD_CENTRE], "hat", ellipse(hat_c, head_a * 1.08, 0.32 * body.head_len * hp, up, size)))

    depth = np.array([zz + _DEPTH_BIAS[PART[name]] for zz, name, _ in fields])
    orders = np.zeros(NUM_PARTS, dtype=np.int32)
    for k in np.argsort(depth, kind="stable"):
        _, name, f = fields[k]
        if f is None:
            continue
        shade = lambert(f, light, ambient)
        if name == "torso":
            length = max(float(np.linalg.norm(xy[PELVIS] - xy[NECK_BASE])), 1e-6)
            below = (f.u / np.float32(length) > look.belt)[..., None]  # (h, w, 1) trousers below the belt
            albedo = np.where(below, look.pants.colour(f.u, f.v, hp), look.shirt.colour(f.u, f.v, hp))
        elif name == "hat":
            albedo = look.hat.colour(f.u, f.v, hp)
        else:
            albedo = _material(look, name).colour(f.u, f.v, hp)
        orders[PART[name]] = canvas.paint(f, albedo * shade, owner)
        if name == "face" and details:
            _face_details(canvas, xy[HEAD_CENTRE], up, body, face_yaw, hp)
        if name == "torso":
            _shirt_front(canvas, f, look, body, yaw, hp, shade, float(np.linalg.norm(xy[PELVIS] - xy[NECK_BASE])))
    return orders, (xy[HEAD_CENTRE].copy(), head_a, head_b, up)


def _shirt_front(canvas: Canvas, f: Field, look: Appearance, body: BodyShape, yaw: float, hp: float,
                 shade: np.ndarray, length: float) -> None:
    """The front of the shirt on a torso facing the camera: a neckline showing skin and an optional chest print
    (decoration on the torso's own pixels: the maps are unchanged). Nothing is drawn on a back view."""
    facing = float(np.cos(yaw))
    if facing < 0.15 or length < 4:
        return
    # The chest's front midline, seen at this yaw, sits chest_depth * sin(yaw) across from the torso axis.
    mid = -body.chest_depth * hp * float(np.sin(yaw)) * 0.9
    half = body.shoulder_half * hp * facing  # foreshortened chest half-width
    du = f.u + np.float32(0.035 * hp)  # from the top of the shoulders' cap
    dv = np.abs(f.v - np.float32(mid))
    depth = (0.4 if look.v_neck else 0.24) * length + 0.035 * hp
    if look.v_neck:
        neck = dv < np.float32(0.5 * half) * (1 - du / np.float32(depth))
    else:
        neck = (dv / np.float32(0.45 * half)) ** 2 + (du / np.float32(depth)) ** 2 < 1
    masks = [(neck, look.skin.colour(f.u, f.v, hp))]
    if look.chest_print is not None:
        cu = f.u - np.float32(0.38 * length)
        chest = (dv / np.float32(0.45 * half)) ** 2 + (cu / np.float32(0.14 * length)) ** 2 < 1
        masks.append((chest, np.broadcast_to(look.chest_print, f.u.shape + (3,))))
    h, w = f.alpha.shape
    region = canvas.image[f.y0:f.y0 + h, f.x0:f.x0 + w]
    inside = f.alpha >= 0.5
    for mask, albedo in masks:
        m = mask & inside
        region[m] = (albedo * shade)[m]


def _face_details(canvas: Canvas, centre: np.ndarray, up: np.ndarray, body: BodyShape, face_yaw: float,
                  hp: float) -> None:
    """Eyes and mouth on a face that looks towards the camera (decoration only: the maps are unchanged)."""
    head_px = body.head_len * hp
    if head_px < 7 or np.cos(face_yaw) < 0.25:
        return
    right = np.array([-up[1], up[0]])
    c, s = np.cos(face_yaw), np.sin(face_yaw)
    dark = (0.12, 0.1, 0.1)
    for side in (1.0, -1.0):
        lx, fx = side * 0.2 * body.head_width, 0.42 * body.head_depth
        if -lx * s + fx * c <= 0:  # this eye faces away
            continue
        p = centre + right * (lx * c + fx * s) * hp + up * 0.03 * head_px
        cv2.circle(canvas.image, (int(round(p[0] * 16)), int(round(p[1] * 16))), int(max(1.0, 0.05 * head_px) * 16),
                   dark, -1, cv2.LINE_AA, 4)
    m = centre + right * (0.45 * body.head_depth * s) * hp - up * 0.27 * head_px
    half = right * 0.12 * body.head_width * c * hp
    p0, p1 = m - half, m + half
    cv2.line(canvas.image, (int(round(p0[0] * 16)), int(round(p0[1] * 16))),
             (int(round(p1[0] * 16)), int(round(p1[1] * 16))), (0.25, 0.2, 0.45), max(1, int(0.04 * head_px)),
             cv2.LINE_AA, 4)
