"""Diffusion: pinned schedule values, q_sample, signal transform, DDIM with an oracle, loss, ensemble."""

from __future__ import annotations

import math

import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import load_config, with_sampling
from diffpose.diffusion import (
    HeatmapDiffusion,
    HeatmapSignal,
    NoiseSchedule,
    combine_hypotheses,
    ddim_sample,
    ddim_step,
    ddim_time_pairs,
    heatmap_mse,
    sample_from_config,
    sample_poses,
    sample_timesteps,
    training_loss,
    training_noise,
)
from diffpose.errors import DiffPoseError
from diffpose.models import DiffPoseNet
from tests.helpers import PATCH_TINY

DIFF = HeatmapDiffusion(timesteps=1000, cosine_s=0.008, scale=2.0)


def f_cos(t: float, T: int = 1000, s: float = 0.008) -> float:
    return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2


# ------------------------------------------------------------------------------------------------
# Schedule and signal
# ------------------------------------------------------------------------------------------------
def test_cosine_schedule_pinned_values():
    sch = NoiseSchedule(1000, 0.008)
    # abar_t = f(t + 1) / f(0) (DiffusionDet's indexing); only the last beta hits the 0.999 clip.
    assert float(sch.alpha_bar(0)) == pytest.approx(f_cos(1) / f_cos(0), rel=1e-6)
    assert float(sch.alpha_bar(0)) == pytest.approx(0.999959, abs=1e-6)
    assert float(sch.alpha_bar(499)) == pytest.approx(f_cos(500) / f_cos(0), rel=1e-6)
    assert float(sch.alpha_bar(499)) == pytest.approx(0.493844, abs=1e-6)
    assert float(sch.betas[-1]) == 0.999
    assert float(sch.alpha_bar(999)) == pytest.approx(f_cos(999) / f_cos(0) * 0.001, rel=1e-5)
    assert float(sch.alpha_bar(-1)) == 1.0
    assert bool((sch.alphas_cumprod[1:] < sch.alphas_cumprod[:-1]).all())
    with pytest.raises(DiffPoseError):
        sch.alpha_bar(1000)


def test_q_sample_formula():
    x0 = torch.full((2, 1, 2, 2), 1.5)
    eps = torch.full((2, 1, 2, 2), -1.0)
    t = torch.tensor([0, 499])
    out = DIFF.q_sample(x0, t, eps)
    for i, ti in enumerate((0, 499)):
        a = f_cos(ti + 1) / f_cos(0)
        assert out[i].flatten().tolist() == pytest.approx([math.sqrt(a) * 1.5 - math.sqrt(1 - a)] * 4, rel=1e-5)


def test_signal_encode_decode():
    sig = HeatmapSignal(2.0)
    h = torch.tensor([0.0, 0.25, 1.0])
    assert sig.encode(h).tolist() == [-2.0, -1.0, 2.0]
    torch.testing.assert_close(sig.decode(sig.encode(h)), h)
    assert sig.decode(torch.tensor([-5.0, 5.0]), clamp=True).tolist() == [0.0, 1.0]
    assert sig.clamp(torch.tensor([-3.0, 3.0])).tolist() == [-2.0, 2.0]


# ------------------------------------------------------------------------------------------------
# DDIM
# ------------------------------------------------------------------------------------------------
def test_time_pairs():
    assert ddim_time_pairs(1000, 1) == [(999, -1)]
    assert ddim_time_pairs(1000, 4) == [(999, 749), (749, 499), (499, 249), (249, -1)]
    assert ddim_time_pairs(1000, 3) == [(999, 665), (665, 332), (332, -1)]
    assert len(ddim_time_pairs(1000, 8)) == 8
    with pytest.raises(DiffPoseError, match="steps"):
        ddim_time_pairs(1000, 0)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_an_oracle_returns_x0(steps, eta):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 4, 8, 6, generator=g) * 4 - 2
    calls = []

    def oracle(x_t, t):
        calls.append(int(t[0]))
        return x0 * 3  # out of range on purpose: the sampler clamps to [-s, s]

    out = ddim_sample(oracle, (3, 4, 8, 6), DIFF, steps=steps, eta=eta, generator=g)
    torch.testing.assert_close(out, (x0 * 3).clamp(-2, 2))
    assert calls == [t for t, _ in ddim_time_pairs(1000, steps)]


