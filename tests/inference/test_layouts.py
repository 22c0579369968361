"""A model of another joint layout (a published ViTPose predicts COCO's joints): what its output files hold."""

from __future__ import annotations

import json

import numpy as np

from diffpose.data.posetrack18 import read_posetrack18
from diffpose.inference import PersonPose
from diffpose.inference.outputs import CocoResultsWriter, PoseTrackWriter
from diffpose.inference.pipeline import FrameResult
from diffpose.keypoints import COCO


def test_a_coco_model_writes_posetrack_files_with_the_joints_coco_lacks_absent_and_coco_results_in_coco_order(
        tmp_path):
    kp = np.arange(34, dtype=float).reshape(17, 2) + 10.0  # COCO order
    pose = PersonPose(keypoints=kp, scores=np.full(17, 0.8), uncertainty=np.arange(17, dtype=float),
                      box=np.array([5.0, 5, 50, 80]), track_id=3)
    result = FrameResult(index=0, name="f0.jpg", image_id=0, size=(640, 480), persons=[pose], annotation=None,
                         image=None)
    pt = PoseTrackWriter(tmp_path / "pt.json", "clip", model_layout=COCO)
    coco = CocoResultsWriter(tmp_path / "coco.json", layout=COCO)
    for sink in (pt, coco):
        sink.add(result)
        sink.close()
    person = read_posetrack18(tmp_path / "pt.json").frames[0].persons[0]
    assert person.present.tolist() == [True, False, False, False, False] + [True] * 12  # head_bottom/top, ears
    np.testing.assert_allclose(person.keypoints[5:], kp[5:])
    ann = json.loads((tmp_path / "pt.json").read_text())["annotations"][0]
    assert ann["keypoints"][3:9] == [0, 0, 0, 0, 0, 0] and ann["uncertainty"][1:3] == [0, 0]
    rows = json.loads((tmp_path / "coco.json").read_text())
    assert np.allclose(np.array(rows[0]["keypoints"]).reshape(17, 3)[:, :2], kp)  # eyes kept, COCO order
