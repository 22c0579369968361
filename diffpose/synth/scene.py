"""The stage: a cluttered procedural background, the lighting, and a moving camera.

The background is painted once per video on a *canvas* 1.5 times the image size (canvas pixels are the
world's 2D coordinates; people and occluders are placed in them too). Each frame the camera picks a view of
the canvas with a similarity transform (pan, hand-held shake, zoom, a little roll); everything is drawn
straight into image coordinates through the same transform, so annotations stay exact.

Two kinds of places: indoors (walls with panels, windows, doors, posters, shelves over a tiled floor) and
outdoors (sky, buildings with window grids, trees over pavement or grass). Limb-like distractors
(skin- and cloth-coloured shaded capsules, single or jointed like an arm) and other clutter are scattered
over both, so that "an elongated skin-coloured blob" is not enough to find a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from diffpose.synth.appearance import SKIN_TONES, hsv_bgr, make_material, random_cloth, rgb
from diffpose.synth.raster import Canvas, capsule, ellipse, lambert

CANVAS_SCALE = 1.5  # canvas size relative to the image size


@dataclass
class Scene:
    """One video's stage. ``background`` is ``(Hc, Wc, 3)`` float32 BGR; ``horizon`` a canvas y."""

    background: np.ndarray
    horizon: float
    light: np.ndarray  # (3,) unit direction towards the light (x right, y down, z to camera)
    ambient: float
    tint: np.ndarray  # (3,) per-channel gain (white balance)
    indoor: bool


@dataclass
class CameraPath:
    """Per-frame view: ``matrices`` ``(T, 2, 3)`` map canvas -> image pixels; ``scale`` ``(T,)`` is the zoom."""

    matrices: np.ndarray
    scale: np.ndarray

    def apply(self, t: int, points: np.ndarray) -> np.ndarray:
        """Canvas points ``(..., 2)`` -> image points ``(..., 2)`` at frame ``t``."""
        m = self.matrices[t]
        return points @ m[:, :2].T + m[:, 2]

    def image_motion(self, t: int, image_size: tuple[int, int]) -> np.ndarray:
        """``(2,)`` image displacement of the scene at the image centre from frame ``t - 1`` to ``t``."""
        if t == 0:
            return np.zeros(2)
        centre = np.array([image_size[0] / 2.0, image_size[1] / 2.0])
        prev = self.matrices[t - 1]
        canvas_pt = np.linalg.solve(prev[:, :2], centre - prev[:, 2])
        return self.apply(t, canvas_pt) - centre