def test_deterministic_step_maps_q_sample_at_t_to_q_sample_at_t_next():
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(2, 3, 4, 4, generator=g)
    t, t_next = 749, 499
    x_t = DIFF.q_sample(x0, torch.full((2,), t), eps)
    out = ddim_step(DIFF, x_t, x0, t, t_next, eta=0.0)
    torch.testing.assert_close(out.pred_noise, eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.prev_sample, DIFF.q_sample(x0, torch.full((2,), t_next), eps), atol=1e-5,
                               rtol=1e-5)


def test_stochastic_step_adds_sigma_times_fresh_noise():
    x0 = torch.zeros(1, 1, 4, 4)
    x_t = torch.ones(1, 1, 4, 4)
    a, a_next = f_cos(1000) / f_cos(0) * 0.001, f_cos(500) / f_cos(0)  # abar_999, abar_499
    sigma = math.sqrt((1 - a / a_next) * (1 - a_next) / (1 - a))
    c = math.sqrt(1 - a_next - sigma**2)
    eps = (1 / math.sqrt(a)) / math.sqrt(1 / a - 1)  # x_t / sqrt(abar) - x0, over sqrt(1 / abar - 1)
    out = ddim_step(DIFF, x_t, x0, 999, 499, eta=1.0, generator=torch.Generator().manual_seed(5))
    z = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out.prev_sample, c * eps + sigma * z, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------------
def test_heatmap_mse_hand_computed():
    target = torch.zeros(2, 3, 2, 2)
    pred = torch.zeros(2, 3, 2, 2)
    pred[0, 0] = 0.5  # per-joint MSE 0.25
    pred[1, 2, 0, 0] = 1.0  # per-joint MSE 0.25
    w = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    assert heatmap_mse(pred, target, w).item() == pytest.approx(0.25 / 6)
    assert heatmap_mse(pred, target, torch.ones(2, 3)).item() == pytest.approx(0.5 / 6)
    jw = torch.tensor([2.0, 1.0, 1.0])
    assert heatmap_mse(pred, target, w, joint_weights=jw).item() == pytest.approx(0.5 / 6)
    with pytest.raises(DiffPoseError):
        heatmap_mse(pred, target, torch.ones(2, 4))


class StubDenoiser:
    """``denoise(x_t, t)`` returning a fixed signal-space prediction; records the inputs it saw."""

    def __init__(self, out: torch.Tensor):
        self.out, self.seen = out, []

    def __call__(self, x_t, t):
        self.seen.append((x_t.clone(), t.clone()))
        return self.out


def test_training_loss_in_heatmap_space_on_the_noised_target():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 2, 3, 3, generator=g)
    w = torch.ones(4, 2)
    draws = training_noise(4, (2, 3, 3), DIFF, torch.Generator().manual_seed(9))
    perfect = StubDenoiser(DIFF.signal.encode(target))
    loss, pred = training_loss(perfect, target, w, DIFF, draws["t"], draws["noise"])
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(pred, target)
    zeros = StubDenoiser(torch.zeros(4, 2, 3, 3))  # decodes to 0.5 everywhere
    expected = ((0.5 - target) ** 2).mean().item()
    loss, _ = training_loss(zeros, target, w, DIFF, draws["t"], draws["noise"])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the denoiser saw x_t = sqrt(abar_t) * (2 target - 1) s + sqrt(1 - abar_t) * noise, at the drawn t
    x_t, t = zeros.seen[-1]
    abar = DIFF.schedule.alpha_bar(draws["t"]).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, abar.sqrt() * (2 * target - 1) * 2.0 + (1 - abar).sqrt() * draws["noise"])
    assert torch.equal(t, draws["t"])
    with pytest.raises(DiffPoseError, match="do not fit"):
        training_loss(zeros, target, w, DIFF, draws["t"][:3], draws["noise"])


