"""Sampling that starts from the prior head's heatmap noised to ``start_t`` (``diffusion.start=prior``), the
training draws and loss that go with it, and the network's training path with a prior head."""

from __future__ import annotations

import math

import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import ConfigError, SamplingConfig, load_config
from diffpose.diffusion import HeatmapDiffusion, ddim_time_pairs, sample_poses, training_noise
from diffpose.estimators import build_estimator
from tests.helpers import MICRO

PRIOR = ["model.decoder.prior_head=true", "diffusion.start=prior", "diffusion.start_t=600",
         "diffusion.train_from_prior=0.5"]
DIFF = HeatmapDiffusion(timesteps=1000, cosine_s=0.008, scale=2.0)


def test_time_pairs_from_a_start_step_are_written_out():
    # linspace(-1, 600, 4) = -1, 199.33, 399.67, 600 -> truncated, reversed, paired
    assert ddim_time_pairs(1000, 3, start=600) == [(600, 399), (399, 199), (199, -1)]
    assert ddim_time_pairs(1000, 1, start=600) == [(600, -1)]
    assert ddim_time_pairs(1000, 2) == ddim_time_pairs(1000, 2, start=999)
    with pytest.raises(Exception, match="sampling steps"):
        ddim_time_pairs(1000, 602, start=600)


class PriorNet:
    """A stand-in network: a fixed prior heatmap, and a denoiser that records what it is given."""

    num_joints, heatmap_size, predicts, self_condition = 2, (8, 6), "heatmap", True

    def __init__(self, prior: torch.Tensor):
        self.prior, self.calls = prior, []

    def heatmaps(self, cond):
        return self.prior.expand(cond.shape[0], -1, -1, -1)

    def prepare(self, cond):
        class Pyr:
            def expand(self, k):
                return self
        return Pyr()

    def denoise(self, x_t, t, pyr, prev=None):
        self.calls.append((x_t.clone(), t.clone(), None if prev is None else prev.clone()))
        return torch.full_like(x_t, 0.25)


def test_prior_start_noises_the_prior_to_start_t_and_self_conditions_on_it():
    torch.manual_seed(0)
    prior = torch.rand(1, 2, 8, 6)
    net = PriorNet(prior)
    codec = HeatmapCodec(input_size=(24, 32), heatmap_size=(8, 6), sigma=1.0)
    b, k = 3, 4
    out = sample_poses(net, DIFF, codec, cond=torch.zeros(b, 1, 2, 2), steps=2, hypotheses=k,
                       generator=torch.Generator().manual_seed(5), start="prior", start_t=600)
    (x1, t1, p1), (x2, t2, p2) = net.calls
    assert t1.tolist() == [600] * (b * k) and t2.tolist() == [299] * (b * k)
    torch.testing.assert_close(p1, prior.expand(b * k, -1, -1, -1))  # the first step sees the prior as prev
    torch.testing.assert_close(p2, torch.full_like(p2, 0.25))  # then its own estimate
    abar = float(DIFF.schedule.alpha_bar(600))
    noise = torch.randn((b * k, 2, 8, 6), generator=torch.Generator().manual_seed(5))
    expected = math.sqrt(abar) * (prior * 2 - 1) * 2 + math.sqrt(1 - abar) * noise
    torch.testing.assert_close(x1, expected)
    assert out.prior_keypoints.shape == (b, 2, 2) and out.prior_scores.shape == (b, 2)
    torch.testing.assert_close(out.prior_scores, prior.amax(dim=(2, 3)).expand(b, -1))


def test_training_draws_with_a_start_step_stay_below_it():
    g = torch.Generator().manual_seed(0)
    d = training_noise(4000, (2, 4, 3), DIFF, g, pure_noise=0.5, self_condition=0.5, start_t=600, from_prior=0.25)
    assert int(d["t"].max()) == 600 and int(d["t"].min()) >= 0
    assert abs(float((d["t"] == 600).float().mean()) - 0.5) < 0.03  # the pure-noise share sits at start_t
    assert abs(float(d["from_prior"].float().mean()) - 0.25) < 0.03
    plain = training_noise(8, (2, 4, 3), DIFF, torch.Generator().manual_seed(0))
    assert set(plain) == {"t", "noise"}  # no new draws unless asked: old runs keep their random streams


def test_prior_start_needs_a_prior_head_and_fits_the_steps():
    with pytest.raises(ConfigError, match="prior_head"):
        load_config("tiny", overrides=["model.decoder.prior_head=false", "diffusion.start=prior"])
    with pytest.raises(ConfigError, match="start_t"):
        load_config("tiny", overrides=[*PRIOR, "sampling.steps=700"])


def micro_prior_estimator():
    torch.manual_seed(0)
    cfg = load_config("paper", overrides=[*MICRO, "model.decoder.predicts=heatmap", "model.decoder.self_condition=true",
                                          *PRIOR])
    return build_estimator(cfg)