def camera_path(rng: np.random.Generator, n: int, image_size: tuple[int, int], canvas_size: tuple[int, int],
                pan_px: float, shake_px: float, zoom_range: tuple[float, float]) -> CameraPath:
    """A slow pan and zoom with smooth hand-held shake and roll, kept inside the canvas."""
    w, h = image_size
    wc, hc = canvas_size
    t = np.arange(n, dtype=np.float64)
    ramp = np.clip(t / max(n - 1, 1), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    z0, z1 = rng.uniform(*zoom_range, size=2)
    scale = z0 + (z1 - z0) * ramp  # (T,)
    direction = rng.normal(size=2)
    direction /= max(np.linalg.norm(direction), 1e-9)
    pan = direction[None, :] * rng.uniform(0.3, 1.0) * pan_px * (ramp[:, None] - 0.5)  # (T, 2)
    shake = np.zeros((n, 2))
    for k in range(2):
        for _ in range(3):
            f, p = rng.uniform(0.05, 0.3), rng.uniform(0, 2 * np.pi)
            shake[:, k] += shake_px / 3.0 * np.sin(2 * np.pi * f * t + p)
    roll = 0.012 * np.sin(2 * np.pi * rng.uniform(0.01, 0.05) * t + rng.uniform(0, 2 * np.pi))
    centre = np.array([wc / 2.0, hc / 2.0]) + (pan + shake) / scale[:, None]  # (T, 2) canvas
    # Keep the view (with its rotation slack) inside the canvas.
    half = np.stack([w / 2.0 / scale, h / 2.0 / scale], axis=1) * 1.02  # (T, 2)
    centre = np.clip(centre, half, np.array([wc, hc]) - half)
    c, s = np.cos(roll) * scale, np.sin(roll) * scale
    m = np.zeros((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    m[:, :, 2] = np.array([w / 2.0, h / 2.0]) - np.einsum("tij,tj->ti", m[:, :, :2], centre)
    return CameraPath(matrices=m, scale=scale)


# --------------------------------------------------------------------------------------------------
# Background painting
# --------------------------------------------------------------------------------------------------
def _fill(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: np.ndarray, grad: float = 0.0) -> None:
    """Axis-aligned rectangle with a vertical brightness gradient ``grad`` (top lighter when > 0)."""
    hc, wc = img.shape[:2]
    a, b = int(np.clip(round(x0), 0, wc)), int(np.clip(round(x1), 0, wc))
    c, d = int(np.clip(round(y0), 0, hc)), int(np.clip(round(y1), 0, hc))
    if b <= a or d <= c:
        return
    ramp = np.linspace(1.0 + grad, 1.0 - grad, d - c, dtype=np.float32)[:, None, None]  # (h, 1, 1)
    img[c:d, a:b] = colour * ramp


def _windows(img: np.ndarray, rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float) -> None:
    cell_w, cell_h = rng.uniform(14, 30), rng.uniform(16, 34)
    glass = hsv_bgr(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.9))
    for yy in np.arange(y0 + 6, y1 - cell_h * 0.6, cell_h):
        for xx in np.arange(x0 + 5, x1 - cell_w * 0.6, cell_w):
            lit = glass * np.float32(rng.uniform(0.6, 1.3))
            _fill(img, xx, yy, xx + cell_w * 0.62, yy + cell_h * 0.6, np.clip(lit, 0, 1), 0.15)


def _wall(img: np.ndarray, rng: np.random.Generator, horizon: float) -> None:
    wc = img.shape[1]
    wall = hsv_bgr(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.45, 0.85))
    _fill(img, 0, 0, wc, horizon, wall, 0.08)
    step = rng.uniform(40, 110)
    for x in np.arange(rng.uniform(0, step), wc, step):  # panel seams
        img[: int(horizon), int(x): int(x) + 2] *= 0.82
    _fill(img, 0, horizon - rng.uniform(6, 14), wc, horizon, wall * 0.55)  # skirting board
    for _ in range(int(rng.integers(2, 6))):  # windows, doors, posters, shelves
        kind = rng.random()
        w, h = rng.uniform(30, 110), rng.uniform(40, 0.9 * horizon)
        x, y = rng.uniform(-20, wc), rng.uniform(0, max(horizon - h, 1))
        if kind < 0.3:
            _fill(img, x - 4, y - 4, x + w + 4, y + h + 4, wall * 0.6)
            _fill(img, x, y, x + w, y + h, hsv_bgr(rng.uniform(0.5, 0.6), 0.3, rng.uniform(0.7, 1.0)), 0.2)
            _fill(img, x + w / 2 - 1.5, y, x + w / 2 + 1.5, y + h, wall * 0.6)  # mullion
        elif kind < 0.5:  # door
            _fill(img, x, horizon - 0.8 * h, x + w * 0.7, horizon,
                  hsv_bgr(rng.random(), 0.4, 0.35), 0.1)
        elif kind < 0.8:
            _fill(img, x, y, x + w * 0.8, y + h * 0.6, hsv_bgr(rng.random(), 0.7, rng.uniform(0.3, 1.0)), 0.1)
            for _k in range(3):
                px, py = x + rng.uniform(0, w * 0.6), y + rng.uniform(0, h * 0.45)
                _fill(img, px, py, px + rng.uniform(5, 25), py + rng.uniform(5, 25),
                      hsv_bgr(rng.random(), 0.8, rng.uniform(0.2, 1.0)))
        else:
            _fill(img, x, y, x + w * 1.5, y + 5, rgb(0.35, 0.25, 0.15))
            for bx in np.arange(x, x + w * 1.5 - 8, rng.uniform(6, 12)):
                bh = rng.uniform(8, 22)
                _fill(img, bx, y - bh, bx + 5, y, hsv_bgr(rng.random(), 0.6, rng.uniform(0.2, 0.9)))


def _outdoor(img: np.ndarray, rng: np.random.Generator, horizon: float) -> None:
    wc = img.shape[1]
    top, bottom = hsv_bgr(0.58, rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.9)), rgb(0.85, 0.88, 0.9)
    ramp = np.linspace(0.0, 1.0, int(horizon), dtype=np.float32)[:, None, None]  # (h, 1, 1)
    img[: int(horizon)] = top + (bottom - top) * ramp
    x = rng.uniform(-60, 0)
    while x < wc:  # a row of buildings
        w, h = rng.uniform(50, 140), rng.uniform(0.3, 1.0) * horizon
        colour = hsv_bgr(rng.uniform(0.0, 0.15), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.8))
        _fill(img, x, horizon - h, x + w, horizon, colour, 0.06)
        _windows(img, rng, x, horizon - h, x + w, horizon - 10)
        x += w + rng.uniform(-10, 30)
    for _ in range(int(rng.integers(1, 4))):  # trees: a jointed trunk and leafy blobs
        base = np.array([rng.uniform(0, wc), horizon + rng.uniform(0, 10)])
        top_pt = base + [rng.uniform(-20, 20), -rng.uniform(0.5, 0.9) * horizon]
        canvas = Canvas(img)
        bark = make_material(rng, rgb(0.3, 0.2, 0.12), grain=0.2)
        _shaded_capsule(canvas, base, top_pt, rng.uniform(4, 9), bark, 60.0)
        green = hsv_bgr(rng.uniform(0.22, 0.33), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5))
        leaves = make_material(rng, green, green * 1.4, pattern=3, period=0.08, grain=0.35)
        for _k in range(int(rng.integers(4, 8))):
            c = top_pt + rng.normal(0, 18, size=2)
            f = ellipse(c, rng.uniform(14, 30), rng.uniform(12, 26), np.array([0.0, -1.0]), canvas.size)
            if f is not None:
                canvas.paint(f, leaves.colour(f.u, f.v, 100.0) * lambert(f, _SKY_LIGHT, 0.5), 0)
        img[:] = canvas.image


