"""Feature reuse: crop geometry of the feature warp, the cache, the pipeline's reuse path against the
exact path, and the decoder's broadcast condition against the concat formulation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffpose.cli import main as cli_main
from diffpose.config import load_config
from diffpose.data.transforms import CropBox, crop_matrix, invert_affine
from diffpose.inference import Boxes, PipelineOptions, Predictor, SourceFrame, StreamingPipeline, open_source
from diffpose.inference.feature_cache import FeatureCache
from diffpose.inference.feature_warp import TokenGeometry, crop_region, region_iou, warp_features
from diffpose.models import DiffPoseNet
from diffpose.models.lmsfi import split_conv
from tests.helpers import ASSETS, PATCH_TINY, concat_formulation

GEOMETRY = TokenGeometry(stride=16, offset=5.5, grid=(8, 6), crop_size=(96, 128))  # tiny: patch 16, padding 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(ASSETS / "tiny_diffpose.pt", "cpu", steps=2, ensemble=3)


@pytest.fixture(scope="module")
def frames(synth_small) -> list[SourceFrame]:
    return list(open_source(sorted((synth_small / "annotations" / "val").glob("*.json"))[0]))[:8]


def _matrix(box: tuple[float, float, float, float]) -> np.ndarray:
    return crop_matrix(CropBox.from_xywh(np.array(box), 96 / 128, 1.25), (96, 128))


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
def _token_image_coords(matrix: np.ndarray) -> torch.Tensor:
    """``(2, h, w)``: the image (x, y) of every token centre of a crop (a field that is linear in the image)."""
    h, w = GEOMETRY.grid
    c, r = np.meshgrid(np.arange(w), np.arange(h))
    crop_xy = np.stack([16 * c + 5.5, 16 * r + 5.5], axis=-1)  # (h, w, 2)
    inv = invert_affine(matrix)
    return torch.from_numpy((crop_xy @ inv[:, :2].T + inv[:, 2]).transpose(2, 0, 1).copy()).float()


def _inside(key: np.ndarray, source: np.ndarray) -> torch.Tensor:
    """``(h, w)`` bool: key tokens whose centre lies within the source crop's token centres."""
    k, s = _token_image_coords(key), _token_image_coords(source)
    return ((k[0] >= s[0].min()) & (k[0] <= s[0].max()) & (k[1] >= s[1].min()) & (k[1] <= s[1].max()))


def test_warp_maps_every_key_token_onto_the_same_image_point():
    key, source = _matrix((100, 50, 60, 150)), _matrix((94, 58, 66, 140))  # shifted and rescaled
    warped = warp_features(_token_image_coords(source)[None], key[None], source[None], GEOMETRY)[0]
    expected = _token_image_coords(key)
    # Bilinear resampling of a linear field is exact wherever the key token lies inside the source token grid.
    inside = _inside(key, source)
    assert inside.sum() >= 20
    torch.testing.assert_close(warped[:, inside], expected[:, inside], atol=1e-3, rtol=0)
    # outside it, the nearest border token's value is taken
    assert torch.isfinite(warped).all() and not torch.allclose(warped[:, ~inside], expected[:, ~inside])
    # identical crops give the features back unchanged
    same = warp_features(expected[None], key[None], key[None], GEOMETRY)[0]
    torch.testing.assert_close(same, expected, atol=1e-4, rtol=0)


