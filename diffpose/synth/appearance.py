"""Per-person looks: skin, hair and clothing materials with procedural textures.

A :class:`Material` colours a shape from its texture coordinates ``(u, v)`` (pixels along and across the
shape, so patterns stick to the moving limb): a base colour, an optional second colour laid out as stripes,
plaid or dots, and a fabric grain from a small random tile. Periods are in body heights, so a pattern
scales with the person. Colours are float32 BGR in [0, 1].
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

PLAIN, HSTRIPES, VSTRIPES, PLAID, DOTS = range(5)
_GRAIN_TILE = 16


def hsv_bgr(h: float, s: float, v: float) -> np.ndarray:
    """HSV (each in [0, 1]) -> ``(3,)`` float32 BGR."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return np.array([b, g, r], dtype=np.float32)


def rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([b, g, r], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Material:
    """A textured colour. ``grain_tile`` is ``(16, 16)`` float32 in [-1, 1]."""

    base: np.ndarray
    second: np.ndarray
    pattern: int
    period: float  # pattern period in body heights
    grain: float  # relative strength of the fabric grain
    grain_tile: np.ndarray

    def colour(self, u: np.ndarray, v: np.ndarray, height_px: float) -> np.ndarray:
        """``(h, w, 3)`` colours at texture coordinates ``u, v`` ``(h, w)`` for a person ``height_px`` tall."""
        period = np.float32(max(self.period * height_px, 3.0))
        w = np.float32(2 * np.pi) / period
        if self.pattern == HSTRIPES:
            m = 0.5 + 0.5 * np.clip(3.0 * np.sin(u * w), -1.0, 1.0)
        elif self.pattern == VSTRIPES:
            m = 0.5 + 0.5 * np.clip(3.0 * np.sin(v * w), -1.0, 1.0)
        elif self.pattern == PLAID:
            m = 0.25 * (2.0 + np.clip(3.0 * np.sin(u * w), -1.0, 1.0) + np.clip(3.0 * np.sin(v * w), -1.0, 1.0))
        elif self.pattern == DOTS:
            fu = u / period - np.floor(u / period) - 0.5
            fv = v / period - np.floor(v / period) - 0.5
            m = np.clip((0.28 - np.sqrt(fu * fu + fv * fv)) * period, 0.0, 1.0)
        else:
            m = None
        col = np.broadcast_to(self.base, u.shape + (3,)) if m is None else \
            self.base + (self.second - self.base) * m[..., None]  # (h, w, 3)
        if self.grain > 0:
            inv_cell = np.float32(1.0 / max(1.0, 0.012 * height_px))
            iu = (u * inv_cell).astype(np.int32) & (_GRAIN_TILE - 1)  # truncation mirrors the tile at 0: harmless
            iv = (v * inv_cell).astype(np.int32) & (_GRAIN_TILE - 1)
            col = col * (1.0 + np.float32(self.grain) * self.grain_tile[iu, iv])[..., None]
        return col.astype(np.float32, copy=False)


def make_material(rng: np.random.Generator, base: np.ndarray, second: np.ndarray | None = None,
                  pattern: int = PLAIN, period: float = 0.05, grain: float = 0.08) -> Material:
    tile = rng.uniform(-1.0, 1.0, size=(_GRAIN_TILE, _GRAIN_TILE)).astype(np.float32)
    return Material(base=base, second=base if second is None else second, pattern=pattern, period=period,
                    grain=grain, grain_tile=tile)


def random_cloth(rng: np.random.Generator, patterned: float = 0.45) -> Material:
    """A garment: any hue, muted or saturated; sometimes striped, plaid or dotted."""
    base = hsv_bgr(rng.random(), rng.uniform(0.15, 0.85), rng.uniform(0.25, 0.95))
    if rng.random() < patterned:
        pattern = int(rng.choice([HSTRIPES, VSTRIPES, PLAID, DOTS]))
        second = hsv_bgr(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 1.0))
        return make_material(rng, base, second, pattern, float(rng.uniform(0.025, 0.07)), 0.06)
    return make_material(rng, base, grain=float(rng.uniform(0.04, 0.14)))


def _pants(rng: np.random.Generator) -> Material:
    kind = rng.random()
    if kind < 0.4:  # denim
        base = hsv_bgr(rng.uniform(0.58, 0.64), rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.6))
        return make_material(rng, base, grain=0.14)
    if kind < 0.65:  # dark trousers
        return make_material(rng, hsv_bgr(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.08, 0.25)), grain=0.08)
    if kind < 0.8:  # khaki / beige
        return make_material(rng, hsv_bgr(rng.uniform(0.08, 0.13), rng.uniform(0.2, 0.45), rng.uniform(0.5, 0.8)))
    return random_cloth(rng, patterned=0.2)


SKIN_TONES = (rgb(0.96, 0.80, 0.69), rgb(0.89, 0.68, 0.55), rgb(0.76, 0.55, 0.40), rgb(0.55, 0.37, 0.25),
              rgb(0.36, 0.23, 0.15))
HAIR_COLOURS = (rgb(0.06, 0.05, 0.04), rgb(0.18, 0.11, 0.06), rgb(0.35, 0.22, 0.11), rgb(0.75, 0.6, 0.35),
                rgb(0.55, 0.55, 0.55), rgb(0.5, 0.22, 0.1))


@dataclass(frozen=True, eq=False)
class Appearance:
    """How one person looks. ``belt`` is the fraction of the torso length where trousers begin.

    A shirt has a front and a back, as real clothes do: the front shows a neckline (a V or a round opening
    showing skin) and sometimes a print on the chest (``chest_print``, a colour); the back is plain.
    """

    skin: Material
    hair: Material
    shirt: Material
    pants: Material
    shoes: Material
    hat: Material | None
    long_sleeves: bool
    long_pants: bool
    belt: float
    v_neck: bool = True
    chest_print: np.ndarray | None = None


def sample_appearance(rng: np.random.Generator) -> Appearance:
    k = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(k)
    tone = SKIN_TONES[i] + (SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[i]) * np.float32(k - i)
    skin = make_material(rng, tone, grain=0.03)
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))] * np.float32(rng.uniform(0.8, 1.2))
    shoes = rgb(0.9, 0.9, 0.88) if rng.random() < 0.3 else hsv_bgr(rng.random(), rng.uniform(0, 0.5),
                                                                   rng.uniform(0.05, 0.35))
    return Appearance(
        skin=skin,
        hair=make_material(rng, np.clip(hair, 0, 1), pattern=VSTRIPES, second=np.clip(hair * 0.75, 0, 1),
                           period=0.008, grain=0.1),
        shirt=random_cloth(rng),
        pants=_pants(rng),
        shoes=make_material(rng, shoes, grain=0.05),
        hat=random_cloth(rng, patterned=0.0) if rng.random() < 0.15 else None,
        long_sleeves=bool(rng.random() < 0.5),
        long_pants=bool(rng.random() < 0.75),
        belt=float(rng.uniform(0.78, 0.86)),
        v_neck=bool(rng.random() < 0.5),
        chest_print=hsv_bgr(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 1.0)) if rng.random() < 0.5 else None,
    )
