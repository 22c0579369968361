"""The articulated figure: human proportions, degrees of freedom, forward kinematics and projection.

The body lives in a 3D *body frame* measured in units of the person's standing height (sole to head top):
``l`` points to the person's left, ``f`` forward (where the chest faces), ``u`` up. Forward kinematics
turns joint angles into the 17 PoseTrack18 joints plus a few helper points that the renderer needs.
A yaw rotation about ``u`` and an orthographic projection put the figure on the image plane:

    X = l cos(yaw) + f sin(yaw)        (image x, to the right)
    Z = -l sin(yaw) + f cos(yaw)       (towards the camera; larger Z is drawn later)
    Y = -u                             (image y, down)

so yaw 0 faces the camera and yaw +pi/2 faces image-right. Shapes: ``T`` frames, ``P`` points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose.keypoints import POSETRACK18

# --------------------------------------------------------------------------------------------------
# Degrees of freedom (columns of the (T, D) angle arrays made by diffpose.synth.motion), radians.
# --------------------------------------------------------------------------------------------------
DOFS = (
    "yaw", "torso_pitch", "torso_roll", "head_pitch", "head_yaw",
    "l_sho_flex", "l_sho_abd", "l_elbow", "r_sho_flex", "r_sho_abd", "r_elbow",
    "l_hip_flex", "l_hip_abd", "l_knee", "r_hip_flex", "r_hip_abd", "r_knee",
    "lift",  # not an angle: feet above the ground, in body heights (jumps)
)  # fmt: skip
DOF = {name: i for i, name in enumerate(DOFS)}
NUM_DOFS = len(DOFS)

# --------------------------------------------------------------------------------------------------
# Points: the 17 PoseTrack18 joints first (same indices), then helper points for drawing.
# --------------------------------------------------------------------------------------------------
J = {name: i for i, name in enumerate(POSETRACK18.joints)}
NECK_BASE, PELVIS, HEAD_CENTRE, L_TOE, R_TOE, L_HAND, R_HAND, FACE_CENTRE = range(17, 25)
NUM_POINTS = 25


@dataclass(frozen=True)
class BodyShape:
    """Proportions of one person in body heights (1.0 = sole to head top), and limb radii."""

    stature: float  # standing height relative to an average adult (children < 1)
    head_len: float  # chin to crown
    head_width: float
    head_depth: float
    neck_len: float  # neck base (between the shoulders) to head_bottom
    torso_len: float  # pelvis centre to neck base
    shoulder_half: float
    hip_half: float
    chest_depth: float  # front-to-back half thickness of the torso
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shin: float
    foot: float
    ankle_height: float
    r_upper_arm: float
    r_forearm: float
    r_hand: float
    r_thigh: float
    r_shin: float
    r_foot: float
    r_neck: float
    waist_half: float


def sample_body(rng: np.random.Generator) -> BodyShape:
    """Average adult proportions (about 7.5 heads tall), jittered a few percent; some slim, some broad."""

    def jit(x: float, rel: float = 0.05) -> float:
        return float(x * (1.0 + rel * rng.uniform(-1.0, 1.0)))

    stature = float(rng.choice([1.0, 1.0, 1.0, 0.92, 0.8]) * rng.uniform(0.95, 1.05))
    child = stature < 0.85  # children: bigger heads, shorter legs
    build = rng.uniform(0.85, 1.25)  # slim .. broad
    head_len = jit(0.15 if child else 0.13, 0.04)
    return BodyShape(
        stature=stature,
        head_len=head_len,
        head_width=jit(head_len * 0.78, 0.04),
        head_depth=jit(head_len * 0.92, 0.04),
        neck_len=jit(0.045),
        torso_len=jit(0.30),
        shoulder_half=jit(0.115 * min(build, 1.15)),
        hip_half=jit(0.06 * build),
        chest_depth=jit(0.06 * build),
        upper_arm=jit(0.17),
        forearm=jit(0.15),
        hand=jit(0.065),
        thigh=jit(0.235 if child else 0.245),
        shin=jit(0.225 if child else 0.245),
        foot=jit(0.13),
        ankle_height=0.04,
        r_upper_arm=jit(0.034 * build),
        r_forearm=jit(0.027 * build),
        r_hand=jit(0.024),
        r_thigh=jit(0.052 * build),
        r_shin=jit(0.037 * build),
        r_foot=jit(0.026),
        r_neck=jit(0.03 * build),
        waist_half=jit(0.09 * build),
    )


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _perp(g: np.ndarray, d: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Unit part of ``g`` orthogonal to unit ``d``; ``fallback`` where ``g`` is (nearly) parallel to ``d``."""
    p = g - np.sum(g * d, axis=-1, keepdims=True) * d  # (T, 3)
    q = fallback - np.sum(fallback * d, axis=-1, keepdims=True) * d  # (T, 3)
    small = np.linalg.norm(p, axis=-1, keepdims=True) < 1e-3
    return _normalize(np.where(small, q, p))


