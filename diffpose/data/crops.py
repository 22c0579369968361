"""Cropping a person out of a frame and normalising it for the network: the one path training, ``diffpose test``
and ``diffpose infer`` share.

* :func:`crop_image` warps an RGB uint8 frame ``(H, W, 3)`` through a ``(2, 3)`` image -> crop matrix
  (:func:`~diffpose.data.transforms.crop_matrix`) with bilinear sampling and a black border; OpenCV samples
  source pixel centres at integer coordinates, the convention of :mod:`diffpose.keypoints`.
* :func:`normalise_crop` turns the uint8 crop into the network's ``(3, H, W)`` ImageNet-normalised float32
  by a table lookup, bit for bit equal to :func:`normalise` of ``crop / 255`` (the float path training takes
  when it jitters colours first).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise(image_rgb01: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB in [0, 1] -> ``(3, H, W)`` ImageNet-normalised float32."""
    return ((image_rgb01 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)  # (3, H, W)


@functools.cache
def _lookup_table() -> np.ndarray:
    """``(1, 256, 3)`` float32: :func:`normalise` of ``v / 255`` for every byte value ``v`` and channel."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # (256, 1, 3)
    table = normalise(values.astype(np.float32) / 255.0)  # (3, 256, 1)
    return np.ascontiguousarray(table[:, :, 0].T[None])  # (1, 256, 3)


def crop_image(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 ``image (H, W, 3)`` through the ``(2, 3)`` image -> crop ``matrix`` -> uint8 ``(H_in, W_in, 3)``.

    ``size`` is the crop's ``(W_in, H_in)``.
    """
    return cv2.warpAffine(image, matrix, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # (H_in, W_in, 3)


def normalise_crop(patch: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> ``(3, H, W)`` normalised float32 (a ``(3, H, W)`` view of the looked-up table values)."""
    return cv2.LUT(patch, _lookup_table()).transpose(2, 0, 1)  # (3, H, W)
