"""Cases found by trying the CLI again as a new user (docs/reliability.md, "Tried again as a new user"): the
ones that gave a traceback or a wrong result, through the CLI."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from diffpose.inference import Boxes, sanitize_boxes
from diffpose.inference.boxes import MAX_BOX_SCALE
from tests.helpers import ASSETS, refused, run


@pytest.mark.parametrize("command", ["test", "train", "infer"])
def test_a_path_longer_than_the_system_allows_is_one_line(command, synth_small, tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    val = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    argv = {"test": ["test", "-c", ASSETS / "tiny_baseline.pt", "--data", synth_small, "--out", long],
            "train": ["train", "--data", synth_small, "--out", long, "--set", "train.max_steps=1"],
            "infer": ["infer", val, "-c", ASSETS / "tiny_baseline.pt", "--boxes", "gt", "--json", f"{long}.json"]}
    refused(run(capsys, *argv[command], "--no-progress"), command, "path too long for this system")


def test_boxes_many_frames_wide_are_dropped_and_counted():
    boxes = Boxes(np.array([[10.0, 10, 50, 80], [0, 0, 1e12, 1e12], [0, 0, 640 * MAX_BOX_SCALE, 50]]),
                  np.ones(3), "detector")
    kept, dropped = sanitize_boxes(boxes, (640, 480))
    assert dropped == 1 and kept.xywh.tolist() == [[10.0, 10, 50, 80], [0, 0, 6400, 50]]


def test_a_detector_box_of_1e12_pixels_is_dropped_and_the_render_still_works(tmp_path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((96, 128, 3), 100, np.uint8))
    (tmp_path / "huge_det.py").write_text("def detect(image):\n"
                                          "    return [(0, 0, 1e12, 1e12, 0.9), (10, 10, 40, 70, 0.9)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "huge_det", raising=False)
    code, out, err = run(capsys, "infer", frames, "-c", ASSETS / "tiny_baseline.pt", "--detector", "huge_det:detect",
                         "--json", tmp_path / "o.json", "--render", tmp_path / "o.mp4", "--no-progress")
    assert code == 0, err
    assert "dropped 1 boxes" in out
    assert len(json.loads((tmp_path / "o.json").read_text())["annotations"]) == 1


def test_a_detector_whose_every_box_is_below_the_threshold_is_refused_like_a_detection_file(tmp_path, capsys,
                                                                                           monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((96, 128, 3), 100, np.uint8))
    (tmp_path / "low_det.py").write_text("def detect(image):\n    return [(10, 10, 40, 70, 0.2)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "low_det", raising=False)
    (tmp_path / "o.json").write_text("previous")
    refused(run(capsys, "infer", frames, "-c", ASSETS / "tiny_baseline.pt", "--detector", "low_det:detect",
                "--min-box-score", "0.5", "--json", tmp_path / "o.json", "--no-progress"), "infer",
            "all 2 boxes the detector returned score below --min-box-score 0.5")
    assert (tmp_path / "o.json").read_text() == "previous"  # nothing committed


def test_min_box_score_with_annotation_boxes_says_it_is_ignored(synth_small, tmp_path, capsys):
    val = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    code, _, err = run(capsys, "infer", val, "-c", ASSETS / "tiny_baseline.pt", "--boxes", "gt", "--min-box-score",
                       "0.5", "--json", tmp_path / "o.json", "--no-progress")
    assert code == 0 and "--min-box-score does not apply to annotation boxes" in err


def test_a_user_detector_score_outside_0_1_is_one_line(tmp_path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((96, 128, 3), 100, np.uint8))
    (tmp_path / "big_score.py").write_text("def detect(image):\n    return [(10, 10, 40, 70, 2.5)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "big_score", raising=False)
    refused(run(capsys, "infer", frames, "-c", ASSETS / "tiny_baseline.pt", "--detector", "big_score:detect",
                "--json", tmp_path / "o.json", "--no-progress"), "infer", "big_score:detect [frame 0]",
            "expected scores in [0, 1]", "got 2.5")
    assert not (tmp_path / "o.json").exists()
