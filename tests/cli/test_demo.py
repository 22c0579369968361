"""The README's first command: the demo runs the bundled checkpoints on a generated video."""

from __future__ import annotations

import json

import cv2

from diffpose.checkpoint import load_checkpoint
from diffpose.cli import main as cli_main
from diffpose.cli.demo import BUNDLED
from diffpose.estimators import load_estimator


def test_bundled_checkpoints_are_small_and_load():
    for role, kind in (("model", "diffpose"), ("baseline", "baseline")):
        path = BUNDLED[role]
        assert path.stat().st_size <= 10 * 1024 * 1024, path
        ckpt = load_checkpoint(path)
        assert ckpt["config"]["model"]["kind"] == kind
        assert load_estimator(path).kind == kind


def test_demo_writes_video_json_and_sheet_and_prints_both_tables(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--frames", "12", "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "diffpose (5 frames)" in text and "baseline (1 frame)" in text and "Total" in text
    video = cv2.VideoCapture(str(out / "diffpose.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    video.release()
    preds = sorted((out / "predictions" / "diffpose").glob("*.json"))
    assert len(preds) == 1
    data = json.loads(preds[0].read_text())
    assert len(data["images"]) == 12 and data["annotations"]
    assert all(len(a["scores"]) == 17 for a in data["annotations"])
    assert cv2.imread(str(out / "contact_sheet.png")) is not None
