"""Keypoints <-> Gaussian heatmaps (the codec idea of mmpose; our own implementation).

Coordinate mapping, stated once for the whole package
-----------------------------------------------------
Crop pixels and heatmap pixels both put pixel centres at integer coordinates (see
:mod:`diffpose.keypoints`). A heatmap of width ``W_hm`` covers a crop of width ``W_in``, so one heatmap
pixel spans ``s_x = W_in / W_hm`` crop pixels (likewise ``s_y`` for heights), and the two pixel grids share
their outer edges (crop pixel ``-0.5`` is heatmap pixel ``-0.5``). Hence::

    x_hm = (x_in + 0.5) / s_x - 0.5          x_in = (x_hm + 0.5) * s_x - 0.5

and the same for ``y`` with ``s_y``. For a 192x256 crop and a 48x64 heatmap (``s = 4``), crop pixel
``(1.5, 1.5)`` is heatmap pixel ``(0, 0)``.

Encoding puts an unnormalised Gaussian ``exp(-d^2 / (2 sigma^2))`` (``sigma`` in heatmap pixels) at the
exact sub-pixel position, so its value is 1 at the centre and the peak pixel value is at most 1.
Decoding takes the argmax per joint and refines it with DARK (Zhang et al., CVPR 2020): a second-order
Taylor expansion of the log of the (optionally Gaussian-smoothed) heatmap around the argmax, with the
offset clipped to +-1 heatmap pixel. For an exact Gaussian the log is a quadratic and central differences
of a quadratic are exact, so the refinement recovers the centre to float precision, borders included.

Both directions accept numpy arrays or torch tensors and return the same kind (torch on the input's
device). Everything is vectorised over ``(N, J)``; there is no Python loop over joints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from diffpose.errors import DiffPoseError

REFINE_MODES = ("dark", "quarter", "none")
_LOG_EPS = 1e-10  # floor before the log in DARK: heatmaps are >= 0 but may hold exact zeros


def _as_tensor(x: Any, name: str) -> tuple[torch.Tensor, bool]:
    """``(tensor, was_numpy)``: numpy arrays are wrapped (float32), tensors pass through."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), True
    if isinstance(x, torch.Tensor):
        return x, False
    raise DiffPoseError(f"expected a numpy array or torch tensor, got {type(x).__name__}", field=name)


def _check_shape(x: torch.Tensor, name: str, expected: str, ndim: int) -> None:
    if x.ndim != ndim:
        raise DiffPoseError(f"expected shape {expected}, got {tuple(x.shape)}", field=name)