def test_training_noise_is_reproducible_and_in_range():
    a = training_noise(64, (2, 3, 3), DIFF, torch.Generator().manual_seed(5), pure_noise=0.5)
    b = training_noise(64, (2, 3, 3), DIFF, torch.Generator().manual_seed(5), pure_noise=0.5)
    assert torch.equal(a["t"], b["t"]) and torch.equal(a["noise"], b["noise"])
    assert a["noise"].shape == (64, 2, 3, 3) and 0 <= int(a["t"].min()) and int(a["t"].max()) == 999
    # drawn in the documented order: t first (randint, then the pure-noise coin), then the noise
    g = torch.Generator().manual_seed(5)
    t = sample_timesteps(64, 1000, g, "cpu", 0.5)
    assert torch.equal(t, a["t"]) and torch.equal(torch.randn((64, 2, 3, 3), generator=g), a["noise"])


# ------------------------------------------------------------------------------------------------
# Ensemble
# ------------------------------------------------------------------------------------------------
def test_combine_hypotheses_mean_median_and_uncertainty_hand_computed():
    codec = HeatmapCodec(input_size=(96, 128), heatmap_size=(32, 24), sigma=1.5)
    xs = [10.0, 12.0, 20.0]  # crop-pixel x of three hypotheses, same y
    kp = torch.tensor([[[x, 40.0]] for x in xs])  # (3, 1, 2)
    hm, _ = codec.encode(kp, torch.ones(3, 1))
    out = combine_hypotheses(hm[None], codec, combine="median")  # (B=1, K=3, J=1, H, W)
    torch.testing.assert_close(out.hypotheses_keypoints[0, :, 0], kp[:, 0], atol=0.05, rtol=0)
    torch.testing.assert_close(out.keypoints[0, 0], torch.tensor([12.0, 40.0]), atol=0.05, rtol=0)
    assert out.uncertainty[0, 0].item() == pytest.approx(math.sqrt((4 + 0 + 64) / 3), abs=0.05)
    assert out.heatmaps.shape == (1, 1, 32, 24)
    mean = combine_hypotheses(hm[None], codec, combine="mean")
    torch.testing.assert_close(mean.heatmaps[0], hm.mean(0))
    torch.testing.assert_close(mean.keypoints, codec.decode(hm.mean(0, keepdim=True))[0])
    same = combine_hypotheses(hm[:1][None].expand(1, 4, 1, 32, 24), codec)
    assert same.uncertainty.abs().max().item() < 1e-4  # identical hypotheses: no spread


@pytest.fixture(scope="module")
def checkpoint_net(tmp_path_factory):
    """One tiny DiffPose 'checkpoint' written to disk and loaded back: sampling needs no retraining."""
    torch.manual_seed(0)
    cfg = load_config("tiny", overrides=PATCH_TINY).model
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(DiffPoseNet.from_config(cfg).state_dict(), path)
    net = DiffPoseNet.from_config(cfg)
    net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return net.eval()


def clips(b: int = 2) -> torch.Tensor:
    return torch.randn(b, 5, 3, 128, 96, generator=torch.Generator().manual_seed(4))


