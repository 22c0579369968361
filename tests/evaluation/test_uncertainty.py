"""Uncertainty report: AUROC and Spearman on hand-computed cases, equal-count reliability bins, per-joint errors on
hand-built persons (PCKh@0.5 threshold, skipped joints and persons), the JSON report and the PNG."""

from __future__ import annotations

import itertools
import json
import math
import sys

import cv2
import numpy as np
import pytest

from diffpose.data.clip_dataset import ClipItem
from diffpose.data.records import Frame, Person, Video
from diffpose.errors import DiffPoseError
from diffpose.estimators import PersonPose
from diffpose.evaluation.uncertainty import (
    JointErrors,
    auroc,
    joint_errors,
    plot_reliability,
    reliability,
    report_summary,
    spearman,
    uncertainty_report,
)

J = 17


# ----------------------------------------------------------------------------------------------------- auroc
def test_auroc_hand_computed():
    labels = np.array([False, False, True, True])
    assert auroc(np.array([1.0, 2.0, 3.0, 4.0]), labels) == 1.0
    assert auroc(np.array([4.0, 3.0, 2.0, 1.0]), labels) == 0.0
    assert auroc(np.zeros(4), labels) == 0.5  # a constant ranks nothing: chance
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1, 0, 1, 1 -> 3/4
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), labels) == pytest.approx(0.75)
    # positives 2, 3 vs negatives 1, 2: pairs 1, 0.5 (tie), 1, 1 -> 3.5/4
    assert auroc(np.array([1.0, 2.0, 2.0, 3.0]), np.array([False, True, False, True])) == pytest.approx(0.875)


def test_auroc_matches_pair_counting_and_is_nan_for_one_class():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pos, neg = values[labels], values[~labels]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert auroc(values, labels) == pytest.approx(np.mean(pairs))
    assert math.isnan(auroc(values, np.zeros(40, dtype=bool)))
    assert math.isnan(auroc(values, np.ones(40, dtype=bool)))
    assert math.isnan(auroc(np.zeros(0), np.zeros(0, dtype=bool)))
    assert auroc(np.array([np.nan, 1.0, 2.0]), np.array([True, False, True])) == 1.0  # NaN values left out
    with pytest.raises(DiffPoseError, match="labels"):
        auroc(np.zeros(3), np.zeros(2, dtype=bool))


def test_spearman():
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 40.0])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.zeros(5), np.arange(5.0)))
    assert math.isnan(spearman(np.array([1.0]), np.array([2.0])))


# ----------------------------------------------------------------------------------------------- reliability
def test_reliability_equal_count_bins_keep_ties_together():
    u = np.array([2.0, 0.0, 3.0, 0.0, 1.0, 0.0])  # sorted: 0 0 0 | 1 | 2 3 (positions 0-1, 2-3, 4-5 per bin)
    e = np.array([5.0, 1.0, 9.0, 2.0, 4.0, 6.0])
    w = np.array([True, False, True, False, False, True])
    rows = reliability(u, e, bins=3, wrong=w)
    assert [r["count"] for r in rows] == [3, 1, 2]
    assert [r["value"] for r in rows] == [0.0, 1.0, 2.5]
    assert [r["error_mean"] for r in rows] == pytest.approx([3.0, 4.0, 7.0])
    assert [r["error_median"] for r in rows] == pytest.approx([2.0, 4.0, 7.0])
    assert [r["wrong_rate"] for r in rows] == pytest.approx([1 / 3, 0.0, 1.0])
    even = reliability(np.arange(8.0), np.arange(8.0), bins=4)
    assert [r["count"] for r in even] == [2, 2, 2, 2] and [r["value"] for r in even] == [0.5, 2.5, 4.5, 6.5]
    assert even[0]["wrong_rate"] is None
    assert len(reliability(np.zeros(10), np.arange(10.0))) == 1  # all tied: one bin
    assert len(reliability(np.arange(3.0), np.arange(3.0), bins=10)) == 3  # fewer joints than bins
    assert reliability(np.zeros(0), np.zeros(0)) == []