def test_the_loss_noises_the_prior_for_the_marked_samples_and_trains_the_prior_head():
    est = micro_prior_estimator()
    b = 4
    batch = {"frames": torch.randn(b, 5, 3, 64, 48), "heatmaps": torch.rand(b, 17, 16, 12),
             "weights": torch.ones(b, 17)}
    noise = est.training_noise(torch.Generator().manual_seed(1), b)
    noise["from_prior"] = torch.tensor([True, False, True, False])
    seen = {}
    decoder_forward = est.net.decoder.forward

    def spy(x_t, t, pyramid, prev=None):
        seen.setdefault("x_t", x_t.detach().clone())
        return decoder_forward(x_t, t, pyramid, prev)

    est.net.decoder.forward = spy
    out = est.loss(batch, noise)
    with torch.no_grad():
        prior = est.net.heatmaps(est.net.encode_condition(batch["frames"])).clamp(0, 1)
    src = torch.where(noise["from_prior"][:, None, None, None], prior, batch["heatmaps"])
    expected = DIFF.q_sample(DIFF.signal.encode(src), noise["t"], noise["noise"])
    torch.testing.assert_close(seen["x_t"], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["loss"], out["denoise_loss"] + out["prior_loss"])
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in est.net.prior_head.parameters())


def test_a_prior_start_model_predicts_with_distinct_hypotheses_and_the_prior():
    est = micro_prior_estimator().eval()
    with torch.no_grad():
        out = est.predict(torch.randn(2, 5, 3, 64, 48), SamplingConfig(steps=2, ensemble=3),
                          torch.Generator().manual_seed(0))
    assert out.keypoints.shape == (2, 17, 2) and out.prior_keypoints.shape == (2, 17, 2)
    assert est.graph_methods[-1] == "heatmaps"  # exported models carry the prior head


def test_medoid_combination_picks_the_hypothesis_nearest_the_others():
    from diffpose.diffusion import combine_hypotheses

    codec = HeatmapCodec(input_size=(24, 32), heatmap_size=(8, 6), sigma=1.0)
    hm = torch.zeros(1, 3, 1, 8, 6)  # (B, K, J, H, W): two hypotheses peak at (1, 1), one at (4, 6)
    hm[0, 0, 0, 1, 1] = hm[0, 1, 0, 1, 1] = 0.9
    hm[0, 2, 0, 6, 4] = 0.6
    out = combine_hypotheses(hm, codec, "medoid")
    torch.testing.assert_close(out.keypoints[0, 0], out.hypotheses_keypoints[0, 0, 0])
    torch.testing.assert_close(out.scores[0, 0], torch.tensor(0.8))


def test_a_residual_decoder_corrects_its_previous_estimate():
    from diffpose.models.pose_decoder import PoseDecoder

    torch.manual_seed(0)
    dec = PoseDecoder(num_joints=3, cond_dim=8, heat_dim=8, widths=(8, 8, 8), seref_dim=8, num_heads=2, time_dim=8,
                      predicts="heatmap", self_condition=True, residual=True).eval()
    with torch.no_grad():
        dec.head.weight.zero_()
        dec.head.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        pyr = dec.prepare(torch.randn(2, 8, 4, 3))
        x_t, t, prev = torch.randn(2, 3, 16, 12), torch.tensor([5, 600]), torch.rand(2, 3, 16, 12)
        out = dec(x_t, t, pyr, prev)
        out_zero = dec(x_t, t, pyr)  # no estimate yet: the correction of zeros
    torch.testing.assert_close(out, prev + torch.tensor([0.1, -0.2, 0.3])[None, :, None, None])
    torch.testing.assert_close(out_zero, torch.tensor([0.1, -0.2, 0.3])[None, :, None, None].expand(2, 3, 16, 12))
    with pytest.raises(Exception, match="residual"):
        PoseDecoder(num_joints=3, cond_dim=8, predicts="heatmap", residual=True)


def test_peak_combination_picks_the_most_confident_hypothesis_per_joint():
    from diffpose.diffusion import combine_hypotheses

    codec = HeatmapCodec(input_size=(24, 32), heatmap_size=(8, 6), sigma=1.0)
    hm = torch.zeros(1, 3, 2, 8, 6)  # (B, K, J, H, W)
    hm[0, 0, 0, 1, 1], hm[0, 1, 0, 6, 4], hm[0, 2, 0, 2, 2] = 0.5, 0.9, 0.7  # joint 0: hypothesis 1 is surest
    hm[0, 0, 1, 3, 3], hm[0, 1, 1, 5, 5], hm[0, 2, 1, 7, 1] = 0.8, 0.2, 0.3  # joint 1: hypothesis 0
    out = combine_hypotheses(hm, codec, "peak")
    torch.testing.assert_close(out.keypoints[0, 0], out.hypotheses_keypoints[0, 1, 0])
    torch.testing.assert_close(out.keypoints[0, 1], out.hypotheses_keypoints[0, 0, 1])
    torch.testing.assert_close(out.scores[0], torch.tensor([0.9, 0.8]))
