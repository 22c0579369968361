"""Rasterising shaded, textured shapes into a frame that also records *who is in front where*.

A :class:`Canvas` holds the colour image and two label maps of the same ``(H, W)`` size:

* ``order``: the draw index of the shape that is on top at each pixel (0 = background). Shapes are drawn
  back to front (painter's algorithm), so a larger index means nearer to the camera. The occlusion flag
  of a joint is read off this map (see :mod:`diffpose.synth.annotate`).
* ``owner``: who drew that pixel: ``k + 1`` for person ``k``, a negative code for occluders, 0 for the
  background.

Shapes are *fields* over a small region of interest: an anti-aliased coverage ``alpha``, texture coordinates
``(u, v)`` in pixels along and across the shape, and a surface normal for Lambert shading (cylinders for
limbs, ellipsoids for heads). A pixel counts as covered by a shape when its ``alpha >= 0.5``.
Colours are float32 BGR in [0, 1]; coordinates are ``(x, y)`` pixels with pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Field:
    """A shape on the region ``[y0:y0+h, x0:x0+w]``; every array is ``(h, w)`` float32."""

    x0: int
    y0: int
    alpha: np.ndarray
    u: np.ndarray  # pixels along the shape's axis
    v: np.ndarray  # pixels across it (signed)
    normal: tuple[np.ndarray, np.ndarray, np.ndarray]  # unit normal (x right, y down, z towards the camera)


class Canvas:
    """A frame being painted: colour ``(H, W, 3)`` plus ``order`` and ``owner`` maps ``(H, W)`` int32."""

    def __init__(self, image: np.ndarray):
        self.image = np.ascontiguousarray(image, dtype=np.float32)
        h, w = self.image.shape[:2]
        self.order = np.zeros((h, w), dtype=np.int32)
        self.owner = np.zeros((h, w), dtype=np.int32)
        self.count = 0

    @property
    def size(self) -> tuple[int, int]:
        """``(W, H)``."""
        return self.image.shape[1], self.image.shape[0]

    def paint(self, f: Field, colour: np.ndarray, owner: int) -> int:
        """Blend ``colour`` ``(h, w, 3)`` with coverage ``f.alpha``; record the pixels it covers. Returns its order."""
        h, w = f.alpha.shape
        ys, xs = slice(f.y0, f.y0 + h), slice(f.x0, f.x0 + w)
        region = self.image[ys, xs]
        region += f.alpha[..., None] * (colour - region)
        covered = f.alpha >= 0.5
        self.count += 1
        self.order[ys, xs][covered] = self.count
        self.owner[ys, xs][covered] = owner
        return self.count


def _roi(lo_x: float, lo_y: float, hi_x: float, hi_y: float, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer pixel window ``(x0, y0, x1, y1)`` (exclusive ends) covering the box, clipped to ``size`` (W, H)."""
    x0, y0 = max(int(np.floor(lo_x)) - 1, 0), max(int(np.floor(lo_y)) - 1, 0)
    x1, y1 = min(int(np.ceil(hi_x)) + 2, size[0]), min(int(np.ceil(hi_y)) + 2, size[1])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _grid(x0: int, y0: int, x1: int, y1: int, ox: float, oy: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates relative to ``(ox, oy)``: ``(1, w)`` x and ``(h, 1)`` y float32 (they broadcast)."""
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(ox)
    ys = np.arange(y0, y1, dtype=np.float32) - np.float32(oy)
    return xs[None, :], ys[:, None]  # (1, w), (h, 1)


def capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float, size: tuple[int, int]) -> Field | None:
    """A tapered capsule from point ``a`` (radius ``ra``) to ``b`` (radius ``rb``), shaded as a rounded cylinder."""
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    r = max(ra, rb)
    roi = _roi(min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r, size)
    if roi is None:
        return None
    px, py = _grid(*roi, ax, ay)  # (1, w), (h, 1)
    dx, dy = bx - ax, by - ay
    length = max(float(np.hypot(dx, dy)), 1e-6)
    ux, uy = np.float32(dx / length), np.float32(dy / length)
    along = px * ux + py * uy  # (h, w)
    across = py * ux - px * uy  # (h, w)
    t = np.minimum(np.maximum(along * np.float32(1.0 / length), 0.0), 1.0)
    rad = np.float32(ra) + np.float32(rb - ra) * t
    cx, cy = px - t * np.float32(dx), py - t * np.float32(dy)
    dist = np.sqrt(cx * cx + cy * cy)
    alpha = np.minimum(np.maximum(rad - dist + 0.5, 0.0), 1.0)
    inv = 1.0 / np.maximum(rad, 0.5)
    nx, ny = cx * inv, cy * inv
    nz = np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))
    return Field(roi[0], roi[1], alpha, along, across, (nx, ny, nz))


def ellipse(c: np.ndarray, a: float, b: float, axis_up: np.ndarray, size: tuple[int, int]) -> Field | None:
    """An ellipse centred at ``c`` with half-width ``a`` and half-height ``b`` along unit ``axis_up``, shaded as
    an ellipsoid. ``u`` runs along ``axis_up`` (towards its tip), ``v`` across."""
    cx, cy = float(c[0]), float(c[1])
    r = max(a, b)
    roi = _roi(cx - r, cy - r, cx + r, cy + r, size)
    if roi is None or a <= 0 or b <= 0:
        return None
    px, py = _grid(*roi, cx, cy)  # (1, w), (h, 1)
    upx, upy = np.float32(axis_up[0]), np.float32(axis_up[1])
    ex, ey = -upy, upx  # e1: axis_up turned a quarter (image-right when up)
    along = px * upx + py * upy  # (h, w)
    across = px * ex + py * ey  # (h, w)
    qx, qy = across * np.float32(1.0 / a), along * np.float32(1.0 / b)
    rho = np.sqrt(qx * qx + qy * qy)
    alpha = np.minimum(np.maximum((1.0 - rho) * np.float32(min(a, b)) + 0.5, 0.0), 1.0)
    s = np.minimum(rho, 1.0) / np.maximum(rho, 1e-6)
    qx, qy = qx * s, qy * s  # clamp to the unit disc for the normal
    nx = qx * ex + qy * upx
    ny = qx * ey + qy * upy
    nz = np.sqrt(np.maximum(1.0 - qx * qx - qy * qy, 0.0))
    return Field(roi[0], roi[1], alpha, along, across, (nx, ny, nz))


def torso(top: np.ndarray, bottom: np.ndarray, w_top: float, w_waist: float, w_bottom: float, cap: float,
          size: tuple[int, int]) -> Field | None:
    """A torso from neck base ``top`` to pelvis ``bottom``: rounded shoulders of half-width ``w_top``, a waist
    (at 60 % of the length) and hips of half-width ``w_bottom``; it extends ``cap`` pixels above ``top`` and
    below ``bottom``. Shaded as a cylinder across its width."""
    ax, ay, bx, by = float(top[0]), float(top[1]), float(bottom[0]), float(bottom[1])
    r = max(w_top, w_bottom, w_waist) + cap
    roi = _roi(min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r, size)
    if roi is None:
        return None
    px, py = _grid(*roi, ax, ay)  # (1, w), (h, 1)
    dx, dy = bx - ax, by - ay
    length = max(float(np.hypot(dx, dy)), 1e-6)
    ux, uy = np.float32(dx / length), np.float32(dy / length)
    along = px * ux + py * uy  # (h, w)
    across = py * ux - px * uy  # (h, w)
    t = along * np.float32(1.0 / length)
    k = np.minimum(np.maximum(t * np.float32(1 / 0.6), 0.0), 1.0)
    k2 = np.minimum(np.maximum((t - 0.6) * np.float32(1 / 0.4), 0.0), 1.0)
    hw = np.where(t < 0.6, np.float32(w_top) + np.float32(w_waist - w_top) * k * k,
                  np.float32(w_waist) + np.float32(w_bottom - w_waist) * k2)
    # Round the shoulders: shrink the width towards the top end, reaching 30 % at the cap's tip.
    tr, top_t = 0.22, -cap / length
    q = np.minimum(np.maximum((tr - t) * np.float32(1.0 / (tr - top_t)), 0.0), 1.0)
    hw = hw * np.sqrt(np.maximum(1.0 - 0.91 * q * q, 0.0))
    ends = np.minimum(along + np.float32(cap), np.float32(length + cap) - along)
    alpha = np.minimum(np.maximum(hw - np.abs(across) + 0.5, 0.0), 1.0) * np.minimum(np.maximum(ends + 0.5, 0.0), 1.0)
    s = np.minimum(np.maximum(across / np.maximum(hw, 0.5), -1.0), 1.0)
    nz = np.sqrt(np.maximum(1.0 - s * s, 0.0))
    return Field(roi[0], roi[1], alpha, along, across, (s * -uy, s * ux, nz))


def polygon(points: np.ndarray, size: tuple[int, int]) -> Field | None:
    """A filled polygon ``(N, 2)`` (anti-aliased by 4x4 supersampling); flat normal, ``u`` = y, ``v`` = x."""
    pts = np.asarray(points, dtype=np.float64)
    roi = _roi(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max(), size)
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    h, w = y1 - y0, x1 - x0
    sub = np.zeros((h * 4, w * 4), dtype=np.uint8)
    q = np.round((pts - [x0 - 0.375, y0 - 0.375]) * 4 * 16).astype(np.int32)  # 4x grid, 4 bits of subpixel shift
    cv2.fillPoly(sub, [q], 255, lineType=cv2.LINE_8, shift=4)
    alpha = cv2.resize(sub, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0  # (h, w)
    px, py = _grid(x0, y0, x1, y1, 0.0, 0.0)  # (1, w), (h, 1)
    zero = np.zeros((h, w), dtype=np.float32)
    return Field(x0, y0, alpha, py + zero, px + zero, (zero, zero, zero + 1.0))


def lambert(f: Field, light: np.ndarray, ambient: float) -> np.ndarray:
    """``(h, w, 1)`` shading factor ``ambient + (1 - ambient) * max(0, n . light)`` with a faint highlight."""
    nx, ny, nz = f.normal
    lx, ly, lz = (np.float32(c) for c in light)
    diffuse = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)  # (h, w)
    d2 = diffuse * diffuse
    d4 = d2 * d2
    spec = d4 * d4 * d4 * np.float32(0.12)  # diffuse^12
    return (np.float32(ambient) + np.float32(1.0 - ambient) * diffuse + spec)[..., None]  # (h, w, 1)
