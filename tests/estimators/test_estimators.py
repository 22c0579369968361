"""The model interface: every kind trains and predicts through the same calls, and a new kind needs no other edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose.checkpoint import save_checkpoint
from diffpose.config import SamplingConfig, config_to_dict, load_config
from diffpose.engine.run import train_and_finish
from diffpose.errors import DiffPoseError
from diffpose.estimators import KINDS, Kind, Predictor, RegressionEstimator, build_estimator, load_estimator
from diffpose.models import ClipNetwork, build_backbone, build_head, check_geometry
from tests.helpers import MICRO

pytestmark = pytest.mark.usefixtures("one_thread")


def micro(kind: str, *extra: str):
    return load_config("tiny", overrides=[*MICRO, f"model.kind={kind}", *extra])


def batch_for(est, n: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = est.cfg.model
    return {"frames": torch.randn(n, est.num_frames, 3, *m.backbone.image_size, generator=g),
            "heatmaps": torch.rand(n, m.num_joints, *m.heatmap_size, generator=g),
            "weights": torch.ones(n, m.num_joints)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_trains_and_predicts_through_the_interface(kind):
    torch.manual_seed(0)
    est = build_estimator(micro(kind))
    assert est.kind == kind and est.offsets[est.key] == 0 and len(est.offsets) == est.num_frames
    batch = batch_for(est)
    noise = est.training_noise(torch.Generator().manual_seed(1), 3)
    assert all(v.shape[0] == 3 for v in noise.values())  # per-sample draws the trainer can slice per process
    again = est.training_noise(torch.Generator().manual_seed(1), 3)
    assert all(torch.equal(noise[k], again[k]) for k in noise)
    loss = est.loss(batch, noise)["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in est.net.parameters())
    est.eval()
    with torch.no_grad():
        sampling = SamplingConfig(steps=2, ensemble=3)
        s = est.predict(batch["frames"], sampling, torch.Generator().manual_seed(2))
        feats = est.backbone_features(batch["frames"].flatten(0, 1))  # (B*T, D, h, w)
        clip_feats = feats.reshape(3, est.num_frames, *feats.shape[1:])  # (B, T, D, h, w)
        f = est.predict_features(clip_feats, sampling, torch.Generator().manual_seed(2))
    k = 3 if est.samples else 1
    assert s.keypoints.shape == (3, 17, 2) and s.hypotheses_keypoints.shape == (3, k, 17, 2)
    torch.testing.assert_close(f.keypoints, s.keypoints)  # cached features give what clips give
    assert (s.uncertainty > 0).any() if est.samples else (s.uncertainty == 0).all()
    record = est.sampling_record(SamplingConfig(steps=2, ensemble=3))
    assert (record == {"steps": 2, "ensemble": 3, "combine": "mean", "eta": 1.0}) if est.samples else record is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_saved_checkpoint_loads_back_to_the_same_predictions(kind, tmp_path):
    torch.manual_seed(3)
    cfg = micro(kind)
    est = build_estimator(cfg).eval()
    path = save_checkpoint({"config": config_to_dict(cfg), "model": est.net.state_dict()}, tmp_path / "final.pt")
    loaded = load_estimator(path)
    clips = batch_for(est)["frames"]
    with torch.no_grad():
        a = est.predict(clips, generator=torch.Generator().manual_seed(0))
        b = loaded.predict(clips, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.keypoints, b.keypoints) and loaded.kind == kind and not loaded.net.training


def test_unknown_kind_names_the_key():
    with pytest.raises(DiffPoseError, match=r"model\.kind.*unknown model kind 'poseformer'.*diffpose, baseline"):
        build_estimator(micro("poseformer"))


class MeanOfFramesNet(ClipNetwork):
    """A third kind made up for this test: frame features averaged over the clip, then ViTPose's head."""

    def __init__(self, cfg):
        check_geometry(cfg)
        super().__init__(build_backbone(cfg), cfg.num_joints, cfg.num_frames, cfg.heatmap_size)
        self.head = build_head(cfg)

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg)

    def condition_from_features(self, feats):
        return feats.mean(dim=1)  # (B, D, h, w)

    def heatmaps(self, cond):
        return self.head(cond)  # (B, J, H, W)

    def forward(self, clips):
        return self.heatmaps(self.encode_condition(clips))


def test_a_new_kind_is_one_class_and_one_line(synth_small, tmp_path, monkeypatch):
    """Registering a kind in KINDS is all it takes to train, validate, test and infer with it."""
    monkeypatch.setitem(KINDS, "meanframes", Kind(MeanOfFramesNet, RegressionEstimator, "test kind"))
    cfg = micro("meanframes", f"data.root={synth_small}", "train.max_steps=3", "data.frame_offsets=[-2, -1, 0, 1, 2]")
    _, val = train_and_finish(cfg, tmp_path / "run", validate=True, progress=False)
    assert val is not None and "groups" in val
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "final.pt", "cpu")
    assert isinstance(predictor.estimator.net, MeanOfFramesNet) and predictor.offsets == (-2, -1, 0, 1, 2)
    image = np.zeros((120, 160, 3), np.uint8)
    poses = predictor.predict([image] * 5, np.array([[40.0, 20, 40, 80]]))
    assert len(poses) == 1 and poses[0].keypoints.shape == (17, 2) and (poses[0].uncertainty == 0).all()


def test_frame_offsets_must_fit_the_model():
    with pytest.raises(DiffPoseError, match=r"data\.frame_offsets"):
        build_estimator(micro("diffpose", "data.frame_offsets=[-1, 0, 1]"))  # three offsets for five frames
    with pytest.raises(DiffPoseError, match=r"data\.frame_offsets"):
        build_estimator(micro("diffpose", "data.frame_offsets=[1, 2, 3, 4, 5]"))  # no key frame
    base = build_estimator(micro("baseline", "data.frame_offsets=[-1, 0, 1]"))
    assert base.offsets == (0,)  # a single-frame model reads its key frame whatever the clip offsets say