class HeatmapCodec:
    """Encode keypoints of a crop as heatmaps and decode heatmaps back to keypoints.

    Args:
        input_size: the crop as ``(W, H)`` in pixels (note the order: width first).
        heatmap_size: the heatmap as ``(H, W)`` (array-shape order).
        sigma: Gaussian standard deviation in heatmap pixels.
        refine: sub-pixel refinement at decoding: ``"dark"`` (default), ``"quarter"`` (DCPose's quarter-pixel
            shift toward the higher neighbour) or ``"none"`` (plain argmax).
        blur_sigma: std (heatmap pixels) of the Gaussian smoothing DARK may apply before the log; 0 (default)
            turns it off. Smoothing a Gaussian keeps its centre and tames pixel noise in predicted heatmaps,
            but the reflect padding biases joints within ``3 * blur_sigma`` pixels of the heatmap border
            (by up to a pixel), so it is off by default: without it decoding is exact everywhere.
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], sigma: float,
                 refine: str = "dark", blur_sigma: float = 0.0):
        if refine not in REFINE_MODES:
            raise DiffPoseError(f"unknown refine mode {refine!r}; choose one of {REFINE_MODES}", field="refine")
        if sigma <= 0:
            raise DiffPoseError(f"sigma must be > 0, got {sigma}", field="sigma")
        self.input_size = (int(input_size[0]), int(input_size[1]))  # (W, H)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))  # (H, W)
        if min(self.heatmap_size) < 3:
            raise DiffPoseError(f"heatmaps must be at least 3x3, got {self.heatmap_size}", field="heatmap_size")
        self.sigma = float(sigma)
        self.refine = refine
        self.blur_sigma = float(blur_sigma)
        self.stride = (self.input_size[0] / self.heatmap_size[1], self.input_size[1] / self.heatmap_size[0])  # (sx, sy)

    @classmethod
    def from_model_config(cls, model_cfg: Any, **kwargs: Any) -> HeatmapCodec:
        """The codec matching a :class:`~diffpose.config.ModelConfig` (crop, heatmap size, sigma)."""
        h, w = model_cfg.backbone.image_size
        return cls(input_size=(w, h), heatmap_size=tuple(model_cfg.heatmap_size), sigma=model_cfg.sigma, **kwargs)

    def __repr__(self) -> str:
        return (f"HeatmapCodec(input_size(W,H)={self.input_size}, heatmap_size(H,W)={self.heatmap_size}, "
                f"sigma={self.sigma}, refine={self.refine!r})")

    # ------------------------------------------------------------------------------------------
    # The coordinate mapping
    # ------------------------------------------------------------------------------------------
    def to_heatmap(self, xy: Any) -> Any:
        """Crop pixels ``(..., 2)`` -> heatmap pixels ``(..., 2)``: ``x_hm = (x_in + 0.5) / s - 0.5``."""
        sx, sy = self.stride
        out = xy * 1.0  # a float copy of either kind
        out[..., 0] = (xy[..., 0] + 0.5) / sx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) / sy - 0.5
        return out

    def to_input(self, xy: Any) -> Any:
        """Heatmap pixels ``(..., 2)`` -> crop pixels ``(..., 2)``: ``x_in = (x_hm + 0.5) * s - 0.5``."""
        sx, sy = self.stride
        out = xy * 1.0
        out[..., 0] = (xy[..., 0] + 0.5) * sx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) * sy - 0.5
        return out

    # ------------------------------------------------------------------------------------------
    # Encoding
    # ------------------------------------------------------------------------------------------
    def encode(self, keypoints: Any, visible: Any) -> tuple[Any, Any]:
        """Gaussian heatmaps for keypoints in crop pixels.

        Args:
            keypoints: ``(N, J, 2)`` crop pixels ``(x, y)``; non-finite values count as absent.
            visible: ``(N, J)``; nonzero means labelled (any dtype).

        Returns:
            ``heatmaps (N, J, H, W)`` float32 in ``[0, 1]`` and ``weights (N, J)`` float32 in ``{0, 1}``.
            A joint that is not visible, or whose centre falls outside the heatmap's pixel area
            (``x_hm`` outside ``[-0.5, W - 0.5)``, same for ``y``), gets weight 0 and an all-zero heatmap.
        """
        kp, was_np = _as_tensor(keypoints, "keypoints")
        vis, _ = _as_tensor(visible, "visible")
        _check_shape(kp, "keypoints", "(N, J, 2)", 3)
        _check_shape(vis, "visible", "(N, J)", 2)
        if kp.shape[-1] != 2 or vis.shape != kp.shape[:2]:
            raise DiffPoseError(f"keypoints {tuple(kp.shape)} and visible {tuple(vis.shape)} must be "
                                "(N, J, 2) and (N, J)", field="keypoints")
        kp = kp.float()
        vis = vis.to(kp.device)
        hm_h, hm_w = self.heatmap_size
        xy = self.to_heatmap(kp)  # (N, J, 2)
        x, y = xy[..., 0], xy[..., 1]  # (N, J) each
        finite = torch.isfinite(x) & torch.isfinite(y)
        inside = (x >= -0.5) & (x < hm_w - 0.5) & (y >= -0.5) & (y < hm_h - 0.5)
        weights = ((vis != 0) & finite & inside).float()  # (N, J)
        x = torch.where(finite, x, torch.zeros_like(x))
        y = torch.where(finite, y, torch.zeros_like(y))
        # Separable Gaussian: exp(-(dx^2 + dy^2) / 2s^2) = gx(x) * gy(y).
        cols = torch.arange(hm_w, dtype=torch.float32, device=kp.device)
        rows = torch.arange(hm_h, dtype=torch.float32, device=kp.device)
        gx = torch.exp(-((cols - x[..., None]) ** 2) / (2 * self.sigma**2))  # (N, J, W)
        gy = torch.exp(-((rows - y[..., None]) ** 2) / (2 * self.sigma**2))  # (N, J, H)
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]  # (N, J, H, W)
        if was_np:
            return heatmaps.numpy(), weights.numpy()
        return heatmaps, weights

    # ------------------------------------------------------------------------------------------
    # Decoding
    # ------------------------------------------------------------------------------------------
    def decode(self, heatmaps: Any) -> tuple[Any, Any]:
        """Keypoints in crop pixels from heatmaps.

        Args:
            heatmaps: ``(N, J, H, W)``, ``(H, W)`` equal to ``heatmap_size``; values are expected in ``[0, 1]``.

        Returns:
            ``keypoints (N, J, 2)`` crop pixels ``(x, y)`` and ``scores (N, J)`` = the heatmap maximum.
        """
        hm, was_np = _as_tensor(heatmaps, "heatmaps")
        _check_shape(hm, "heatmaps", "(N, J, H, W)", 4)
        if tuple(hm.shape[-2:]) != self.heatmap_size:
            raise DiffPoseError(f"expected heatmaps of (H, W) = {self.heatmap_size}, got {tuple(hm.shape[-2:])}",
                                field="heatmaps")
        hm = hm.detach().float()
        n, j, hm_h, hm_w = hm.shape
        flat = hm.reshape(n, j, hm_h * hm_w)  # (N, J, H*W)
        scores, idx = flat.max(dim=-1)  # (N, J) each
        px = (idx % hm_w).float()
        py = torch.div(idx, hm_w, rounding_mode="floor").float()
        xy = torch.stack([px, py], dim=-1)  # (N, J, 2) integer heatmap pixels
        if self.refine == "dark":
            xy = xy + self._dark_offset(hm, idx)
        elif self.refine == "quarter":
            xy = xy + 0.25 * torch.sign(self._gradient_at(hm, idx, log=False))
        keypoints = self.to_input(xy)
        if was_np:
            return keypoints.numpy(), scores.numpy()
        return keypoints, scores

    def _blur(self, hm: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian smoothing of ``(N, J, H, W)`` with reflect padding; peak height preserved."""
        radius = int(math.ceil(3 * self.blur_sigma))
        radius = min(radius, hm.shape[-1] - 1, hm.shape[-2] - 1)
        if self.blur_sigma <= 0 or radius < 1:
            return hm
        n, j, hm_h, hm_w = hm.shape
        taps = torch.arange(-radius, radius + 1, dtype=hm.dtype, device=hm.device)
        kernel = torch.exp(-(taps**2) / (2 * self.blur_sigma**2))
        kernel = kernel / kernel.sum()  # (k,)
        x = hm.reshape(n * j, 1, hm_h, hm_w)  # (N*J, 1, H, W)
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")  # (N*J, 1, H+2r, W+2r)
        x = F.conv2d(x, kernel.view(1, 1, 1, -1))  # (N*J, 1, H+2r, W)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1))  # (N*J, 1, H, W)
        x = x.reshape(n, j, hm_h, hm_w)  # (N, J, H, W)
        # DARK rescales so the smoothed map keeps the original maximum (keeps log values comparable).
        peak_in = hm.amax(dim=(2, 3), keepdim=True)
        peak_out = x.amax(dim=(2, 3), keepdim=True).clamp_min(_LOG_EPS)
        return x * (peak_in / peak_out)

    def _neighbourhood(self, hm: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
        """The 3x3 values ``(N, J, 3, 3)`` centred on integer pixels ``(cx, cy)`` (each ``(N, J)``, off the border)."""
        n, j, hm_h, hm_w = hm.shape
        offs = torch.arange(-1, 2, device=hm.device)
        rows = cy[..., None, None] + offs[:, None]  # (N, J, 3, 1)
        cols = cx[..., None, None] + offs[None, :]  # (N, J, 1, 3)
        lin = (rows * hm_w + cols).reshape(n, j, 9)  # (N, J, 9)
        return torch.gather(hm.reshape(n, j, hm_h * hm_w), 2, lin).reshape(n, j, 3, 3)  # (N, J, 3, 3)

    def _stencil_centre(self, hm: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The argmax pixel moved one pixel inward when it lies on the border, so a 3x3 stencil fits."""
        hm_h, hm_w = hm.shape[-2:]
        cx = (idx % hm_w).clamp(1, hm_w - 2)
        cy = torch.div(idx, hm_w, rounding_mode="floor").clamp(1, hm_h - 2)
        return cx, cy

    def _gradient_at(self, hm: torch.Tensor, idx: torch.Tensor, log: bool) -> torch.Tensor:
        """Central-difference gradient ``(N, J, 2)`` (d/dx, d/dy) near the argmax (of the log if ``log``)."""
        nb = self._neighbourhood(hm, *self._stencil_centre(hm, idx))
        if log:
            nb = torch.log(nb.clamp_min(_LOG_EPS))
        return torch.stack([nb[..., 1, 2] - nb[..., 1, 0], nb[..., 2, 1] - nb[..., 0, 1]], dim=-1) * 0.5

    def _dark_offset(self, hm: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """DARK: offset ``(N, J, 2)`` from the argmax to the Newton step ``c - Hess^{-1} grad`` of ``log(blur(hm))``.

        The derivatives are taken at the stencil centre ``c`` (the argmax, moved inward off the border).
        For a log-quadratic (a Gaussian) central differences are exact at any ``c``, so the step lands on
        the exact centre even for joints on the heatmap's edge. The offset is clipped to +-1 pixel.
        """
        hm_w = hm.shape[-1]
        cx, cy = self._stencil_centre(hm, idx)
        nb = torch.log(self._neighbourhood(self._blur(hm), cx, cy).clamp_min(_LOG_EPS))  # (N, J, 3, 3)
        dx = 0.5 * (nb[..., 1, 2] - nb[..., 1, 0])
        dy = 0.5 * (nb[..., 2, 1] - nb[..., 0, 1])
        dxx = nb[..., 1, 2] - 2 * nb[..., 1, 1] + nb[..., 1, 0]
        dyy = nb[..., 2, 1] - 2 * nb[..., 1, 1] + nb[..., 0, 1]
        dxy = 0.25 * (nb[..., 2, 2] - nb[..., 2, 0] - nb[..., 0, 2] + nb[..., 0, 0])
        det = dxx * dyy - dxy**2
        # Only a local maximum (negative-definite Hessian) gives a meaningful Newton step.
        ok = (det > 1e-12) & (dxx < 0)
        safe_det = torch.where(ok, det, torch.ones_like(det))
        step_x = -(dyy * dx - dxy * dy) / safe_det
        step_y = -(dxx * dy - dxy * dx) / safe_det
        # Offset relative to the argmax itself (the stencil centre may sit one pixel inward).
        shift_x = (cx - idx % hm_w).float()
        shift_y = (cy - torch.div(idx, hm_w, rounding_mode="floor")).float()
        off = torch.stack([shift_x + step_x, shift_y + step_y], dim=-1)  # (N, J, 2)
        off = torch.where(ok[..., None] & torch.isfinite(off), off, torch.zeros_like(off))
        return off.clamp(-1.0, 1.0)
