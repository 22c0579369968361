"""Joint-angle trajectories: walk, run, wave, jump, turn, bend and idle, with random phase and speed.

Every action is a smooth periodic function of a phase ``phi = 2 pi f t + phi0`` (``f`` cycles per frame,
``phi0`` random), plus slow smooth noise on every degree of freedom so that no two people move alike.
A person may switch from one action to another halfway through a video; the two angle tracks are
cross-faded with a smoothstep so that the motion stays smooth. Arrays are ``(T, D)`` with the columns of
:data:`diffpose.synth.figure.DOFS`; ``speed`` is the forward walking speed in body heights per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffpose.synth.figure import DOF, NUM_DOFS

ACTIONS = ("walk", "run", "wave", "jump", "turn", "bend", "idle")
LOCOMOTION = ("walk", "run")


@dataclass
class Motion:
    """Angles ``(T, D)`` and forward speed ``(T,)`` (body heights per frame along the facing direction)."""

    angles: np.ndarray
    speed: np.ndarray
    actions: tuple[str, ...]


def smooth_noise(rng: np.random.Generator, n: int, amp: float, freq: tuple[float, float] = (0.01, 0.05)) -> np.ndarray:
    """``(n,)`` sum of two slow sinusoids with random frequency and phase, peak about ``amp``."""
    t = np.arange(n, dtype=np.float64)
    f = rng.uniform(*freq, size=2)
    p = rng.uniform(0.0, 2 * np.pi, size=2)
    return amp * 0.5 * (np.sin(2 * np.pi * f[0] * t + p[0]) + np.sin(2 * np.pi * f[1] * t + p[1]))


def _pos(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, None)


def _base(n: int) -> np.ndarray:
    """A relaxed standing pose: arms slightly out and bent."""
    a = np.zeros((n, NUM_DOFS))
    a[:, DOF["l_sho_abd"]] = a[:, DOF["r_sho_abd"]] = 0.1
    a[:, DOF["l_elbow"]] = a[:, DOF["r_elbow"]] = 0.25
    a[:, DOF["l_knee"]] = a[:, DOF["r_knee"]] = 0.05
    return a


def _gait(a: np.ndarray, phi: np.ndarray, hip: float, knee: float, arm: float, hip0: float, knee0: float) -> None:
    """Legs and arms of a walking/running cycle; the left leg leads at phi = pi/2, arms swing opposite."""
    for side, off in (("l", 0.0), ("r", np.pi)):
        ph = phi + off
        a[:, DOF[f"{side}_hip_flex"]] = hip0 + hip * np.sin(ph)
        # The knee flexes most in mid-swing, when the hip is moving forward fastest.
        a[:, DOF[f"{side}_knee"]] = knee0 + knee * _pos(np.sin(ph + np.pi / 2 + 0.3)) ** 1.5
        a[:, DOF[f"{side}_sho_flex"]] = -arm * np.sin(ph)


def walk(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    hip = rng.uniform(0.32, 0.48)
    _gait(a, phi, hip=hip, knee=rng.uniform(0.8, 1.0), arm=rng.uniform(0.25, 0.45), hip0=0.08, knee0=0.08)
    a[:, DOF["l_elbow"]] = 0.3 + 0.25 * _pos(-np.sin(phi))
    a[:, DOF["r_elbow"]] = 0.3 + 0.25 * _pos(np.sin(phi))
    a[:, DOF["torso_pitch"]] = 0.05
    a[:, DOF["torso_roll"]] = 0.03 * np.sin(phi)
    # Two steps per cycle, each about 2 * leg * sin(hip) long.
    return a, np.full(n, 2.0 * 0.98 * np.sin(hip) * f)


def run(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    _gait(a, phi, hip=rng.uniform(0.6, 0.8), knee=rng.uniform(1.3, 1.7), arm=rng.uniform(0.5, 0.8), hip0=0.25,
          knee0=0.3)
    a[:, DOF["l_elbow"]] = a[:, DOF["r_elbow"]] = rng.uniform(1.2, 1.6)
    a[:, DOF["torso_pitch"]] = rng.uniform(0.12, 0.25)
    a[:, DOF["lift"]] = 0.035 * _pos(np.sin(2 * phi + 1.0))  # two flight phases per cycle
    return a, np.full(n, rng.uniform(1.8, 2.3) * f)


def wave(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    sides = ("l", "r") if rng.random() < 0.3 else (("l",) if rng.random() < 0.5 else ("r",))
    for side in sides:
        a[:, DOF[f"{side}_sho_abd"]] = rng.uniform(2.0, 2.7) + 0.1 * np.sin(phi)
        a[:, DOF[f"{side}_sho_flex"]] = rng.uniform(0.0, 0.5)
        a[:, DOF[f"{side}_elbow"]] = rng.uniform(0.5, 0.9) + rng.uniform(0.3, 0.5) * np.sin(phi)
    a[:, DOF["torso_roll"]] = 0.04 * np.sin(0.5 * phi)
    return a, np.zeros(n)


def jump(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    air, crouch = _pos(np.sin(phi)), _pos(-np.sin(phi))
    a[:, DOF["lift"]] = rng.uniform(0.1, 0.22) * air
    for side in ("l", "r"):
        a[:, DOF[f"{side}_knee"]] = 0.1 + 1.1 * crouch + 0.4 * air
        a[:, DOF[f"{side}_hip_flex"]] = 0.05 + 0.75 * crouch + 0.25 * air
    a[:, DOF["torso_pitch"]] = 0.45 * crouch
    if rng.random() < 0.5:  # arms swing forward and up
        a[:, DOF["l_sho_flex"]] = a[:, DOF["r_sho_flex"]] = -0.5 * crouch + 2.6 * air
    else:  # star jump: arms and legs spread sideways
        a[:, DOF["l_sho_abd"]] = a[:, DOF["r_sho_abd"]] = 0.15 + 2.3 * air
        a[:, DOF["l_hip_abd"]] = a[:, DOF["r_hip_abd"]] = 0.3 * air
    return a, np.zeros(n)


def turn(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    """Turning round on the spot with small steps; the turn rate is ``f`` revolutions per frame."""
    a = _base(n)
    _gait(a, phi * 2.0, hip=0.12, knee=0.35, arm=0.15, hip0=0.03, knee0=0.05)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    a[:, DOF["yaw"]] = sign * (phi - phi[0])
    return a, np.zeros(n)


def bend(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    b = 0.5 * (1.0 - np.cos(phi))
    pitch = rng.uniform(0.9, 1.4) * b
    a[:, DOF["torso_pitch"]] = pitch
    a[:, DOF["head_pitch"]] = -0.35 * b
    for side in ("l", "r"):
        a[:, DOF[f"{side}_knee"]] = 0.05 + 0.5 * b
        a[:, DOF[f"{side}_hip_flex"]] = 0.25 * b
        a[:, DOF[f"{side}_sho_flex"]] = pitch + 0.15 * b  # arms hang down as the back bends
        a[:, DOF[f"{side}_elbow"]] = 0.2
    return a, np.zeros(n)


def idle(rng: np.random.Generator, n: int, phi: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    a = _base(n)
    a[:, DOF["l_elbow"]] = rng.uniform(0.15, 1.6)  # sometimes a hand at the belly or holding a phone
    a[:, DOF["r_elbow"]] = rng.uniform(0.15, 1.6)
    a[:, DOF["torso_roll"]] = 0.04 * np.sin(phi)
    a[:, DOF["l_knee"]] = 0.05 + 0.08 * _pos(np.sin(phi))
    a[:, DOF["r_knee"]] = 0.05 + 0.08 * _pos(-np.sin(phi))
    return a, np.zeros(n)


_ActionFn = Callable[[np.random.Generator, int, np.ndarray, float], tuple[np.ndarray, np.ndarray]]
# name -> (function, cycles-per-frame range)
_ACTION_TABLE: dict[str, tuple[_ActionFn, tuple[float, float]]] = {
    "walk": (walk, (0.04, 0.065)),
    "run": (run, (0.07, 0.09)),
    "wave": (wave, (0.07, 0.14)),
    "jump": (jump, (0.035, 0.055)),
    "turn": (turn, (0.012, 0.022)),  # revolutions per frame
    "bend": (bend, (0.02, 0.035)),
    "idle": (idle, (0.02, 0.05)),
}

_NOISE_AMP = np.full(NUM_DOFS, 0.05)
_NOISE_AMP[DOF["yaw"]] = 0.08
_NOISE_AMP[DOF["head_yaw"]] = 0.35  # looking around
_NOISE_AMP[DOF["lift"]] = 0.0


def action_track(action: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One action over ``n`` frames with random phase and speed: ``(angles (n, D), speed (n,))``."""
    fn, (lo, hi) = _ACTION_TABLE[action]
    f = float(rng.uniform(lo, hi))
    phi = 2 * np.pi * f * np.arange(n) + rng.uniform(0.0, 2 * np.pi)  # (n,)
    return fn(rng, n, phi, f)