# ------------------------------------------------------------------------------------------------ joint errors
def _person(head_box: tuple[float, ...] | None, occluded: list[int] | None = None, present=(0, 1, 2, 3, 5, 6),
            ) -> Person:
    kps = np.zeros((J, 2))
    kps[:, 0], kps[:, 1] = 100.0 + np.arange(J), 200.0
    mask = np.zeros(J, dtype=bool)
    mask[list(present)] = True
    occ = None
    if occluded is not None:
        occ = np.zeros(J, dtype=bool)
        occ[occluded] = True
    return Person(keypoints=np.where(mask[:, None], kps, 0.0), visibility=mask.astype(float), present=mask,
                  head_box=None if head_box is None else np.array(head_box, dtype=float), occluded=occ)


def _pred(gt: Person, offsets: dict[int, tuple[float, float]], uncertainty: float = 1.0) -> PersonPose:
    kps = gt.keypoints.copy()
    for j, (dx, dy) in offsets.items():
        kps[j] += (dx, dy)
    unc = np.full(J, uncertainty)
    unc[1] = 7.0
    return PersonPose(keypoints=kps, scores=np.linspace(0.1, 0.9, J), uncertainty=unc, box=np.zeros(4))


def test_joint_errors_on_hand_built_persons():
    a = _person((0.0, 0.0, 30.0, 40.0), occluded=[2])  # diagonal 50 -> head size 30 -> threshold 15 px
    no_head = _person(None)
    b = _person((10.0, 10.0, 6.0, 8.0))  # diagonal 10 -> head size 6 -> threshold 3 px; no occluded flags
    videos = [Video("v0", [Frame("a.jpg", 0, persons=[a, no_head], is_labeled=True)]),
              Video("v1", [Frame("b.jpg", 0, persons=[b], is_labeled=True)])]
    items = [ClipItem(0, 0, 0, (0, 0, 1, 1)), ClipItem(0, 0, 1, (0, 0, 1, 1)), ClipItem(0, 0, -1, (0, 0, 1, 1)),
             ClipItem(1, 0, 0, (0, 0, 1, 1))]
    # a: joint 0 off by 5 (right), 1 by exactly 15 (right: PCKh is inclusive), 2 by 20 (wrong), 3 is an ear
    # (skipped though present), 5 by 15.5 (wrong), 6 exact (right)
    preds = [_pred(a, {0: (3, 4), 1: (9, 12), 2: (12, 16), 3: (500, 0), 5: (0, 15.5)}),
             _pred(no_head, {0: (500, 0)}), _pred(a, {0: (500, 0)}), _pred(b, {5: (3, 0), 6: (3, 0.1)}, 2.0)]
    e = joint_errors(videos, items, preds)
    assert len(e) == 10  # 5 joints of a, 5 of b; the ear, the person without head box and the detection skipped
    np.testing.assert_array_equal(e.joint, [0, 1, 2, 5, 6, 0, 1, 2, 5, 6])
    np.testing.assert_allclose(e.error[:5], [5.0, 15.0, 20.0, 15.5, 0.0])
    np.testing.assert_allclose(e.threshold, [15.0] * 5 + [3.0] * 5)
    np.testing.assert_array_equal(e.wrong, [False, False, True, True, False, False, False, False, False, True])
    np.testing.assert_array_equal(e.occluded, [False, False, True, False, False] + [False] * 5)
    np.testing.assert_allclose(e.uncertainty, [1.0, 7.0, 1.0, 1.0, 1.0, 2.0, 7.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(e.score[:2], [0.1, 0.15])
    with pytest.raises(DiffPoseError, match="one per item"):
        joint_errors(videos, items, preds[:2])


def test_joint_errors_leaves_out_joints_in_ignore_regions_and_empty_input():
    a = _person((0.0, 0.0, 30.0, 40.0))
    region = np.array([[99.0, 190.0], [101.5, 190.0], [101.5, 210.0], [99.0, 210.0]])  # holds joints 0 and 1
    videos = [Video("v", [Frame("a.jpg", 0, persons=[a], is_labeled=True, ignore_regions=[region])])]
    e = joint_errors(videos, [ClipItem(0, 0, 0, (0, 0, 1, 1))], [_pred(a, {})])
    np.testing.assert_array_equal(e.joint, [2, 5, 6])
    empty = joint_errors(videos, [], [])
    assert len(empty) == 0 and empty.wrong.dtype == bool


# ----------------------------------------------------------------------------------------------------- report
def _errors(n: int = 200, seed: int = 0) -> JointErrors:
    rng = np.random.default_rng(seed)
    unc = rng.gamma(2.0, 2.0, n)
    err = unc * rng.gamma(2.0, 0.5, n)
    return JointErrors(error=err, threshold=np.full(n, 5.0), wrong=err > 5.0, uncertainty=unc,
                       score=1 / (1 + err + rng.random(n)), joint=rng.integers(0, J, n),
                       occluded=rng.random(n) < 0.3)


def test_report_is_json_safe_and_a_constant_uncertainty_is_chance():
    errors = _errors()
    report = uncertainty_report(errors)
    assert report["joints"] == 200 and 0 < report["wrong_rate"] < 1
    assert report["auroc_uncertainty"] > 0.6 and report["spearman_uncertainty_error"] > 0.3
    assert 0 <= report["auroc_uncertainty_occluded"] <= 1 and report["occluded_joints"] == int(errors.occluded.sum())
    assert len(report["reliability"]) == 10 and sum(r["count"] for r in report["reliability"]) == 200
    assert len(report["reliability_score"]) == 10
    errors.uncertainty[:] = 0.0  # a model that does not sample
    errors.occluded[:] = False
    flat = uncertainty_report(errors)
    json.dumps(flat, allow_nan=False)
    assert flat["auroc_uncertainty"] == 0.5 and flat["spearman_uncertainty_error"] is None
    assert flat["auroc_uncertainty_occluded"] is None and flat["occluded_joints"] == 0
    assert len(flat["reliability"]) == 1
    assert report_summary(flat).startswith(f"wrong joints (error > half head size): {100 * flat['wrong_rate']:.1f}% "
                                           "of 200; AUROC uncertainty 0.50, 1 - score ")
    empty = uncertainty_report(joint_errors([], [], []))
    json.dumps(empty, allow_nan=False)
    assert empty["joints"] == 0 and empty["wrong_rate"] is None and empty["reliability"] == []


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_reliability(uncertainty_report(_errors()), tmp_path / "sub" / "reliability.png", "test")
    assert path == tmp_path / "sub" / "reliability.png"
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temporary file left
    assert plot_reliability(_errors(), tmp_path / "from_errors.png") is not None


def test_plot_without_matplotlib_returns_none(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # "import matplotlib.figure" raises ImportError
    assert plot_reliability(uncertainty_report(_errors()), tmp_path / "r.png") is None
    assert not (tmp_path / "r.png").exists()


# ------------------------------------------------------------------------------------------- scripts/figures.py
def _figures_script():
    import importlib.util

    from tests.helpers import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("figures_script", PROJECT_ROOT / "scripts" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_script_draws_curves_and_reliability_and_errors_in_one_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figures = _figures_script()
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": s, "val": {"total": 10.0 + s / 10, "occluded": None if s == 0 else 5.0 + s / 20}}
             for s in (0, 100, 200)]
    (run / "curve.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "ap.json").write_text(json.dumps({"uncertainty": uncertainty_report(_errors())}))
    out = tmp_path / "img"
    assert figures.main(["curves", str(run), "--labels", "A", "--out", str(out), "--name", "c.png"]) == 0
    assert figures.main(["reliability", str(tmp_path / "ap.json"), "--out", str(out)]) == 0
    for name in ("c.png", "reliability.png"):
        assert cv2.imread(str(out / name)) is not None
    capsys.readouterr()
    assert figures.main(["curves", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no curve.jsonl" in err