def test_condition_once_per_clip_for_any_steps_and_hypotheses(checkpoint_net):
    net = checkpoint_net
    codec = HeatmapCodec.from_model_config(load_config("tiny", overrides=PATCH_TINY).model)
    counts = {"strl": 0, "prepare": 0, "decoder": 0}
    hooks = [net.strl.register_forward_hook(lambda *a: counts.__setitem__("strl", counts["strl"] + 1)),
             net.decoder.register_forward_hook(lambda *a: counts.__setitem__("decoder", counts["decoder"] + 1))]
    original_prepare = net.prepare

    def counting_prepare(cond):
        counts["prepare"] += 1
        return original_prepare(cond)

    net.prepare = counting_prepare
    x = clips(2)
    try:
        # one and several steps, one and several hypotheses: the decoder runs once per step (all K hypotheses
        # in one batch), the STRL and the pyramid once per clip
        for steps, k in ((1, 1), (1, 8), (4, 1), (4, 8)):
            counts.update(strl=0, prepare=0, decoder=0)
            out = sample_poses(net, DIFF, codec, clips=x, steps=steps, hypotheses=k,
                               generator=torch.Generator().manual_seed(0))
            assert counts == {"strl": 1, "prepare": 1, "decoder": steps}, (steps, k)
            assert out.hypotheses_keypoints.shape == (2, k, 17, 2)
            assert out.keypoints.shape == (2, 17, 2) and out.scores.shape == (2, 17)
            assert out.uncertainty.shape == (2, 17) and out.heatmaps.shape == (2, 17, 32, 24)
            assert torch.isfinite(out.keypoints).all() and (out.uncertainty >= 0).all()
    finally:
        for h in hooks:
            h.remove()
        del net.prepare


def test_identical_seeds_identical_samples_and_cached_condition_path(checkpoint_net):
    net = checkpoint_net
    codec = HeatmapCodec.from_model_config(load_config("tiny", overrides=PATCH_TINY).model)
    x = clips(2)

    def run(seed, **kw):
        return sample_poses(net, DIFF, codec, steps=2, hypotheses=3, generator=torch.Generator().manual_seed(seed),
                            **kw)

    a, b, c = run(1, clips=x), run(1, clips=x), run(2, clips=x)
    assert torch.equal(a.heatmaps, b.heatmaps) and torch.equal(a.hypotheses_keypoints, b.hypotheses_keypoints)
    assert not torch.equal(a.heatmaps, c.heatmaps)
    with torch.no_grad():
        feats = net.backbone_features(x.flatten(0, 1)).reshape(2, 5, 128, 8, 6)
        cond = net.condition_from_features(feats)
    torch.testing.assert_close(run(1, cond=cond).heatmaps, a.heatmaps)
    cfg = load_config("tiny", overrides=["sampling.steps=2", "sampling.ensemble=3", "sampling.combine=median"])
    med = sample_from_config(net, DIFF, codec, cfg.sampling, clips=x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(med.hypotheses_keypoints, a.hypotheses_keypoints)
    torch.testing.assert_close(med.keypoints, a.hypotheses_keypoints.median(dim=1).values)
    with pytest.raises(DiffPoseError, match="sampling.combine: 'vote' is not one of mean, median"):
        with_sampling(cfg, combine="vote")  # sampling settings are checked with the config, once
    with pytest.raises(ValueError, match="combine must be one of"):
        sample_poses(net, DIFF, codec, clips=x, hypotheses=2, combine="vote")


def test_pure_noise_fraction_of_training_steps():
    g = torch.Generator().manual_seed(0)
    uniform = sample_timesteps(20000, 1000, g, "cpu")
    assert 0 <= int(uniform.min()) and int(uniform.max()) == 999
    assert abs(float((uniform == 999).float().mean()) - 1 / 1000) < 2e-3
    mixed = sample_timesteps(20000, 1000, torch.Generator().manual_seed(0), "cpu", pure_noise=0.5)
    # half at T-1 by construction, plus the uniform draws that land there
    assert abs(float((mixed == 999).float().mean()) - (0.5 + 0.5 / 1000)) < 0.02
    assert float(mixed[mixed != 999].float().mean()) == pytest.approx(499, abs=15)