def pose_points(body: BodyShape, angles: np.ndarray) -> np.ndarray:
    """Forward kinematics: ``(T, D)`` angles -> ``(T, P, 3)`` points ``(l, f, u)`` in body heights.

    The pelvis is at ``l = f = 0``; the lowest sole touches ``u = lift`` (``lift`` >= 0 for jumps).
    Arms hang along ``-u`` at zero angles, flexion swings them forward, abduction sideways and up.
    """
    a = np.asarray(angles, dtype=np.float64)
    n = a.shape[0]
    ex, ey, ez = np.eye(3)
    l_ax, f_ax, u_ax = (np.broadcast_to(e, (n, 3)) for e in (ex, ey, ez))  # (T, 3) each
    pts = np.zeros((n, NUM_POINTS, 3))

    def col(name: str) -> np.ndarray:
        return a[:, DOF[name]][:, None]  # (T, 1)

    # Torso: pitch bends forward, roll leans sideways; (l_t, f_t, t) is the torso's own frame.
    pitch, roll = col("torso_pitch"), col("torso_roll")
    t = np.concatenate([np.sin(roll), np.sin(pitch) * np.cos(roll), np.cos(pitch) * np.cos(roll)], 1)  # (T, 3)
    f_t = np.concatenate([np.zeros_like(pitch), np.cos(pitch), -np.sin(pitch)], 1)  # (T, 3)
    l_t = np.cross(f_t, t)  # (T, 3)
    pelvis = np.zeros((n, 3))
    neck = pelvis + body.torso_len * t
    pts[:, PELVIS], pts[:, NECK_BASE] = pelvis, neck
    pts[:, J["left_shoulder"]] = neck + body.shoulder_half * l_t - 0.02 * t
    pts[:, J["right_shoulder"]] = neck - body.shoulder_half * l_t - 0.02 * t
    pts[:, J["left_hip"]] = pelvis + body.hip_half * l_ax
    pts[:, J["right_hip"]] = pelvis - body.hip_half * l_ax

    # Head: pitch nods towards the chest, head yaw turns the face left (+) or right (-).
    hp, hy = col("head_pitch"), col("head_yaw")
    h = np.cos(hp) * t + np.sin(hp) * f_t  # (T, 3) head up
    hf0 = np.cos(hp) * f_t - np.sin(hp) * t
    hf = np.cos(hy) * hf0 + np.sin(hy) * np.cross(hf0, h)  # (T, 3) face direction
    hb = neck + body.neck_len * h
    centre = hb + 0.5 * body.head_len * h
    pts[:, J["head_bottom"]] = hb
    pts[:, J["head_top"]] = hb + body.head_len * h
    pts[:, HEAD_CENTRE] = centre
    pts[:, J["nose"]] = centre - 0.1 * body.head_len * h + 0.5 * body.head_depth * hf
    pts[:, FACE_CENTRE] = centre - 0.06 * body.head_len * h + 0.3 * body.head_depth * hf
    l_head = np.cross(hf, h)  # (T, 3) the head's own left
    pts[:, J["left_ear"]] = centre + 0.5 * body.head_width * l_head
    pts[:, J["right_ear"]] = centre - 0.5 * body.head_width * l_head

    # Arms: hang along -t, flex towards f_t, abduct towards the side; the elbow bends the forearm forward
    # when the arm hangs and upward/inward when the arm is raised (a waving forearm).
    for side, s in (("l", 1.0), ("r", -1.0)):
        fl, ab, el = col(f"{side}_sho_flex"), col(f"{side}_sho_abd"), col(f"{side}_elbow")
        d_up = np.cos(ab) * (np.cos(fl) * -t + np.sin(fl) * f_t) + np.sin(ab) * (s * l_t)  # (T, 3)
        w = np.clip(ab / (np.pi / 2), 0.0, 1.0)
        bend = _perp((1 - w) * f_t + w * t, d_up, t)
        d_fore = np.cos(el) * d_up + np.sin(el) * bend  # (T, 3)
        shoulder = pts[:, J["left_shoulder" if s > 0 else "right_shoulder"]]
        elbow = shoulder + body.upper_arm * d_up
        wrist = elbow + body.forearm * d_fore
        pts[:, J["left_elbow" if s > 0 else "right_elbow"]] = elbow
        pts[:, J["left_wrist" if s > 0 else "right_wrist"]] = wrist
        pts[:, L_HAND if s > 0 else R_HAND] = wrist + body.hand * d_fore

    # Legs, in the pelvis frame (the torso bends above them): the knee bends the shin backwards.
    for side, s in (("l", 1.0), ("r", -1.0)):
        fl, ab, kn = col(f"{side}_hip_flex"), col(f"{side}_hip_abd"), col(f"{side}_knee")
        d_th = np.cos(ab) * (np.cos(fl) * -u_ax + np.sin(fl) * f_ax) + np.sin(ab) * (s * l_ax)  # (T, 3)
        sh = fl - kn
        d_sh = np.cos(ab) * (np.cos(sh) * -u_ax + np.sin(sh) * f_ax) + np.sin(ab) * (s * l_ax)  # (T, 3)
        foot_dir = np.cos(sh) * f_ax + np.sin(sh) * u_ax  # (T, 3) perpendicular to the shin, toes forward
        hip = pts[:, J["left_hip" if s > 0 else "right_hip"]]
        knee = hip + body.thigh * d_th
        ankle = knee + body.shin * d_sh
        pts[:, J["left_knee" if s > 0 else "right_knee"]] = knee
        pts[:, J["left_ankle" if s > 0 else "right_ankle"]] = ankle
        pts[:, L_TOE if s > 0 else R_TOE] = ankle + body.foot * foot_dir - 0.02 * u_ax

    # Stand on the ground: the lowest sole (ankle minus its height, or a toe) at u = lift.
    ankles = pts[:, [J["left_ankle"], J["right_ankle"]], 2] - body.ankle_height  # (T, 2)
    toes = pts[:, [L_TOE, R_TOE], 2] - 0.01  # (T, 2)
    ground = np.minimum(ankles.min(axis=1), toes.min(axis=1))  # (T,)
    pts[:, :, 2] += (np.maximum(a[:, DOF["lift"]], 0.0) - ground)[:, None]  # (T, P) += (T, 1)
    return pts


def project(points: np.ndarray, yaw: np.ndarray, height_px: np.ndarray, ground_xy: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """Body-frame points -> canvas pixels and depth.

    Args:
        points: ``(T, P, 3)`` from :func:`pose_points` (body heights).
        yaw: ``(T,)`` radians, 0 = facing the camera.
        height_px: ``(T,)`` the person's standing height in canvas pixels.
        ground_xy: ``(T, 2)`` canvas ``(x, y)`` of the point on the ground under the pelvis.

    Returns:
        ``xy`` ``(T, P, 2)`` canvas pixels and ``z`` ``(T, P)`` depth towards the camera in body heights.
    """
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]  # (T, 1)
    lx, fx, ux = points[..., 0], points[..., 1], points[..., 2]  # (T, P) each
    x = lx * c + fx * s
    z = -lx * s + fx * c
    xy = np.stack([x, -ux], axis=-1) * height_px[:, None, None] + ground_xy[:, None, :]  # (T, P, 2)
    return xy, z