def test_token_centres_match_the_patch_convolution():
    """Features = patch means of a linear image through the real patch convolution (kernel 16, stride 16, padding
    2): warping the source crop's features gives the key crop's on interior tokens, so ``offset`` is right."""
    ys, xs = np.mgrid[0:288, 0:384].astype(np.float32)
    image = np.stack([xs / 2, ys / 2, np.zeros_like(xs)], axis=-1)  # values up to 192: keep float32
    conv = torch.nn.Conv2d(2, 2, 16, stride=16, padding=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = conv.weight[1, 1] = 1.0 / 256

    def feats(matrix: np.ndarray) -> torch.Tensor:
        crop = cv2.warpAffine(image, matrix, (96, 128), flags=cv2.INTER_LINEAR)  # (128, 96, 3)
        with torch.no_grad():
            return conv(torch.from_numpy(crop[..., :2].transpose(2, 0, 1).copy())[None])[0]  # (2, 8, 6)

    key, source = _matrix((150, 60, 70, 160)), _matrix((146, 50, 76, 180))
    warped = warp_features(feats(source)[None], key[None], source[None], GEOMETRY)[0]
    # Key tokens inside the source grid, away from the rows / columns whose patches hold zero padding.
    use = _inside(key, source)
    use[[0, -1]] = False
    use[:, [0, -1]] = False
    assert use.sum() >= 15
    torch.testing.assert_close(warped[:, use], feats(key)[:, use], atol=2e-2, rtol=0)


def test_region_iou():
    m = _matrix((100, 50, 60, 150))
    region = crop_region(m, (96, 128))
    assert region_iou(region, region[None])[0] == pytest.approx(1.0)
    far = crop_region(_matrix((300, 50, 60, 150)), (96, 128))
    assert region_iou(region, far[None])[0] == 0.0


# ------------------------------------------------------------------------------------------------
# Cache and pipeline
# ------------------------------------------------------------------------------------------------
def test_cache_matches_by_overlap_and_falls_back_to_a_crop_with_the_key_box():
    cache = FeatureCache(GEOMETRY, min_iou=0.5)
    near, far = _matrix((100, 50, 60, 150)), _matrix((300, 50, 60, 150))
    entry = cache.exact(3, near, lambda: np.zeros((3, 128, 96), np.float32))
    assert cache.exact(3, near.copy(), lambda: pytest.fail("cropped twice")) is entry
    assert cache.slot(3, _matrix((104, 52, 60, 150)), lambda: pytest.fail("no fallback expected")) is entry
    fallback = cache.slot(3, far, lambda: np.ones((3, 128, 96), np.float32))
    assert fallback is not entry and fallback.pixels.mean() == 1.0
    assert (cache.stats.warped, cache.stats.fallback) == (1, 1)
    assert [e.frame for e in cache.pending()] == [3, 3]
    cache.evict_before(4)
    assert cache.frames == {}


class _Boxes:
    """Two people, boxes moving ``shift`` px per frame."""

    name = "test boxes"

    def __init__(self, shift: float):
        self.shift = shift

    def __call__(self, frame: SourceFrame) -> Boxes:
        b = np.array([[40.0, 60.0, 60.0, 150.0], [200.0, 50.0, 70.0, 160.0]])
        b[:, 0] += self.shift * frame.index
        return Boxes(b, np.ones(2), "gt")


def _run(predictor: Predictor, frames: list[SourceFrame], shift: float, reuse: bool, min_iou: float = 0.5
         ) -> tuple[np.ndarray, StreamingPipeline]:
    pipe = StreamingPipeline(predictor, _Boxes(shift), options=PipelineOptions(reuse=reuse, reuse_min_iou=min_iou))
    out = list(pipe.run(frames))
    return np.stack([p.keypoints for f in out for p in f.persons]), pipe


def test_reuse_with_still_boxes_equals_the_exact_path_at_one_backbone_pass_per_crop(predictor, frames):
    exact, pe = _run(predictor, frames, 0.0, reuse=False)
    reused, pr = _run(predictor, frames, 0.0, reuse=True)
    n = len(frames) * 2
    assert pe.stats.backbone_crops == 5 * n and pr.stats.backbone_crops == n
    assert pr.cache.stats.warped == 0 and pr.cache.stats.fallback == 0
    np.testing.assert_allclose(reused, exact, atol=1e-3)  # backbone batches differ: float rounding only


def test_reuse_warps_moving_crops_and_without_matches_reproduces_the_exact_path(predictor, frames):
    exact, _ = _run(predictor, frames, 3.0, reuse=False)
    _, moving = _run(predictor, frames, 3.0, reuse=True)
    assert moving.stats.backbone_crops == len(frames) * 2  # every person crop of a frame once, nothing else
    assert moving.cache.stats.warped > 0 and moving.cache.stats.fallback == 0
    # No crop may be reused (IoU > 1): every neighbour is cropped with the key box, as the exact path does.
    fallback, pf = _run(predictor, frames, 3.0, reuse=True, min_iou=1.01)
    assert pf.cache.stats.warped == 0 and pf.cache.stats.fallback > 0
    np.testing.assert_allclose(fallback, exact, atol=1e-3)


def test_infer_reports_backbone_passes_for_reuse_and_exact(synth_small, tmp_path, capsys):
    seq = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    for flag, expected in (("--exact", "5.00 backbone passes per person-frame (exact crops)"),
                           ("--reuse", "backbone passes per person-frame (feature reuse)")):
        assert cli_main(["infer", str(seq), "-c", str(ASSETS / "tiny_diffpose.pt"), "--boxes", "gt", "--no-progress",
                         "--json", str(tmp_path / f"{flag}.json"), flag]) == 0
        assert expected in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Batched sampling: the condition is broadcast over the hypotheses, not copied
# ------------------------------------------------------------------------------------------------
def test_broadcast_decoder_equals_the_concat_formulation():
    # The paper's decoder (no heat path, no self-conditioning), random weights, 8x6 tokens.
    torch.manual_seed(0)
    cfg = load_config("tiny", overrides=[*PATCH_TINY, "model.decoder.predicts=signal",
                                         "model.decoder.self_condition=false", "model.decoder.heat_path=false",
                                         "model.decoder.residual=false"])
    net = DiffPoseNet.from_config(cfg.model).eval()
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(3, 128, 8, 6, generator=g)
    x_t = torch.randn(12, 17, 32, 24, generator=g)
    t = torch.randint(0, 1000, (12,), generator=g)
    with torch.no_grad():
        pyramid = net.prepare(cond)
        expanded = pyramid.expand(4)
        assert expanded.batch_size == 12 and all(a is b for a, b in zip(expanded.tensors(), pyramid.tensors()))
        torch.testing.assert_close(net.denoise(x_t, t, expanded), concat_formulation(net, x_t, t, cond, 4),
                                   atol=2e-5, rtol=1e-5)


def test_split_conv_halves_sum_to_the_concat_convolution():
    conv = torch.nn.Conv2d(8, 5, 3, padding=1, bias=True)
    a, b = torch.randn(2, 4, 6, 5), torch.randn(2, 4, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(split_conv(conv, a, 0) + split_conv(conv, b, 1), conv(torch.cat([a, b], 1)),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(split_conv(conv, a, 0), F.conv2d(a, conv.weight[:, :4], None, 1, 1))
