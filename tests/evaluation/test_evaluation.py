"""The PoseTrack AP evaluator against hand-computed cases, the golden GT=100 case and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffpose.cli import main as cli_main
from diffpose.data.posetrack18 import read_posetrack18, write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.errors import DataFormatError
from diffpose.evaluation import REPORT_JOINTS, evaluate_dirs, evaluate_videos
from diffpose.evaluation.metrics import voc_ap
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED
from tests.helpers import FIXTURES

J = POSETRACK18.num_joints
# head box 30 x 40 -> diagonal 50 -> head size 0.6 * 50 = 30 px -> PCKh@0.5 threshold 15 px
HEAD = np.array([0.0, 0.0, 30.0, 40.0])
LABELLED = np.array([k not in POSETRACK18_UNLABELED for k in range(J)])


def person(offset=(100.0, 100.0), shift=(0.0, 0.0), score=None, track_id=0, head=True, joints=None) -> Person:
    """A person whose 15 labelled joints sit on a grid; ``shift`` moves every joint."""
    present = LABELLED.copy() if joints is None else np.isin(np.arange(J), joints)
    grid = np.stack([np.arange(J) % 4 * 40.0, np.arange(J) // 4 * 40.0], axis=1)  # (J, 2)
    kps = np.where(present[:, None], grid + np.asarray(offset) + np.asarray(shift), 0.0)
    scores = None if score is None else np.where(present, score, 0.0)
    return Person(keypoints=kps, visibility=present.astype(float) if score is None else scores, present=present,
                  scores=scores, head_box=HEAD + [*offset, 0, 0] if head else None, track_id=track_id)


def video(frames: list[list[Person]], name: str = "000001_mpii_test", labeled=None, regions=None) -> Video:
    out = []
    for i, persons in enumerate(frames):
        out.append(Frame(file_name=f"images/val/{name}/{i:06d}.jpg", frame_index=i, image_id=10_000_010_000 + i,
                         is_labeled=bool(persons) if labeled is None else labeled[i], persons=persons,
                         ignore_regions=[] if regions is None else regions[i]))
    return Video(name=name, frames=out)


def ap_of(gt_frames, pred_frames, **kw):
    return evaluate_videos([(video(gt_frames, **kw), video(pred_frames))])


def test_voc_ap_hand_computed():
    # ranks: TP, FP, TP with 2 GT -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP = .5*1 + .5*2/3
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 1 / 3)


def test_perfect_predictions_give_100():
    r = ap_of([[person(), person((300, 100), track_id=1)]],
              [[person(score=0.9), person((300, 100), score=0.8, track_id=1)]])
    assert all(v == pytest.approx(100.0, abs=1e-6) for v in r.per_joint_ap.values())
    assert r.groups["Total"] == pytest.approx(100.0, abs=1e-6)
    assert r.frames_evaluated == 1


def test_half_the_people_shifted_past_the_threshold():
    gt = [[person(), person((300, 100), track_id=1)]]
    # exact person ranked first: records (0.9, TP), (0.8, FP), 2 GT -> AP = 0.5 * 1 = 50
    r = ap_of(gt, [[person(score=0.9), person((300, 100), shift=(16, 0), score=0.8, track_id=1)]])
    assert r.groups["Total"] == pytest.approx(50.0, abs=1e-6)
    assert r.per_joint_precision["nose"] == pytest.approx(50.0) and r.per_joint_recall["nose"] == pytest.approx(50.0)
    # shifted person ranked first: (0.9, FP), (0.8, TP) -> precision 0, 1/2 ; recall 0, 1/2 -> AP = .5 * .5 = 25
    r = ap_of(gt, [[person(score=0.8), person((300, 100), shift=(16, 0), score=0.9, track_id=1)]])
    assert r.groups["Total"] == pytest.approx(25.0, abs=1e-6)


def test_threshold_is_inclusive():
    # 15 px is exactly 0.5 head sizes (head size 30 px): a match; 15.01 px is not
    assert ap_of([[person()]], [[person(shift=(9, 12), score=1.0)]]).groups["Total"] == pytest.approx(100.0)
    assert ap_of([[person()]], [[person(shift=(15.01, 0), score=1.0)]]).groups["Total"] == pytest.approx(0.0)


def test_duplicate_listed_second_with_higher_score_is_a_false_positive():
    # both predictions match the GT perfectly; the first listed wins, whatever the scores
    r = ap_of([[person()]], [[person(score=0.5, track_id=0), person(score=0.9, track_id=1)]])
    # ranks: (0.9, FP), (0.5, TP), 1 GT -> precision 0, 1/2 ; recall 0, 1 -> AP = 1 * 1/2
    assert r.groups["Total"] == pytest.approx(50.0, abs=1e-6)


def test_prediction_between_two_gt_goes_to_the_first_gt():
    # equidistant from both GT persons (pck 1 to each): step 1 keeps the first GT only
    gts = [person((100, 100)), person((120, 100), track_id=1)]
    r = ap_of([gts], [[person((110, 100), score=1.0)]])
    # one TP per joint out of 2 GT -> AP 50
    assert r.groups["Total"] == pytest.approx(50.0, abs=1e-6)


def test_frames_with_no_predictions_count_their_gt():
    r = ap_of([[person()], [person()]], [[person(score=1.0)], []])
    assert r.groups["Total"] == pytest.approx(50.0, abs=1e-6)
    assert r.frames_evaluated == 2


def test_frames_without_gt_people_are_not_evaluated():
    # predictions in a frame without GT people do not count (poseval keeps GT frames with >= 1 person)
    r = ap_of([[person()], []], [[person(score=0.5)], [person(score=1.0)]])
    assert r.groups["Total"] == pytest.approx(100.0, abs=1e-6)
    assert r.frames_evaluated == 1


def test_gt_person_without_joints_keeps_frame_and_predictions_are_false_positives():
    r = ap_of([[person(joints=[]), person((300, 100), track_id=1)]],
              [[person((500, 300), score=0.9), person((300, 100), score=0.5, track_id=1)]])
    # ranks: (0.9, FP), (0.5, TP), 1 GT joint each -> AP 50
    assert r.groups["Total"] == pytest.approx(50.0, abs=1e-6)


def test_ignore_regions_remove_joints_strictly_inside():
    lw = POSETRACK18.index("left_wrist")
    gt1, gt2 = person(), person((300, 100), track_id=1)
    wrist = gt1.keypoints[lw]
    square = np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]], float) + wrist
    pred1 = person(score=0.9)
    pred1.keypoints[lw] += [2.0, 1.0]  # still inside the region (and still a match)
    pred2 = person((300, 100), score=0.8, track_id=1)
    r = ap_of([[gt1, gt2]], [[pred1, pred2]], regions=[[square]])
    assert r.per_joint_ap["left_wrist"] == pytest.approx(100.0)
    assert r.joints.num_gt.sum() == 2 * 15 - 1  # one GT joint removed
    # a prediction inside the region does not count: move it far away, but keep it inside -> still 100
    pred1.keypoints[lw] = wrist + [4.0, -4.0]
    pred1.keypoints[POSETRACK18.index("nose")] += [100, 0]  # an unrelated miss elsewhere
    r = ap_of([[gt1, gt2]], [[pred1, pred2]], regions=[[square]])
    assert r.per_joint_ap["left_wrist"] == pytest.approx(100.0)


def test_point_on_polygon_boundary_is_not_ignored():
    lw = POSETRACK18.index("left_wrist")
    gt = person()
    x, y = gt.keypoints[lw]
    edge_square = np.array([[x, y - 5], [x + 10, y - 5], [x + 10, y + 5], [x, y + 5]])  # wrist on the left edge
    r = ap_of([[gt]], [[person(score=1.0)]], regions=[[edge_square]])
    assert r.joints.num_gt.sum() == 15


def test_person_with_every_joint_ignored_is_removed_on_both_sides():
    big = np.array([[50, 50], [300, 50], [300, 300], [50, 300]], float)
    inside, outside = person((100, 100)), person((400, 100), track_id=1)
    # the prediction inside would be a false positive if it were kept
    r = ap_of([[inside, outside]], [[person((110, 110), score=1.0), person((400, 100), score=0.5, track_id=1)]],
              regions=[[big]])
    assert r.groups["Total"] == pytest.approx(100.0)
    assert r.joints.num_gt.sum() == 15


def test_joint_predicted_without_gt_gives_nan_in_poseval_and_zero_in_posetrack21():
    nose = POSETRACK18.index("nose")
    gt = person(joints=[k for k in range(J) if LABELLED[k] and k != nose])
    r = ap_of([[gt]], [[person(score=1.0)]])
    assert np.isnan(r.per_joint_ap["nose"])
    assert r.groups["Total"] == pytest.approx(100.0)  # NaN skipped: mean of the other 14
    assert np.isnan(r.groups["Head"])
    r21 = evaluate_videos([(video([[gt]]), video([[person(score=1.0)]]))], protocol="posetrack21")
    assert r21.per_joint_ap["nose"] == 0.0
    assert r21.groups["Total"] == pytest.approx(100.0 * 14 / 15)


def test_posetrack21_protocol_drops_nonpositive_coordinates_and_unlabeled_frames():
    gt = person((100, 100))
    head_top = POSETRACK18.index("head_top")
    gt.keypoints[head_top] = [120.0, -5.0]  # labelled but at y < 0: poseval counts it, PT21 does not
    pred = person((100, 100), score=1.0)
    pred.keypoints[head_top] = [300.0, 300.0]  # wrong
    r_pv = evaluate_videos([(video([[gt]]), video([[pred]]))])
    r_21 = evaluate_videos([(video([[gt]]), video([[pred]]))], protocol="posetrack21")
    assert r_pv.per_joint_ap["head_top"] == 0.0
    assert r_21.per_joint_ap["head_top"] == 0.0  # no GT head_top, one prediction: 0 (not NaN) in PT21
    assert r_21.joints.num_gt.sum() == 14 and r_pv.joints.num_gt.sum() == 15
    # a frame with people but is_labeled false: poseval evaluates it, the PT21 kit does not
    gtv = video([[person()], [person()]], labeled=[True, False])
    prv = video([[person(score=1.0)], []])
    assert evaluate_videos([(gtv, prv)]).groups["Total"] == pytest.approx(50.0)
    assert evaluate_videos([(gtv, prv)], protocol="posetrack21").groups["Total"] == pytest.approx(100.0)


def test_occluded_subset():
    gt1, gt2 = person(), person((300, 100), track_id=1)
    gt1.occluded = np.zeros(J, bool)
    gt1.occluded[POSETRACK18.index("left_wrist")] = True
    gt2.occluded = np.zeros(J, bool)
    gt2.occluded[POSETRACK18.index("left_wrist")] = True
    p1, p2 = person(score=0.9), person((300, 100), score=0.8, track_id=1)
    p2.keypoints[POSETRACK18.index("left_wrist")] += [40, 0]  # occluded wrist of person 2 missed
    r = evaluate_videos([(video([[gt1, gt2]]), video([[p1, p2]]))], occluded=True)
    assert r.occluded is not None
    assert r.occluded.num_gt.sum() == 2
    occ = r.to_json()["occluded"]
    assert occ["per_joint_ap"]["left_wrist"] == pytest.approx(50.0)
    assert occ["num_gt_joints"] == 2
    assert r.per_joint_ap["nose"] == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------------- files + CLI
def _write_pair(tmp_path: Path, gt: Video, pred: Video) -> tuple[Path, Path]:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    write_posetrack18(gt, gt_dir / f"{gt.name}.json")
    write_posetrack18(pred, pred_dir / f"{gt.name}.json")
    return gt_dir, pred_dir


def test_golden_case_gt_as_predictions_gives_100(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "posetrack18" / "annotations" / "val"
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for f in sorted(gt_dir.glob("*.json")):
        v = read_posetrack18(f)
        for frame in v.frames:
            for t, p in enumerate(frame.persons):
                p.scores, p.track_id, p.score = p.visibility.copy(), t, 1.0
        write_posetrack18(v, pred_dir / f.name)
    for protocol in ("poseval", "posetrack21"):
        r = evaluate_dirs(gt_dir, pred_dir, protocol=protocol)
        assert all(v == pytest.approx(100.0, abs=1e-9) for v in r.groups.values()), (protocol, r.groups)
        assert all(v == pytest.approx(100.0) for v in r.per_joint_precision.values())
    r = evaluate_dirs(gt_dir, pred_dir)
    expected = {"right_ankle": 10, "right_knee": 10, "right_hip": 13, "left_hip": 13, "left_knee": 10,
                "left_ankle": 10, "right_wrist": 11, "right_elbow": 14, "right_shoulder": 14, "left_shoulder": 14,
                "left_elbow": 10, "left_wrist": 11, "head_bottom": 14, "nose": 13, "head_top": 14}
    from diffpose.evaluation.report import _POSEVAL_INDEX

    assert {n: int(r.joints.num_gt[_POSEVAL_INDEX[n]]) for n in expected} == expected
    assert int(r.joints.num_gt.sum()) == 181
    # the CLI prints the table and writes exactly the documented JSON keys
    out_json = tmp_path / "ap.json"
    assert cli_main(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out_json),
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Head" in text and "Ankl" in text and "Total" in text and "100.0" in text
    data = json.loads(out_json.read_text())
    assert set(data) == {"per_joint_ap", "per_joint_precision", "per_joint_recall", "groups", "frames_evaluated"}
    assert list(data["per_joint_ap"]) == list(REPORT_JOINTS)
    assert list(data["groups"]) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"]
    assert data["frames_evaluated"] == 3


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("breakage, message", [
    ("missing_file", "missing prediction file"),
    ("frame_count", "has 1 frames but the GT file"),
    ("order", "image id"),
    ("duplicate_track", "duplicate track ids"),
    ("keypoint_count", "expected 51 numbers"),
    ("non_numeric", "expected numbers only"),
    ("no_head_box", "has no head box"),
    ("no_track_id", "has no track_id"),
    ("bad_json", "invalid JSON"),
])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, breakage, message):
    gt_dir, pred_dir = _write_pair(tmp_path, video([[person()], [person()]]),
                                   video([[person(score=1.0)], [person(score=1.0)]]))
    gt_file, pred_file = next(gt_dir.iterdir()), next(pred_dir.iterdir())
    pred = json.loads(pred_file.read_text())
    gt = json.loads(gt_file.read_text())
    if breakage == "missing_file":
        pred_file.unlink()
    elif breakage == "frame_count":
        pred["images"] = pred["images"][:1]
        pred["annotations"] = pred["annotations"][:1]
    elif breakage == "order":
        pred["images"] = pred["images"][::-1]
    elif breakage == "duplicate_track":
        extra = dict(pred["annotations"][0], id=123)
        pred["annotations"].append(extra)
    elif breakage == "keypoint_count":
        pred["annotations"][1]["keypoints"] = pred["annotations"][1]["keypoints"][:-3]
    elif breakage == "non_numeric":
        pred["annotations"][0]["keypoints"][4] = "12.5"
    elif breakage == "no_head_box":
        del gt["annotations"][1]["bbox_head"]
    elif breakage == "no_track_id":
        del pred["annotations"][0]["track_id"]
    if breakage not in ("missing_file", "bad_json"):
        pred_file.write_text(json.dumps(pred))
        gt_file.write_text(json.dumps(gt))
    if breakage == "bad_json":
        pred_file.write_text(pred_file.read_text()[:-20])
    before = _digest(gt_dir), _digest(pred_dir)
    with pytest.raises(DataFormatError, match=message):
        evaluate_dirs(gt_dir, pred_dir)
    code = cli_main(["evaluate", "--gt", str(gt_dir), "--pred", str(pred_dir), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err
    assert (gt_file.name in err) or (pred_file.name in err)
    assert (_digest(gt_dir), _digest(pred_dir)) == before  # nothing the user gave is modified


def test_missing_directories_are_reported(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        evaluate_dirs(tmp_path / "nope", tmp_path)
    (tmp_path / "gt").mkdir()
    with pytest.raises(DataFormatError, match=r"no \*\.json"):
        evaluate_dirs(tmp_path / "gt", tmp_path)


def test_random_split_matches_recorded_values(tmp_path):
    """Pinned values for a random split, checked once against the official poseval
    (``python scripts/poseval_parity.py``); they guard against regressions in matching or AP."""
    from diffpose.evaluation.random_split import write_random_split

    gt_dir, pred_dir = write_random_split(tmp_path, videos=3, frames=5, people=4, seed=7)
    r = evaluate_dirs(gt_dir, pred_dir)
    pinned = json.loads((FIXTURES / "random_split_seed7.json").read_text())
    assert r.joints.ap.tolist() == pytest.approx(pinned["ap"], abs=1e-9)
    assert r.joints.precision.tolist() == pytest.approx(pinned["pre"], abs=1e-9)
    assert r.joints.recall.tolist() == pytest.approx(pinned["rec"], abs=1e-9)


def test_copying_gt_dir_leaves_it_untouched(shared_data, tmp_path):
    src = shared_data / "posetrack18" / "annotations" / "val"
    before = _digest(src)
    shutil.copytree(src, tmp_path / "pred")
    evaluate_dirs(src, tmp_path / "pred")
    assert _digest(src) == before