_SKY_LIGHT = np.array([-0.3, -0.6, 0.74]) / np.linalg.norm([-0.3, -0.6, 0.74])


def _ground(img: np.ndarray, rng: np.random.Generator, horizon: float, indoor: bool) -> None:
    hc, wc = img.shape[:2]
    h0 = int(horizon)
    if indoor or rng.random() < 0.5:  # tiles or pavement with perspective lines
        floor = hsv_bgr(rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.75))
        _fill(img, 0, h0, wc, hc, floor, -0.1)
        vx, line = rng.uniform(0.2, 0.8) * wc, (floor * 0.7).tolist()
        for x in np.linspace(-wc, 2 * wc, int(rng.integers(10, 22))):
            cv2.line(img, (int(vx * 16), h0 * 16), (int(x * 16), hc * 16), line, 1, cv2.LINE_AA, 4)
        depth, step = (hc - horizon) * rng.uniform(1.0, 1.5), rng.uniform(0.15, 0.5)
        for i in range(60):  # rows of tiles, closer together towards the horizon
            y = horizon + depth / (1.0 + i * step)
            if y - horizon < 3:
                break
            cv2.line(img, (0, int(y * 16)), (wc * 16, int(y * 16)), line, 1, cv2.LINE_AA, 4)
    else:  # grass or earth: blotchy noise
        colour = hsv_bgr(rng.uniform(0.18, 0.3), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.5))
        blot = cv2.resize(rng.uniform(-1, 1, size=((hc - h0) // 6 + 2, wc // 6 + 2)).astype(np.float32),
                          (wc, hc - h0), interpolation=cv2.INTER_LINEAR)
        img[h0:] = colour * (1.0 + 0.25 * blot)[..., None]


def _shaded_capsule(canvas: Canvas, a: np.ndarray, b: np.ndarray, r: float, material, scale_px: float) -> None:
    f = capsule(a, b, r, r * 0.85, canvas.size)
    if f is not None:
        canvas.paint(f, material.colour(f.u, f.v, scale_px) * lambert(f, _SKY_LIGHT, 0.4), 0)


def _box(img: np.ndarray, x: float, y: float, w: float, h: float, depth: float, colour: np.ndarray) -> None:
    """A box standing on ``(x, y)``: a front face ``w`` x ``h``, a lit top and a shaded side ``depth`` deep."""
    dx, dy = depth, -abs(depth) * 0.6
    side_x = x + w if depth > 0 else x
    faces = (
        (np.array([[x, y - h], [x + w, y - h], [x + w + dx, y - h + dy], [x + dx, y - h + dy]]), 1.25),
        (np.array([[side_x, y - h], [side_x + dx, y - h + dy], [side_x + dx, y + dy], [side_x, y]]), 0.7),
        (np.array([[x, y - h], [x + w, y - h], [x + w, y], [x, y]]), 1.0),
    )
    for pts, gain in faces:
        q = np.round(pts * 16).astype(np.int32)
        cv2.fillConvexPoly(img, q, np.clip(colour * gain, 0, 1).tolist(), cv2.LINE_AA, 4)


def _clutter(canvas: Canvas, rng: np.random.Generator, horizon: float, count: int, person_px: float) -> None:
    wc, hc = canvas.size
    for _ in range(count):
        x, y = rng.uniform(0, wc), rng.uniform(horizon - 20, hc)
        s = person_px * rng.uniform(0.12, 0.35) * (0.5 + (y - horizon) / max(hc - horizon, 1))
        kind = rng.random()
        colour = hsv_bgr(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.9))
        if kind < 0.45:  # box: front, top and side faces
            _box(canvas.image, x, y, s * rng.uniform(0.8, 1.8), s, 0.35 * s * rng.choice([-1.0, 1.0]), colour)
        elif kind < 0.7:  # ball
            f = ellipse(np.array([x, y - s / 2]), s / 2, s / 2, np.array([0.0, -1.0]), canvas.size)
            if f is not None:
                canvas.paint(f, colour * lambert(f, _SKY_LIGHT, 0.35), 0)
        else:  # stool / bench: seat and legs
            _fill(canvas.image, x - s * 0.6, y - s, x + s * 0.6, y - s * 0.85, colour, 0.1)
            for dx in (-0.5, 0.5):
                _shaded_capsule(canvas, np.array([x + dx * s, y - s * 0.9]), np.array([x + dx * s, y]),
                                max(1.5, s * 0.05), make_material(rng, colour * 0.7), s)


def _distractors(canvas: Canvas, rng: np.random.Generator, count: int, person_px: float) -> None:
    """Limb-like shapes: skin- or cloth-coloured shaded capsules, single or in jointed chains."""
    wc, hc = canvas.size
    for _ in range(count):
        if rng.random() < 0.5:
            k = rng.uniform(0, len(SKIN_TONES) - 1)
            material = make_material(rng, SKIN_TONES[int(round(k))], grain=0.03)
        else:
            material = random_cloth(rng)
        p = np.array([rng.uniform(0, wc), rng.uniform(0, hc)])
        angle = rng.uniform(0, 2 * np.pi)
        r = person_px * rng.uniform(0.02, 0.05)
        for _seg in range(int(rng.integers(1, 4))):
            q = p + person_px * rng.uniform(0.1, 0.25) * np.array([np.cos(angle), np.sin(angle)])
            _shaded_capsule(canvas, p, q, r, material, person_px)
            p, angle, r = q, angle + rng.uniform(-1.6, 1.6), r * 0.85


def make_scene(rng: np.random.Generator, image_size: tuple[int, int], distractors: int, clutter: int,
               person_px: float) -> Scene:
    """Paint one video's background canvas ``(CANVAS_SCALE * H, CANVAS_SCALE * W)`` and pick its lighting."""
    wc, hc = int(round(image_size[0] * CANVAS_SCALE)), int(round(image_size[1] * CANVAS_SCALE))
    img = np.zeros((hc, wc, 3), dtype=np.float32)
    indoor = bool(rng.random() < 0.45)
    horizon = float(rng.uniform(0.36, 0.5) * hc)
    (_wall if indoor else _outdoor)(img, rng, horizon)
    _ground(img, rng, horizon, indoor)
    canvas = Canvas(img)
    _clutter(canvas, rng, horizon, clutter, person_px)
    _distractors(canvas, rng, distractors, person_px)
    img = canvas.image
    low = cv2.resize(rng.uniform(-1, 1, size=(hc // 40 + 2, wc // 40 + 2)).astype(np.float32), (wc, hc),
                     interpolation=cv2.INTER_CUBIC)  # (Hc, Wc) uneven lighting
    img *= (1.0 + 0.12 * low)[..., None]
    img += rng.normal(0.0, 0.02, size=(hc, wc, 1)).astype(np.float32)  # surface grain
    light = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6), -rng.uniform(0.3, 0.7), rng.uniform(0.5, 0.8)])
    return Scene(
        background=np.clip(img, 0.0, 1.0),
        horizon=horizon,
        light=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.3, 0.5)),
        tint=(1.0 + rng.uniform(-0.06, 0.06, size=3)).astype(np.float32),
        indoor=indoor,
    )


def view(scene: Scene, camera: CameraPath, t: int, image_size: tuple[int, int]) -> np.ndarray:
    """The background seen by the camera at frame ``t``: ``(H, W, 3)`` float32."""
    return cv2.warpAffine(scene.background, camera.matrices[t].astype(np.float64), image_size,
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
