"""Your own video: `infer` with the built-in detector and a checkpoint in a published ViTPose layout, on the real
clips in ../shared/data (the Bonn multi-person frames and the PoseTrack18 sample video), writing JSON and a
rendered video; the same checkpoint through `test`, `export` and `model-info`. Nothing is downloaded: the
detector's weights are saved by the test (random, so it finds nobody: the empty-but-valid case), and poses on
real people come from boxes made from the Bonn annotations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffpose.config import load_config
from diffpose.data.bonn import read_bonn_mat
from diffpose.data.transforms import box_from_keypoints
from diffpose.models import BaselineNet
from tests.helpers import SHARED_DATA, refused, run

pytest.importorskip("torchvision")
from diffpose.inference.detector import PersonDetector  # noqa: E402

BONN = SHARED_DATA / "bonn_multiperson_posetrack"
BONN_VIDEO = "060470979"
PT18_CLIP = SHARED_DATA / "posetrack18" / "videos" / "000001_mpiinew_test" / "000001_mpiinew_test.mp4"
# a ViTPose-S-wide network one block deep with the simple head: the published layout, small enough for a test
VITPOSE_S1 = ["model.kind=baseline", "model.head=simple", "model.backbone.embed_dim=384", "model.backbone.depth=1",
              "model.backbone.num_heads=12"]


@pytest.fixture(scope="module")
def vitpose_pth(tmp_path_factory) -> Path:
    """A checkpoint as the ViTPose repository publishes them: ``{"state_dict": backbone.* + keypoint_head.*}``."""
    torch.manual_seed(0)
    net = BaselineNet.from_config(load_config("paper", overrides=VITPOSE_S1).model)
    path = tmp_path_factory.mktemp("vitpose") / "vitpose_s1_simple.pth"
    torch.save({"state_dict": net.state_dict(), "meta": {"note": "random weights"}}, path)
    return path


@pytest.fixture(scope="module")
def detector_pth(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("det") / "frcnn320.pth"
    torch.save(PersonDetector("frcnn-mobilenet-320", pretrained=False).model.state_dict(), path)
    return path


def frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"sample data not available: {path}")


def test_bonn_frames_with_the_detector_and_with_annotation_boxes(vitpose_pth, detector_pth, tmp_path, capsys):
    frames = BONN / "videos" / BONN_VIDEO
    needs(frames)
    common = [str(frames), "-c", str(vitpose_pth), "--no-progress", "--threads", "2"]
    out = tmp_path / "det"
    code, stdout, err = run(capsys, "infer", *common, "--detector", "frcnn-mobilenet-320", "--detector-weights",
                            detector_pth, "--detect-every", "10", "--json", out / "poses.json", "--coco",
                            out / "coco.json", "--render", out / "poses.mp4")
    assert code == 0, err
    assert "person boxes from detector frcnn-mobilenet-320 on 5 frames" in stdout and "coco joints" in stdout
    doc = json.loads((out / "poses.json").read_text())
    assert len(doc["images"]) == 41 and frame_count(out / "poses.mp4") == 41  # nobody found: still every frame
    assert json.loads((out / "coco.json").read_text()) == []

    # boxes from the annotations (persons' joints, scaled 1.3) as a detection file: poses on real people
    video = read_bonn_mat(BONN / "annolist" / "test" / "annolist.mat", video=BONN_VIDEO)[0]
    names = sorted(p.name for p in frames.iterdir())
    dets = [{"image_id": names.index(Path(f.file_name).name), "category_id": 1, "score": 1.0,
             "bbox": [float(v) for v in box_from_keypoints(p.keypoints, p.present, 1.3)]}
            for f in video.frames if Path(f.file_name).name in names for p in f.persons if p.present.sum() >= 2]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "boxes"
    code, stdout, err = run(capsys, "infer", *common, "--boxes", tmp_path / "dets.json", "--no-propagate",
                            "--json", out / "poses.json", "--coco", out / "coco.json", "--render", out / "poses.mp4")
    assert code == 0, err
    doc = json.loads((out / "poses.json").read_text())
    assert sum(len([a for a in doc["annotations"] if a["image_id"] == im["id"]]) for im in doc["images"]) == len(dets)
    kp = np.array([a["keypoints"] for a in doc["annotations"]]).reshape(len(dets), 17, 3)
    assert (kp[:, [1, 2, 3, 4]] == 0).all() and (kp[:, 5:, 2] > 0).all()  # COCO lacks head_bottom/top; no ears
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco) == len(dets) and all(np.array(r["keypoints"]).reshape(17, 3)[1:3, 2].min() > 0 for r in coco)
    assert frame_count(out / "poses.mp4") == 41


def test_posetrack18_sample_video_with_the_detector(vitpose_pth, detector_pth, tmp_path, capsys):
    needs(PT18_CLIP)
    code, stdout, err = run(capsys, "infer", PT18_CLIP, "-c", vitpose_pth, "--detector", "frcnn-mobilenet-320",
                            "--detector-weights", detector_pth, "--json", tmp_path / "p.json", "--render",
                            tmp_path / "p.mp4", "--no-progress")
    assert code == 0, err
    assert len(json.loads((tmp_path / "p.json").read_text())["images"]) == 5 and frame_count(tmp_path / "p.mp4") == 5


def test_detector_weights_that_are_not_and_no_weights_offline_are_one_line_errors(vitpose_pth, tmp_path, capsys,
                                                                                   monkeypatch):
    clip = tmp_path / "frames"
    clip.mkdir()
    cv2.imwrite(str(clip / "0.png"), np.full((120, 160, 3), 127, np.uint8))
    bad = tmp_path / "not_weights.pth"
    torch.save({"backbone.weight": torch.zeros(3)}, bad)
    args = ["infer", clip, "-c", vitpose_pth, "--json", tmp_path / "o.json", "--no-progress"]
    refused(run(capsys, *args, "--detector", "frcnn-mobilenet-320", "--detector-weights", bad), "infer",
            str(bad), "not frcnn-mobilenet-320 weights")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty cache

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    err = refused(run(capsys, *args), "infer", "cannot download the frcnn-mobilenet detector weights",
                  "--detector-weights FILE", "https://download.pytorch.org/models/")
    assert not (tmp_path / "o.json").exists() and "Traceback" not in err


def test_a_published_vitpose_checkpoint_in_model_info_export_and_test(vitpose_pth, synth_small, tmp_path, capsys):
    code, out, err = run(capsys, "model-info", "-c", vitpose_pth, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "baseline" and doc["num_frames"] == 1 and list(doc["params"]) == ["backbone", "head",
                                                                                          "total"]
    net = BaselineNet.from_config(load_config("paper", overrides=VITPOSE_S1).model)
    assert doc["params"]["total"] == sum(p.numel() for p in net.parameters())
    code, out, err = run(capsys, "model-info", "-c", vitpose_pth)
    assert "17 joints (coco)" in out and "crops 256x192" in out
    pytest.importorskip("onnxruntime")
    code, out, err = run(capsys, "export", "-c", vitpose_pth, "--onnx", tmp_path / "onnx")
    assert code == 0, err
    manifest = json.loads((tmp_path / "onnx" / "diffpose_onnx.json").read_text())
    assert manifest["config"]["model"]["layout"] == "coco" and max(manifest["parity_max_abs"].values()) <= 1e-4
    code, out, err = run(capsys, "test", "-c", vitpose_pth, "--data", synth_small, "--out", tmp_path / "t",
                         "--no-progress")
    assert code == 0, err
    ap = json.loads((tmp_path / "t" / "ap.json").read_text())
    assert ap["kind"] == "baseline" and ap["uncertainty"] is None  # COCO joints: no PoseTrack18 uncertainty report
    pred = json.loads(next((tmp_path / "t" / "predictions").glob("*.json")).read_text())
    assert all(a["keypoints"][3:6] == [0, 0, 0] for a in pred["annotations"])  # head_bottom absent
