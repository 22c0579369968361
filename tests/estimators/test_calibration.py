"""Calibrated joint scores and uncertainties: features, fit, application, and the round trip through a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose.checkpoint import save_checkpoint
from diffpose.config import CalibrationConfig, SamplingConfig, config_to_dict, load_config
from diffpose.diffusion import PoseSamples
from diffpose.estimators import build_estimator, load_estimator
from diffpose.estimators.calibration import (
    FEATURES,
    apply_calibration,
    calibrated,
    calibrated_joints,
    fit_calibration,
    joint_features,
)
from diffpose.evaluation.uncertainty import auroc
from tests.helpers import MICRO


def samples(prior: bool) -> PoseSamples:
    kp = torch.tensor([[[10.0, 10.0], [20.0, 5.0]]])  # (B=1, J=2, 2)
    hyp = torch.stack([kp[0] + torch.tensor([[0.0, 0.0], [3.0, 4.0]]),
                       kp[0] + torch.tensor([[0.0, 1.0], [-3.0, -4.0]])])[None]  # (1, K=2, 2, 2)
    s = PoseSamples(heatmaps=torch.zeros(1, 2, 4, 3), keypoints=kp, scores=torch.tensor([[0.9, 0.4]]),
                    hypotheses_keypoints=hyp, uncertainty=torch.zeros(1, 2))
    if prior:
        s.prior_keypoints, s.prior_scores = kp + torch.tensor([[[0.0, 0.0], [6.0, 8.0]]]), torch.tensor([[0.8, 0.3]])
    return s


def test_features_are_computed_as_documented():
    s = samples(prior=True)
    s.heatmaps[0, 0, 1, 1], s.heatmaps[0, 0, 1, 2], s.heatmaps[0, 0, 3, 2] = 0.9, 0.5, 0.3  # (J, H=4, W=3)
    s.heatmaps[0, 1, 0, 0] = 0.4
    f = joint_features(s)[0]  # (J, F)
    # joint 0: spread sqrt((0 + 1) / 2); agreement: both within 2 px. joint 1: both 5 px off; prior 10 px away.
    # second peak: everything lies within 3 heatmap px of the peak here, so 0. No 17-joint layout: mirror 0.
    expected = torch.tensor([[0.9, np.log1p(np.sqrt(0.5)), 0.0, 0.8, 1.0, 0.0, 0.0, 0.0],
                             [0.4, np.log1p(5.0), np.log1p(10.0), 0.3, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float32)
    torch.testing.assert_close(f, expected)
    f = joint_features(samples(prior=False))[0]
    assert f[:, 2].abs().sum() == 0 and f[:, 3].abs().sum() == 0  # no prior: those features are 0
    assert f.shape[-1] == len(FEATURES)


def test_second_peak_and_mirror_distance_features():
    kp = torch.zeros(1, 17, 2)
    kp[0, 15], kp[0, 16] = torch.tensor([10.0, 50.0]), torch.tensor([13.0, 54.0])  # ankles 5 px apart
    kp[0, 1], kp[0, 2] = torch.tensor([6.0, 20.0]), torch.tensor([6.0, 8.0])  # head bottom, head top: 12 px
    hm = torch.zeros(1, 17, 16, 12)
    hm[0, :, 2, 2] = 0.8  # every joint peaks at (x=2, y=2)
    hm[0, 15, 2, 5] = 0.6  # inside the 3-px square: not a second place
    hm[0, 15, 12, 9] = 0.4  # far away: a second place at half the peak
    s = PoseSamples(heatmaps=hm, keypoints=kp, scores=hm.amax(dim=(2, 3)), hypotheses_keypoints=kp[:, None],
                    uncertainty=torch.zeros(1, 17))
    f = joint_features(s)[0]  # (J, F)
    assert f[15, 5].item() == pytest.approx(0.5) and f[16, 5].item() == 0.0
    assert f[15, 6].item() == pytest.approx(np.log1p(5.0)) and f[16, 6].item() == pytest.approx(np.log1p(5.0))
    assert f[0, 6].item() == 0.0  # the nose has no mirror joint
    torch.testing.assert_close(f[:, 7], torch.full((17,), float(np.log1p(12.0))))  # the person's head length


def test_the_fit_ranks_wrong_joints_and_predicts_the_error_scale():
    rng = np.random.default_rng(0)
    n, j = 4000, 3
    spread = rng.exponential(2.0, n)
    joint = rng.integers(0, j, n)
    error = spread * rng.uniform(0.5, 1.5, n) + 0.5 * joint  # errors grow with the spread and the joint index
    feats = np.stack([rng.uniform(0, 1, n), np.log1p(spread), np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n),
                      np.zeros(n), np.zeros(n)], 1)
    correct = error <= 2.0
    cal = fit_calibration(feats, joint, correct, error, num_joints=j, fitted_on="synthetic")
    assert len(cal.score_bias) == j and len(cal.score_weights) == len(FEATURES)
    score, unc = calibrated_joints(feats, joint, cal)
    assert auroc(1 - score, ~correct) > 0.9 and auroc(unc, ~correct) > 0.9
    assert abs(np.median(unc) / np.median(error) - 1) < 0.25  # expected error on the scale of the observed one
    assert abs(score.mean() - correct.mean()) < 0.02  # a logistic fit with intercepts is calibrated in the mean


def test_a_fit_needs_both_kinds_of_joints():
    with pytest.raises(Exception, match="right and wrong"):
        fit_calibration(np.zeros((5, len(FEATURES))), np.zeros(5, int), np.ones(5, bool), np.zeros(5), 1)


def test_no_fit_leaves_samples_unchanged_and_a_fit_replaces_score_and_uncertainty():
    s = samples(prior=True)
    assert apply_calibration(s, CalibrationConfig()) is s
    cal = CalibrationConfig(score_bias=(0.0, 1.0), score_weights=(2.0, 0, 0, 0, 0, 0, 0, 0),
                            error_bias=(0.0, 0.0), error_weights=(0, 1.0, 0, 0, 0, 0, 0, 0))
    out = apply_calibration(s, cal)
    torch.testing.assert_close(out.scores, torch.sigmoid(torch.tensor([[1.8, 1.8]])))
    torch.testing.assert_close(out.uncertainty, torch.tensor([[np.sqrt(0.5), 5.0]], dtype=torch.float32))
    with pytest.raises(Exception, match="calibration needs"):
        apply_calibration(s, CalibrationConfig(score_bias=(0.0,), score_weights=(1.0,), error_bias=(0.0,),
                                               error_weights=(1.0,)))


def test_a_calibrated_checkpoint_predicts_calibrated_scores(tmp_path):
    torch.manual_seed(0)
    cfg = load_config("paper", overrides=[*MICRO, "model.decoder.predicts=heatmap", "model.decoder.self_condition=true",
                                          "model.decoder.prior_head=true", "diffusion.start=prior",
                                          "diffusion.start_t=500"])
    est = build_estimator(cfg).eval()
    cal = CalibrationConfig(score_bias=tuple([0.5] * 17), score_weights=(1.0, -1.0, -0.5, 0.5, 0.2, -1.0, -0.1, 0.3),
                            error_bias=tuple([0.1] * 17), error_weights=(-0.2, 1.0, 0.5, 0.0, 0.0, 1.0, 0.1, 0.2),
                            fitted_on="test")
    cfg_dict = config_to_dict(cfg)
    cfg_dict["calibration"] = config_to_dict(cal)
    save_checkpoint({"config": cfg_dict, "model": est.net.state_dict()}, tmp_path / "cal.pt")
    loaded = load_estimator(tmp_path / "cal.pt")
    assert loaded.cfg.calibration == cal
    clips = torch.randn(2, 5, 3, 64, 48)
    s = SamplingConfig(steps=1, ensemble=3)
    with torch.no_grad():
        raw = est.predict(clips, s, torch.Generator().manual_seed(0))
        out = loaded.predict(clips, s, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.keypoints, raw.keypoints)  # calibration never moves a joint
    expected_score, expected_unc = calibrated(joint_features(raw), cal)
    torch.testing.assert_close(out.scores, expected_score)
    torch.testing.assert_close(out.uncertainty, expected_unc)