def sample_motion(rng: np.random.Generator, n: int, first: str, second: str | None, yaw0: float) -> Motion:
    """The motion of one person: ``first`` action, optionally cross-faded into ``second`` halfway.

    ``yaw0`` is the initial facing direction (radians, 0 = towards the camera). Slow smooth noise is
    added to every joint angle; the result is smooth in time (no jumps between frames).
    """
    a1, s1 = action_track(first, rng, n)
    angles, speed, actions = a1, s1, (first,)
    if second is not None and n >= 8:
        a2, s2 = action_track(second, rng, n)
        switch = int(rng.integers(n // 3, max(n // 3 + 1, 2 * n // 3)))
        a2[:, DOF["yaw"]] += a1[switch, DOF["yaw"]] - a2[switch, DOF["yaw"]]  # keep facing where it faced
        x = np.clip((np.arange(n) - switch) / 6.0 + 0.5, 0.0, 1.0)
        w = (x * x * (3 - 2 * x))[:, None]  # (n, 1) smoothstep over 6 frames
        angles = (1 - w) * a1 + w * a2
        speed = (1 - w[:, 0]) * s1 + w[:, 0] * s2
        actions = (first, second)
    for d in range(NUM_DOFS):
        if _NOISE_AMP[d] > 0:
            angles[:, d] += smooth_noise(rng, n, float(_NOISE_AMP[d]))
    angles[:, DOF["yaw"]] += yaw0
    return Motion(angles=angles, speed=speed, actions=actions)


def integrate_ground_path(speed: np.ndarray, yaw: np.ndarray, height0: float, x0: float, focal_px: float,
                          height_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Walk the person over the ground plane; returns canvas ``x`` ``(T,)`` and pixel height ``(T,)``.

    Facing sideways moves the person across the image by ``speed * height`` pixels per frame; facing
    the camera brings them closer, which (pinhole camera, focal length ``focal_px``) changes
    ``1 / height`` by ``-speed * cos(yaw) / focal_px`` per frame. Heights are kept in ``height_range``.
    """
    n = len(speed)
    x, h = np.empty(n), np.empty(n)
    x[0], h[0] = x0, height0
    for t in range(1, n):
        inv = 1.0 / h[t - 1] - speed[t - 1] * np.cos(yaw[t - 1]) / focal_px
        h[t] = float(np.clip(1.0 / max(inv, 1e-6), *height_range))
        x[t] = x[t - 1] + speed[t - 1] * np.sin(yaw[t - 1]) * h[t - 1]
    return x, h
