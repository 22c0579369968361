"""Moving occluders: things that pass between the camera and a person and hide joints for a few frames.

Each occluder is planned against a *target*: a person, a frame ``t0`` and a height on that person's body.
It moves sideways past the target around ``t0`` so that any one point stays covered for 2-6 frames, which
is exactly the kind of gap that neighbouring frames can fill. Kinds: a pole (a shaded vertical cylinder through the
whole frame), a panel (a sign or board, printed), foliage (an irregular leafy blob), and a bar (a low
horizontal rail or bench back). Occluders live on the canvas like people and are painted after every person,
so they are always in front; they write ``owner = -(k + 1)`` into the canvas maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose.synth.appearance import Material, hsv_bgr, make_material, random_cloth
from diffpose.synth.raster import Canvas, capsule, lambert, polygon
from diffpose.synth.scene import CameraPath

KINDS = ("pole", "panel", "foliage", "bar")


@dataclass
class Occluder:
    """A rigid shape moving over the canvas.

    ``outline`` is ``(K, 2)`` canvas pixels around the shape's centre (for ``pole`` and ``bar`` the two axis
    end points and ``radius`` instead); ``centre`` is ``(T, 2)`` canvas pixels per frame.
    """

    kind: str
    outline: np.ndarray
    radius: float
    centre: np.ndarray
    material: Material


@dataclass
class Target:
    """Where a person is in one frame: ground point ``(x, y)`` and height, all in canvas pixels."""

    ground: np.ndarray  # (T, 2)
    height: np.ndarray  # (T,)
    visible: np.ndarray  # (T,) bool: the person's middle is inside the image


def plan_occluders(rng: np.random.Generator, n: int, targets: list[Target], mean_events: float,
                   scale: tuple[float, float], canvas_size: tuple[int, int]) -> list[Occluder]:
    """Poisson(``mean_events``) occluders, each timed to pass in front of a random target person at a random
    frame where that person is in view."""
    targets = [p for p in targets if p.visible.any()]
    if not targets or n < 2:
        return []
    out = []
    for _ in range(int(rng.poisson(mean_events))):
        person = targets[int(rng.integers(len(targets)))]
        seen = np.flatnonzero(person.visible)
        t0 = int(seen[rng.integers(len(seen))])
        h = float(person.height[t0])
        aim = person.ground[t0] + np.array([rng.uniform(-0.15, 0.15), -rng.uniform(0.1, 0.95)]) * h  # canvas (x, y)
        kind = KINDS[int(rng.choice(len(KINDS), p=[0.3, 0.3, 0.25, 0.15]))]
        size = float(rng.uniform(*scale)) * h
        radius = 0.0
        if kind == "pole":
            radius = size * rng.uniform(0.18, 0.35)
            top = np.array([rng.uniform(-0.1, 0.1) * canvas_size[1], -canvas_size[1]])
            outline = np.stack([top, -top])  # (2, 2): far above and below the frame
            material = make_material(rng, hsv_bgr(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.8)),
                                     grain=0.05)
        elif kind == "bar":
            radius = size * rng.uniform(0.08, 0.15)
            half = np.array([size * rng.uniform(1.5, 3.0), size * rng.uniform(-0.2, 0.2)])
            outline = np.stack([-half, half])  # (2, 2)
            material = make_material(rng, hsv_bgr(rng.uniform(0.05, 0.12), 0.5, rng.uniform(0.2, 0.6)), grain=0.2)
        elif kind == "panel":
            w, hh = size * rng.uniform(0.6, 1.3), size * rng.uniform(0.6, 1.4)
            a = rng.uniform(-0.15, 0.15)
            corners = np.array([[-w, -hh], [w, -hh], [w, hh], [-w, hh]]) / 2
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            outline = corners @ rot.T  # (4, 2)
            material = random_cloth(rng, patterned=0.8)
        else:  # foliage
            k = int(rng.integers(10, 17))
            ang = np.sort(rng.uniform(0, 2 * np.pi, size=k))
            rad = size * 0.5 * rng.uniform(0.55, 1.0, size=k)
            outline = np.stack([np.cos(ang) * rad, np.sin(ang) * rad * rng.uniform(0.7, 1.2)], axis=1)  # (K, 2)
            green = hsv_bgr(rng.uniform(0.2, 0.36), rng.uniform(0.4, 0.8), rng.uniform(0.15, 0.45))
            material = make_material(rng, green, green * 1.6, pattern=3, period=0.05, grain=0.4)
        width = float(np.ptp(outline[:, 0])) + 2 * radius if kind != "pole" else 2 * radius
        hide_frames = rng.uniform(2.0, 6.0)  # how long one point stays covered
        speed = max(width, 0.1 * h) / hide_frames * (1 if rng.random() < 0.5 else -1)
        velocity = np.array([speed, rng.uniform(-0.1, 0.1) * abs(speed)])
        centre = aim[None, :] + (np.arange(n) - t0)[:, None] * velocity[None, :]  # (T, 2)
        out.append(Occluder(kind=kind, outline=outline, radius=radius, centre=centre, material=material))
    return out


def draw_occluder(canvas: Canvas, occ: Occluder, t: int, camera: CameraPath, light: np.ndarray, ambient: float,
                  owner: int) -> bool:
    """Paint ``occ`` at frame ``t`` in front of everything drawn so far; returns whether it touched the frame."""
    pts = camera.apply(t, occ.outline + occ.centre[t])  # (K, 2) image pixels
    scale = float(camera.scale[t])
    if occ.kind in ("pole", "bar"):
        r = occ.radius * scale
        f = capsule(pts[0], pts[1], r, r, canvas.size)
        shade_ambient = ambient
    else:
        f = polygon(pts, canvas.size)
        shade_ambient = 0.75  # flat faces: mostly ambient, the texture carries the detail
    if f is None or not (f.alpha >= 0.5).any():
        return False
    colour = occ.material.colour(f.u, f.v, 100.0 * scale) * lambert(f, light, shade_ambient)
    canvas.paint(f, colour, owner)
    return True
