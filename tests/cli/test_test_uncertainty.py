"""``diffpose test`` says in ap.json and OUT/reliability.png whether uncertainty and score flag wrong joints (GT
boxes), and writes ``"uncertainty": null`` for detection boxes."""

from __future__ import annotations

import json

import cv2
import pytest

from diffpose.data.clip_dataset import load_split
from diffpose.data.detections import write_detections
from diffpose.data.records import Detection
from tests.helpers import ASSETS, run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_test_reports_uncertainty_with_gt_boxes_and_null_with_detections(synth_small, tmp_path, capsys):
    code, out, err = run(capsys, "test", "-c", ASSETS / "tiny_baseline.pt", "--data", synth_small, "--out",
                         tmp_path / "gt", "--no-progress", "--device", "cpu")
    assert code == 0 and err == "", err
    report = json.loads((tmp_path / "gt" / "ap.json").read_text())["uncertainty"]
    assert report["joints"] > 0 and 0 <= report["wrong_rate"] <= 1
    assert 0 <= report["auroc_one_minus_score"] <= 1
    assert report["auroc_uncertainty"] == 0.5  # the baseline does not sample: uncertainty 0 everywhere, chance
    assert sum(b["count"] for b in report["reliability_score"]) == report["joints"]
    assert "wrong joints (error > half head size): " in out and "AUROC uncertainty 0.50, 1 - score " in out
    if report["occluded_joints"]:
        assert report["auroc_uncertainty_occluded"] in (0.5, None)
    plot = tmp_path / "gt" / "reliability.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not plot.exists() and "pip install 'diffpose[plots]'" in out
    else:
        assert cv2.imread(str(plot)) is not None and f"wrote {plot}" in out

    videos = load_split(synth_small, "val")
    dets = [Detection(f.image_id, p.box, 0.9) for v in videos for f in v.labeled_frames for p in f.persons
            if p.box is not None]
    write_detections(dets, tmp_path / "dets.json")
    code, out, err = run(capsys, "test", "-c", ASSETS / "tiny_baseline.pt", "--data", synth_small, "--out",
                         tmp_path / "det", "--boxes", tmp_path / "dets.json", "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert json.loads((tmp_path / "det" / "ap.json").read_text())["uncertainty"] is None
    assert not (tmp_path / "det" / "reliability.png").exists() and "AUROC" not in out
