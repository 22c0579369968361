"""Map backbone features computed on one crop of a frame into another crop of the same frame.

Feature reuse (:mod:`diffpose.inference.feature_cache`) runs the backbone once per person crop of a
frame. A clip needs its neighbour frames cropped with the *key frame's* box; the neighbour's features were
computed on a crop made with the neighbour's own box. Both crops are affine views of the same image, so
the key crop's token grid maps into the neighbour crop's token grid by an affine transform, and the
neighbour's feature map is resampled there (bilinear, ``F.grid_sample``).

Geometry (pixel centres at integer coordinates, :mod:`diffpose.data.transforms`). The patch convolution
(kernel and stride ``p``, zero padding ``pad``) makes token ``(r, c)`` from crop pixels
``p*c - pad .. p*c - pad + p - 1``, so its centre sits at crop pixel::

    u = p * c + o,    o = (p - 1) / 2 - pad          (ViTPose's p = 16, pad = 2: o = 5.5)

and with ``M_k``, ``M_n`` the image -> crop matrices of the key and the neighbour crop::

    token_n = G^-1 . M_n . M_k^-1 . G . token_k        (G: token -> crop pixel, above)

``F.affine_grid`` / ``F.grid_sample`` with ``align_corners=True`` take this in normalised coordinates
(``-1`` and ``+1`` at the centres of the first and last tokens). Key tokens whose centre falls outside the
neighbour crop take the nearest border token (``padding="border"``) or zeros (``padding="zeros"``).

This is an approximation: a ViT's features are not exactly equivariant to sub-token shifts and scale
changes, and the neighbour crop does not see what lies outside it. ``docs/speed.md`` measures what it
costs in AP against cropping every frame with the key box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from diffpose.data.transforms import invert_affine
from diffpose.models.stem import token_layout

PADDING_MODES = ("border", "zeros")


@dataclass(frozen=True)
class TokenGeometry:
    """Where the backbone's tokens sit in its input crop.

    Attributes:
        stride: patch size ``p`` (crop pixels per token).
        offset: crop-pixel coordinate of token 0's centre, ``(p - 1) / 2 - pad``.
        grid: token grid ``(h, w)``.
        crop_size: the crop ``(W, H)`` in pixels.
    """

    stride: int
    offset: float
    grid: tuple[int, int]
    crop_size: tuple[int, int]

    @classmethod
    def from_model_config(cls, model_cfg: object) -> TokenGeometry:
        """From a :class:`~diffpose.config.ModelConfig` (its backbone's stem and ``image_size``)."""
        bb = model_cfg.backbone  # type: ignore[attr-defined]
        h_in, w_in = (int(v) for v in bb.image_size)
        layout = token_layout((h_in, w_in), bb.stem, int(bb.patch_size), int(bb.patch_padding))
        return cls(layout.stride, layout.offset, layout.grid, (w_in, h_in))

    def token_to_crop(self) -> np.ndarray:
        """``(3, 3)`` homogeneous matrix: token ``(c, r)`` -> crop pixel ``(u, v)``."""
        s, o = float(self.stride), float(self.offset)
        return np.array([[s, 0.0, o], [0.0, s, o], [0.0, 0.0, 1.0]])

    def normalise(self) -> np.ndarray:
        """``(3, 3)``: token ``(c, r)`` -> ``grid_sample``'s ``(x, y)`` in ``[-1, 1]`` (``align_corners=True``)."""
        h, w = self.grid
        sx = 2.0 / (w - 1) if w > 1 else 0.0
        sy = 2.0 / (h - 1) if h > 1 else 0.0
        return np.array([[sx, 0.0, -1.0 if w > 1 else 0.0], [0.0, sy, -1.0 if h > 1 else 0.0], [0.0, 0.0, 1.0]])


def _full(mat: np.ndarray) -> np.ndarray:
    """``(..., 2, 3)`` affine -> ``(..., 3, 3)`` homogeneous."""
    mat = np.asarray(mat, dtype=np.float64)
    last = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (*mat.shape[:-2], 1, 3))
    return np.concatenate([mat, last], axis=-2)


def token_affine(key_matrix: np.ndarray, source_matrix: np.ndarray, geometry: TokenGeometry) -> np.ndarray:
    """``(..., 2, 3)``: a token ``(c, r)`` of the key crop -> the token coordinates of the same image point in
    the source crop. ``key_matrix`` and ``source_matrix`` are the crops' ``(..., 2, 3)`` image -> crop matrices."""
    g = geometry.token_to_crop()  # (3, 3)
    full = np.linalg.inv(g) @ _full(source_matrix) @ np.linalg.inv(_full(key_matrix)) @ g  # (..., 3, 3)
    return full[..., :2, :]


def warp_thetas(key_matrices: np.ndarray, source_matrices: np.ndarray, geometry: TokenGeometry) -> np.ndarray:
    """``(N, 2, 3)`` ``F.affine_grid`` thetas (``align_corners=True``) sampling source features on the key grid.

    ``key_matrices`` and ``source_matrices`` are ``(N, 2, 3)`` image -> crop matrices.
    """
    n = geometry.normalise()  # (3, 3)
    return (n @ _full(token_affine(key_matrices, source_matrices, geometry)) @ np.linalg.inv(n))[..., :2, :]


def warp_features(features: torch.Tensor, key_matrices: np.ndarray, source_matrices: np.ndarray,
                  geometry: TokenGeometry, padding: str = "border") -> torch.Tensor:
    """Resample features computed on source crops onto the key crops' token grids.

    Args:
        features: ``(N, D, h, w)`` backbone features of the source crops.
        key_matrices, source_matrices: ``(N, 2, 3)`` image -> crop matrices of the key and the source crops.
        geometry: the backbone's token geometry.
        padding: ``"border"`` or ``"zeros"`` for key tokens outside the source crop.

    Returns:
        ``(N, D, h, w)`` on the key crops' grids (dtype and device of ``features``).
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    n, d, h, w = features.shape
    theta = torch.as_tensor(warp_thetas(np.asarray(key_matrices), np.asarray(source_matrices), geometry),
                            dtype=torch.float32, device=features.device)  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, d, h, w], align_corners=True)  # (N, h, w, 2)
    out = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return out.to(features.dtype)  # (N, D, h, w)


def crop_region(matrix: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """``(4,)`` ``(x0, y0, x1, y1)``: the image rectangle a crop covers (``crop_size = (W, H)``; bounding box of
    the crop's corners, exact for the unrotated crops of inference)."""
    w, h = crop_size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])  # (4, 2) crop px
    inv = invert_affine(matrix)  # (2, 3) crop -> image
    pts = corners @ inv[:, :2].T + inv[:, 2]  # (4, 2) image px
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def region_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one region ``a (4,)`` with regions ``b (N, 4)``, all ``(x0, y0, x1, y1)`` -> ``(N,)``."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
