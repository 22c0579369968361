"""A kind with a head of its own, made up here, runs everywhere a kind runs: training, ``model-info``, ONNX
export, ``infer`` with PyTorch and with the exported graphs, the predictor's memory check. Nothing outside this
file knows it: it is one network, one estimator that declares its graphs, and one entry in ``KINDS``."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from diffpose.cli import main as cli_main
from diffpose.config import load_config
from diffpose.diffusion import combine_hypotheses, heatmap_mse
from diffpose.engine.run import train_and_finish
from diffpose.errors import DiffPoseError
from diffpose.estimators import KINDS, Kind, PoseEstimator, Predictor, load_estimator, model_complexity
from diffpose.models import ClipNetwork, Graph, build_backbone, check_geometry, count_params
from diffpose.models.graphs import BACKBONE
from tests.helpers import MICRO

pytestmark = pytest.mark.usefixtures("one_thread")
KIND = "logits"


class LogitNet(ClipNetwork):
    """Three frames averaged, then a new head: a 1x1 convolution to heatmap logits, upsampled 4x."""

    def __init__(self, cfg):
        check_geometry(cfg)
        super().__init__(build_backbone(cfg), cfg.num_joints, 3, cfg.heatmap_size)
        self.logit_head = nn.Sequential(nn.Conv2d(cfg.backbone.embed_dim, cfg.num_joints, 1),
                                        nn.Upsample(scale_factor=4, mode="bilinear"))

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg)

    def condition_from_features(self, feats):
        return feats.mean(dim=1)  # (B, T, D, h, w) -> (B, D, h, w)

    def logits(self, cond):
        return self.logit_head(cond)  # (B, J, 4h, 4w)


LOGITS = Graph("logits", "logits.onnx", ("cond",), ("logits",), {"cond": {0: "B"}, "logits": {0: "B"}},
               per="clip", part="logit_head", label="logit head (1x1 conv)", module="logit_head")
MEAN = Graph("condition_from_features", "condition.onnx", ("features",), ("cond",),
             {"features": {0: "B"}, "cond": {0: "B"}}, per="clip", part="mean", label="mean over frames")


class LogitEstimator(PoseEstimator):
    """Heatmaps are the sigmoid of the new head's logits; trained with the heatmap MSE."""

    samples: ClassVar[bool] = False
    clip_bytes = 1000  # what memory_per_clip reports (a test raises it)

    @classmethod
    def graphs(cls, cfg):
        return {g.method: g for g in (BACKBONE, MEAN, LOGITS)}

    def loss(self, batch, noise, forward=None):
        cond = self.net.encode_condition(batch["frames"])
        return {"loss": heatmap_mse(torch.sigmoid(self.net.logits(cond)), batch["heatmaps"], batch["weights"])}

    def predict_condition(self, cond, sampling=None, generator=None):
        return combine_hypotheses(torch.sigmoid(self.net.logits(cond))[:, None], self.codec)

    def memory_per_clip(self, sampling=None):
        return self.clip_bytes, "a logit clip"


@pytest.fixture
def logit_kind(monkeypatch):
    monkeypatch.setitem(KINDS, KIND, Kind(LogitNet, LogitEstimator, "a test kind with a head of its own"))


def micro(*extra: str):
    return load_config("tiny", overrides=[*MICRO, f"model.kind={KIND}", "data.frame_offsets=[-1, 0, 1]", *extra])


def test_model_info_counts_the_new_head(logit_kind, capsys):
    argv = ["model-info", "--set", *MICRO, f"model.kind={KIND}", "data.frame_offsets=[-1, 0, 1]"]
    assert cli_main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    net = LogitNet.from_config(micro().model)
    assert doc["kind"] == KIND and doc["num_frames"] == 3
    assert doc["params"] == {"backbone": count_params(net.backbone), "logit_head": count_params(net.logit_head),
                             "total": count_params(net)}
    assert list(doc["gflops"]) == ["backbone_per_frame", "logit_head_per_clip"]  # the mean costs nothing
    # a 1x1 conv from D channels to J at the 4x3 token grid (the upsampling multiplies nothing)
    d, j = 32, 17
    assert model_complexity(micro()).gflops["logit_head_per_clip"] * 1e9 == pytest.approx(d * j * 4 * 3)
    assert cli_main(argv) == 0
    table = capsys.readouterr().out
    assert "logit head (1x1 conv)" in table and f"{KIND}, 3 frames, single pass" in table


def test_the_new_kind_trains_exports_and_infers_with_both_runtimes(logit_kind, synth_small, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    train_and_finish(micro(f"data.root={synth_small}", "train.max_steps=2"), tmp_path / "run", progress=False)
    ckpt = tmp_path / "run" / "final.pt"
    assert isinstance(load_estimator(ckpt).net, LogitNet)
    assert cli_main(["export", "-c", str(ckpt), "--onnx", str(tmp_path / "onnx")]) == 0
    manifest = json.loads((tmp_path / "onnx" / "diffpose_onnx.json").read_text())
    assert manifest["graphs"] == {"backbone_features": "backbone.onnx", "condition_from_features": "condition.onnx",
                                  "logits": "logits.onnx"}
    assert manifest["num_frames"] == 3 and max(manifest["parity_max_abs"].values()) <= 1e-4
    seq = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    common = [str(seq), "--boxes", "gt", "--no-propagate", "--no-progress", "--exact"]
    assert cli_main(["infer", *common, "-c", str(ckpt), "--json", str(tmp_path / "torch.json")]) == 0
    assert cli_main(["infer", *common, "--onnx", str(tmp_path / "onnx"), "--json", str(tmp_path / "onnx.json")]) == 0
    capsys.readouterr()
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["annotations"] for n in ("torch", "onnx"))
    assert len(a) == len(b) > 0
    kp_a, kp_b = (np.array([x["keypoints"] for x in anns], dtype=float) for anns in (a, b))
    np.testing.assert_allclose(kp_b, kp_a, atol=1e-2)


def test_the_predictor_sizes_batches_with_the_kinds_own_memory_estimate(logit_kind, monkeypatch, capsys):
    est = LogitEstimator(LogitNet.from_config(micro().model), micro())
    free = 2**30
    monkeypatch.setattr("diffpose.estimators.predictor.free_memory", lambda device: free)
    assert Predictor(est, batch_size=8).batch_size == 8
    monkeypatch.setattr(LogitEstimator, "clip_bytes", free // 8)  # 4 clips fit in half of what is free
    assert Predictor(est, batch_size=8).batch_size == 4
    assert "a logit clip" in capsys.readouterr().err
    monkeypatch.setattr(LogitEstimator, "clip_bytes", free)
    with pytest.raises(DiffPoseError, match="a logit clip need about 1.0 GiB per clip"):
        Predictor(est)
