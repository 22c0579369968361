"""Camera and sensor effects: motion blur, blur bursts, dropouts, vignetting, noise and JPEG.

All per-frame choices for a video are drawn up front into an :class:`EffectsPlan` (so they do not depend
on what the renderer drew), then :func:`finish_frame` turns a float BGR frame into JPEG bytes.
Two of them are what temporal context can fix: *blur bursts* (1-3 frames smeared by a long motion kernel
or defocus) and *dropouts* (1-2 frames that go dark, or whose rows tear sideways). Torn rows hide what was
there, so they are painted into the canvas maps like an occluder (:func:`tear_rows`); darkness is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from diffpose.synth.raster import Canvas

NO_DROPOUT, DARK, TEAR = 0, 1, 2
TEAR_OWNER = -1000  # ``Canvas.owner`` code for torn rows
NOISE_PAD = 48  # the noise bank is this much larger than a frame in each direction


@dataclass
class EffectsPlan:
    """Per-frame effect settings, all ``(T,)`` unless noted."""

    burst_len: np.ndarray  # extra motion-blur length in pixels (0 = no burst)
    burst_angle: np.ndarray  # its direction, radians
    defocus: np.ndarray  # Gaussian blur sigma in pixels (0 = sharp)
    dropout: np.ndarray  # NO_DROPOUT, DARK or TEAR
    gain: np.ndarray  # exposure flicker
    quality: np.ndarray  # JPEG quality
    noise_sigma: float  # sensor noise std, 8-bit levels
    vignette: float  # corner darkening (0 = none)


def _bursts(rng: np.random.Generator, n: int, prob: float, lengths: tuple[int, int]) -> np.ndarray:
    """``(n,)`` bool: events start with probability ``prob`` per frame and last ``lengths`` frames (inclusive)."""
    on = np.zeros(n, dtype=bool)
    starts = rng.random(n) < prob
    durations = rng.integers(lengths[0], lengths[1] + 1, size=n)
    for t in np.flatnonzero(starts):
        on[t: t + durations[t]] = True
    return on


def plan_effects(rng: np.random.Generator, n: int, burst_prob: float, dropout_prob: float,
                 noise_sigma: tuple[float, float], jpeg_quality: tuple[int, int]) -> EffectsPlan:
    burst = _bursts(rng, n, burst_prob, (1, 3))
    heavy_len = rng.uniform(7.0, 16.0, size=n)
    use_defocus = rng.random(n) < 0.3
    dropout = np.where(_bursts(rng, n, dropout_prob, (1, 2)), np.where(rng.random(n) < 0.5, DARK, TEAR), NO_DROPOUT)
    q0 = rng.integers(jpeg_quality[0], jpeg_quality[1] + 1)
    return EffectsPlan(
        burst_len=np.where(burst & ~use_defocus, heavy_len, 0.0),
        burst_angle=rng.uniform(0, np.pi, size=n),
        defocus=np.where(burst & use_defocus, heavy_len / 4.0, 0.0),
        dropout=dropout.astype(np.int64),
        gain=1.0 + 0.03 * rng.standard_normal(n),
        quality=np.clip(q0 + rng.integers(-4, 5, size=n), 5, 100),
        noise_sigma=float(rng.uniform(*noise_sigma)),
        vignette=float(rng.uniform(0.0, 0.35)),
    )


def motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    """A normalised line kernel for a blur of ``(dx, dy)`` pixels (``None`` when shorter than one pixel)."""
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    r = int(np.ceil(length / 2)) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1), dtype=np.float32)
    p0 = (int(round((r - dx / 2) * 16)), int(round((r - dy / 2) * 16)))
    p1 = (int(round((r + dx / 2) * 16)), int(round((r + dy / 2) * 16)))
    cv2.line(k, p0, p1, 1.0, 1, cv2.LINE_AA, 4)
    return k / k.sum()


def tear_rows(canvas: Canvas, rng: np.random.Generator) -> None:
    """A dropout: 1-3 bands of rows shifted sideways. The bands count as covering what was there."""
    w, h = canvas.size
    canvas.count += 1
    for _ in range(int(rng.integers(1, 4))):
        y0 = int(rng.integers(0, h - 4))
        y1 = min(h, y0 + int(rng.integers(6, 33)))
        shift = int(rng.integers(12, 60)) * (1 if rng.random() < 0.5 else -1)
        band = np.roll(canvas.image[y0:y1], shift, axis=1)
        canvas.image[y0:y1] = band * rng.uniform(0.6, 1.3, size=3).astype(np.float32)
        canvas.order[y0:y1] = canvas.count
        canvas.owner[y0:y1] = TEAR_OWNER


def vignette_map(size: tuple[int, int], strength: float) -> np.ndarray:
    """``(H, W, 1)`` float32 gain, 1 at the centre falling to ``1 - strength`` in the corners; size is ``(W, H)``."""
    w, h = size
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2.0  # (H, W), 1 in the corners
    return (1.0 - strength * r2)[..., None]


def noise_bank(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """``(H + NOISE_PAD, W + NOISE_PAD, 3)`` float32 standard normal noise for one video; ``size`` is ``(W, H)``."""
    return rng.standard_normal((size[1] + NOISE_PAD, size[0] + NOISE_PAD, 3), dtype=np.float32)


def finish_frame(image: np.ndarray, plan: EffectsPlan, t: int, camera_motion: np.ndarray, tint: np.ndarray,
                 vignette: np.ndarray, noise_bank: np.ndarray, rng: np.random.Generator) -> bytes:
    """Blur, expose, add noise and JPEG-encode one frame.

    Args:
        image: ``(H, W, 3)`` float32 BGR in [0, 1] (modified in place).
        camera_motion: ``(2,)`` image displacement since the previous frame (half of it smears, a 1/2 shutter).
        tint: ``(3,)`` white balance gain; ``vignette``: ``(H, W, 1)`` from :func:`vignette_map`.
        noise_bank: from :func:`noise_bank`; each frame reads a window of it at a random offset.
        rng: draws the noise offset and sign.
    """
    dx, dy = 0.5 * camera_motion
    if plan.burst_len[t] > 0:
        dx += plan.burst_len[t] * np.cos(plan.burst_angle[t])
        dy += plan.burst_len[t] * np.sin(plan.burst_angle[t])
    kernel = motion_kernel(dx, dy)
    if kernel is not None:
        image = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT101)
    if plan.defocus[t] > 0:
        image = cv2.GaussianBlur(image, (0, 0), float(plan.defocus[t]))
    gain = tint * np.float32(plan.gain[t])
    if plan.dropout[t] == DARK:
        gain = gain * np.float32(rng.uniform(0.12, 0.3))
    h, w = image.shape[:2]
    image = image * (vignette * (gain * np.float32(255.0)))  # (H, W, 3) in 8-bit levels
    # Sensor noise: a window of the video's noise bank at a random offset, with a random sign.
    dy, dx = rng.integers(0, NOISE_PAD + 1, size=2)
    sigma = plan.noise_sigma * (2.0 if plan.dropout[t] == DARK else 1.0) * (1 if rng.random() < 0.5 else -1)
    image += noise_bank[dy: dy + h, dx: dx + w] * np.float32(sigma)
    np.maximum(image, 0.0, out=image)
    pixels = cv2.convertScaleAbs(image)  # rounds and saturates at 255
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(plan.quality[t])])
    if not ok:  # pragma: no cover - cv2 only fails on invalid arguments
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
