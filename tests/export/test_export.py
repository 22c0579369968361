"""ONNX export: every graph matches PyTorch within 1e-4 under onnxruntime, at batch sizes other than
the export's, and the onnxruntime inference path gives PyTorch's keypoints. Skipped without onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from diffpose.cli import main as cli_main  # noqa: E402
from diffpose.config import SamplingConfig, load_config  # noqa: E402
from diffpose.estimators import (
    build_estimator,  # noqa: E402
    load_estimator,  # noqa: E402
    load_onnx_estimator,
)
from diffpose.export import check_parity, export_onnx  # noqa: E402
from diffpose.inference import Predictor  # noqa: E402
from diffpose.models.onnx_network import OnnxNetwork  # noqa: E402
from tests.helpers import ASSETS  # noqa: E402
from tests.models.test_model_options import OPTIONS  # noqa: E402

TOLERANCE = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The bundled tiny DiffPose and baseline checkpoints exported with ``diffpose export``."""
    out = {}
    for kind in ("diffpose", "baseline"):
        folder = tmp_path_factory.mktemp("onnx") / kind
        assert cli_main(["export", "-c", str(ASSETS / f"tiny_{kind}.pt"), "--onnx", str(folder)]) == 0
        out[kind] = folder
    return out


def test_every_graph_matches_pytorch_at_other_batch_sizes(exported):
    for kind, graphs in (("diffpose", {"backbone_features", "condition_from_features", "prepare", "denoise",
                                       "heatmaps"}),
                         ("baseline", {"backbone_features", "condition_from_features", "heatmaps"})):
        manifest = json.loads((exported[kind] / "diffpose_onnx.json").read_text())
        assert set(manifest["graphs"]) == graphs and manifest["config"]["model"]["kind"] == kind
        assert manifest["num_frames"] == (5 if kind == "diffpose" else 1)
        assert max(manifest["parity_max_abs"].values()) <= TOLERANCE
        estimator = load_estimator(ASSETS / f"tiny_{kind}.pt")
        for batch, k in ((1, 1), (5, 4)):  # the export traced batch 2 with 3 hypotheses
            parity = check_parity(estimator, exported[kind], manifest["graphs"], batch=batch, hypotheses=k)
            assert set(parity) == graphs
            assert max(parity.values()) <= TOLERANCE, parity


@pytest.mark.parametrize("kind", ["diffpose", "baseline"])
def test_onnxruntime_predictor_gives_pytorch_keypoints(exported, kind):
    frames = 5 if kind == "diffpose" else 1
    clips = torch.randn(6, frames, 3, 128, 96, generator=torch.Generator().manual_seed(0))
    settings = dict(steps=2, ensemble=3, seed=4)
    torch_kp, torch_scores, torch_unc = Predictor.from_checkpoint(ASSETS / f"tiny_{kind}.pt", "cpu",
                                                                  **settings).run_model(clips)
    onnx = Predictor.from_onnx(exported[kind], threads=1, **settings)
    kp, scores, unc = onnx.run_model(clips)
    np.testing.assert_allclose(kp, torch_kp, atol=1e-3, rtol=0)  # crop pixels
    np.testing.assert_allclose(scores, torch_scores, atol=TOLERANCE, rtol=0)
    # DARK turns the graphs' ~1e-6 heatmap differences into ~1e-3 px per hypothesis; the spread adds them up.
    np.testing.assert_allclose(unc, torch_unc, atol=1e-2, rtol=0)
    # the reuse path: features -> condition -> prediction
    feats = onnx.estimator.backbone_features(clips.flatten(0, 1))  # (6*T, D, h, w)
    feats = feats.reshape(6, frames, *feats.shape[1:])  # (6, T, D, h, w)
    onnx.reseed()
    np.testing.assert_allclose(onnx.run_features(feats)[0], torch_kp, atol=1e-3, rtol=0)


def test_infer_with_onnx_matches_pytorch(exported, synth_small, tmp_path, capsys):
    seq = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    common = [str(seq), "--boxes", "gt", "--no-propagate", "--no-progress", "--ensemble", "2"]
    assert cli_main(["infer", *common, "-c", str(ASSETS / "tiny_diffpose.pt"), "--json", str(tmp_path / "t.json")]) == 0
    assert cli_main(["infer", *common, "--onnx", str(exported["diffpose"]), "--json", str(tmp_path / "o.json")]) == 0
    assert "onnxruntime" in capsys.readouterr().out

    def keypoints(name: str) -> np.ndarray:
        return np.array([a["keypoints"] for a in json.loads((tmp_path / name).read_text())["annotations"]])

    assert keypoints("t.json").shape[0] > 0
    np.testing.assert_allclose(keypoints("o.json"), keypoints("t.json"), atol=1e-2)  # file rounding: 0.01 px


def test_a_self_conditioning_conv_stem_model_exports_with_parity(tmp_path):
    """The tiny regime's options (conv stem, heatmap output, self-conditioning with a `prev` input, key shortcut)."""
    torch.manual_seed(0)
    net = _export_and_compare(build_estimator(load_config("tiny", overrides=OPTIONS)).eval(), tmp_path,
                              clips=2, sampling=SamplingConfig(steps=3, ensemble=2))
    assert "prev" in net.graphs["denoise"].inputs and net.cfg.model.decoder.predicts == "heatmap"


def _export_and_compare(est, tmp_path: Path, clips: int, sampling: SamplingConfig) -> OnnxNetwork:
    """Export ``est``, check the export's parity, and sample ``clips`` random clips through PyTorch and through
    the exported graphs with the same noise: the heatmaps agree within 1e-4. Returns the ONNX network."""
    manifest = export_onnx(est, tmp_path / "onnx")
    assert max(manifest["parity_max_abs"].values()) <= TOLERANCE, manifest["parity_max_abs"]
    onnx_est = load_onnx_estimator(tmp_path / "onnx", threads=1)
    net = onnx_est.net
    frames = torch.randn(clips, 5, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = est.predict(frames, sampling, torch.Generator().manual_seed(2))
        b = onnx_est.predict(frames, sampling, torch.Generator().manual_seed(2))
    np.testing.assert_allclose(b.heatmaps.numpy(), a.heatmaps.numpy(), atol=1e-4)
    return net


def test_the_light_step_and_cross_strl_export_with_parity(tmp_path):
    """`decoder.step=light` (channels-last inside, pyramid with the masked halves) and `strl.queries=cross` with
    pooled neighbours."""
    torch.manual_seed(0)
    cfg = load_config("tiny", overrides=[*OPTIONS, "model.decoder.step=light", "model.strl.queries=cross",
                                         "model.strl.neighbour_pool=2"])
    _export_and_compare(build_estimator(cfg).eval(), tmp_path, clips=3, sampling=SamplingConfig(steps=2, ensemble=3))


def test_a_prior_start_model_exports_its_prior_head_with_parity(tmp_path):
    """`diffusion.start=prior`: the exported model carries the prior head (`heatmaps` graph) and samples from it."""
    torch.manual_seed(0)
    cfg = load_config("tiny", overrides=[*OPTIONS, "model.decoder.prior_head=true", "diffusion.start=prior",
                                         "diffusion.start_t=600"])
    net = _export_and_compare(build_estimator(cfg).eval(), tmp_path, clips=2,
                              sampling=SamplingConfig(steps=2, ensemble=3))
    assert "heatmaps" in net.sessions
