"""HeatmapCodec: the crop <-> heatmap pixel mapping, Gaussian encoding, DARK decoding, numpy/torch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.errors import DiffPoseError

# ViTPose geometry: a 192x256 (W x H) crop, a 64x48 (H x W) heatmap, stride 4.
CODEC = HeatmapCodec(input_size=(192, 256), heatmap_size=(64, 48), sigma=2.0)


def test_mapping_hand_computed_values():
    # Stride 4: crop pixel 1.5 is heatmap pixel 0 (pixel centres at integers, shared outer edges).
    xy = np.array([[1.5, 1.5], [-0.5, -0.5], [191.5, 255.5], [10.0, 20.0]])
    hm = CODEC.to_heatmap(xy)
    np.testing.assert_allclose(hm, [[0, 0], [-0.5, -0.5], [47.5, 63.5], [10.5 / 4 - 0.5, 20.5 / 4 - 0.5]])
    np.testing.assert_allclose(CODEC.to_input(hm), xy)


def test_mapping_anisotropic_strides():
    codec = HeatmapCodec(input_size=(100, 60), heatmap_size=(20, 25), sigma=1.0)  # sx = 4, sy = 3
    assert codec.stride == (4.0, 3.0)
    xy = torch.tensor([[[5.5, 4.0]]])
    np.testing.assert_allclose(codec.to_heatmap(xy).numpy(), [[[1.0, 4.5 / 3 - 0.5]]])
    np.testing.assert_allclose(codec.to_input(codec.to_heatmap(xy)).numpy(), xy.numpy(), atol=1e-6)


def test_encode_peak_at_exact_position_and_value():
    kp = np.array([[[1.5 + 4 * 10, 1.5 + 4 * 20]]], dtype=np.float32)  # heatmap pixel (10, 20) exactly
    hm, w = CODEC.encode(kp, np.ones((1, 1)))
    assert hm.shape == (1, 1, 64, 48) and hm.dtype == np.float32 and w.tolist() == [[1.0]]
    assert hm[0, 0, 20, 10] == pytest.approx(1.0)
    # A neighbour one pixel away: exp(-1 / (2 sigma^2)); diagonal: exp(-2 / (2 sigma^2)).
    assert hm[0, 0, 20, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    assert hm[0, 0, 21, 11] == pytest.approx(math.exp(-2 / 8), rel=1e-6)
    assert hm.max() <= 1.0 and hm.min() >= 0.0


def test_encode_subpixel_centre_is_unnormalised_gaussian():
    kp = np.array([[[4 * 10.3 + 1.5, 4 * 7.6 + 1.5]]], dtype=np.float32)  # heatmap (10.3, 7.6)
    hm, _ = CODEC.encode(kp, np.ones((1, 1)))
    expected = math.exp(-((10 - 10.3) ** 2 + (8 - 7.6) ** 2) / 8)
    assert hm[0, 0, 8, 10] == pytest.approx(expected, rel=1e-5)
    assert hm[0, 0].max() < 1.0


def test_invisible_outside_and_nan_joints_get_zero_weight_and_empty_heatmap():
    kp = np.array([[[50, 50], [50, 50], [-3, 50], [50, 256.0], [np.nan, 10], [191.4, 255.4]]], dtype=np.float32)
    vis = np.array([[1, 0, 1, 1, 1, 1]])
    hm, w = CODEC.encode(kp, vis)
    assert w.tolist() == [[1, 0, 0, 0, 0, 1]]
    assert hm[0, 0].max() > 0.9 and hm[0, 5].max() > 0.5
    assert np.all(hm[0, 1:5] == 0)


@pytest.mark.parametrize("refine_blur", [("dark", 0.0)])
def test_round_trip_within_005px_everywhere_including_borders(refine_blur):
    refine, blur = refine_blur
    codec = HeatmapCodec((192, 256), (64, 48), 2.0, refine=refine, blur_sigma=blur)
    rng = np.random.default_rng(0)
    kp = rng.uniform([-0.4, -0.4], [191.4, 255.4], size=(64, 17, 2)).astype(np.float32)
    hm, w = codec.encode(kp, np.ones((64, 17)))
    assert w.min() == 1
    dec, scores = codec.decode(hm)
    assert isinstance(dec, np.ndarray) and dec.shape == (64, 17, 2) and scores.shape == (64, 17)
    assert np.abs(dec - kp).max() < 0.05
    np.testing.assert_allclose(scores, hm.reshape(64, 17, -1).max(-1))


def test_round_trip_with_smoothing_exact_in_the_interior():
    codec = HeatmapCodec((192, 256), (64, 48), 2.0, blur_sigma=2.0)
    rng = np.random.default_rng(1)
    # At least 3 * blur_sigma + 1 heatmap pixels (28 crop pixels) from the border.
    kp = rng.uniform([30, 30], [162, 226], size=(16, 17, 2)).astype(np.float32)
    dec, _ = codec.decode(codec.encode(kp, np.ones((16, 17)))[0])
    assert np.abs(dec - kp).max() < 0.05


def test_plain_argmax_and_quarter_offsets_are_what_they_say():
    # Heatmap position (10.3, 7.6): argmax pixel (10, 8); the quarter shift goes to (10.25, 7.75).
    kp = np.array([[[4 * 10.3 + 1.5, 4 * 7.6 + 1.5]]], dtype=np.float32)
    hm, _ = CODEC.encode(kp, np.ones((1, 1)))
    none = HeatmapCodec((192, 256), (64, 48), 2.0, refine="none").decode(hm)[0]
    quarter = HeatmapCodec((192, 256), (64, 48), 2.0, refine="quarter").decode(hm)[0]
    np.testing.assert_allclose(CODEC.to_heatmap(none)[0, 0], [10, 8], atol=1e-6)
    np.testing.assert_allclose(CODEC.to_heatmap(quarter)[0, 0], [10.25, 7.75], atol=1e-6)


def test_numpy_and_torch_paths_agree_and_keep_their_type():
    rng = np.random.default_rng(2)
    kp = rng.uniform(5, 180, size=(3, 17, 2)).astype(np.float32)
    vis = rng.integers(0, 2, size=(3, 17))
    hm_np, w_np = CODEC.encode(kp, vis)
    hm_t, w_t = CODEC.encode(torch.from_numpy(kp), torch.from_numpy(vis))
    assert isinstance(hm_t, torch.Tensor) and hm_t.dtype == torch.float32
    np.testing.assert_allclose(hm_t.numpy(), hm_np, atol=1e-7)
    np.testing.assert_array_equal(w_t.numpy(), w_np)
    kp_t, s_t = CODEC.decode(hm_t + 0.01)
    kp_n, s_n = CODEC.decode(hm_np + 0.01)
    assert isinstance(kp_t, torch.Tensor)
    np.testing.assert_allclose(kp_t.numpy(), kp_n, atol=1e-5)
    np.testing.assert_allclose(s_t.numpy(), s_n, atol=1e-7)


def test_decode_noisy_gaussian_stays_close_and_offsets_are_bounded():
    rng = np.random.default_rng(3)
    kp = rng.uniform(20, 170, size=(8, 17, 2)).astype(np.float32)
    hm, _ = CODEC.encode(kp, np.ones((8, 17)))
    noisy = np.clip(hm + rng.normal(0, 0.02, hm.shape).astype(np.float32), 0, 1)
    dec, _ = CODEC.decode(noisy)
    # +-1 heatmap pixel clip plus the argmax: never more than 1.5 px (heatmap) = 6 crop px from the peak pixel.
    assert np.abs(dec - kp).max() < 6.0
    assert np.abs(dec - kp).mean() < 0.5


def test_bad_shapes_raise_diffpose_error_naming_the_field():
    with pytest.raises(DiffPoseError, match="heatmaps"):
        CODEC.decode(np.zeros((17, 64, 48), dtype=np.float32))
    with pytest.raises(DiffPoseError, match=r"\(64, 48\)"):
        CODEC.decode(np.zeros((1, 17, 32, 24), dtype=np.float32))
    with pytest.raises(DiffPoseError, match="keypoints"):
        CODEC.encode(np.zeros((1, 17, 3)), np.ones((1, 17)))
    with pytest.raises(DiffPoseError, match="refine"):
        HeatmapCodec((192, 256), (64, 48), 2.0, refine="udp")


def test_from_model_config_uses_w_h_order():
    from diffpose.config import load_config

    codec = HeatmapCodec.from_model_config(load_config("paper").model)
    assert codec.input_size == (192, 256) and codec.heatmap_size == (64, 48) and codec.stride == (4.0, 4.0)
