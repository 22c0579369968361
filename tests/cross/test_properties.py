"""Property-based tests (hypothesis) of the readers, the codec and the evaluator, and the fuzzing run.

Every test uses ``derandomize=True`` and no example database, so each run checks the same examples.

* Fuzzing: damaged copies (:mod:`json_mutations`) of valid files -- generated ones always, the real sample
  files of ``../shared/data`` when present -- go through every JSON reader and through ``evaluate_dirs``. The
  only exception allowed out is :class:`DiffPoseError`, with a one-line message that starts with the damaged
  file's path. ``FUZZ_EXAMPLES`` per (document, reader) pair in the default suite, ``FUZZ_EXAMPLES_SLOW`` in
  ``pytest -m slow`` (the acceptance run: several thousand examples in all).
* Readers: read -> write -> read loses nothing, for random videos and detections.
* Codec: encode -> decode within 0.05 crop pixels for any keypoint inside the heatmap, any size and sigma.
* Evaluator: on random valid splits (``random_video``: misses, duplicates, tied scores, ignore regions,
  unlabelled frames) AP, precision and recall stay in [0, 100], NaN only for a joint with predictions but no
  GT (poseval's division by zero), and a split scores the same from files as in memory. On *separated*
  splits (below) AP does not depend on the order of persons in a frame.

Why separated splits: poseval breaks ties by position -- a prediction whose PCKh is equal for two GT persons
keeps the first, a GT person takes the first of equally good predictions, and records with equal joint
scores are ranked by position -- so permuting persons *can* change AP when such ties exist (see
test_evaluation's first-index cases). The invariance holds, and is tested, when GT persons stand far apart
(a prediction can match at most one of them), each GT person has at most one prediction near it, and joint
scores are all distinct; person scores never matter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffpose.codec import HeatmapCodec
from diffpose.data.coco import coco_results_to_list, coco_to_dict, read_coco, read_coco_results
from diffpose.data.detections import detections_to_list, read_detections
from diffpose.data.formats import read_annotations
from diffpose.data.posetrack17 import posetrack17_to_dict, read_posetrack17
from diffpose.data.posetrack18 import posetrack18_to_dict, read_posetrack18, read_posetrack18_videos, write_posetrack18
from diffpose.data.records import Detection, Frame, Person, Video
from diffpose.data.transforms import box_from_keypoints
from diffpose.errors import DiffPoseError
from diffpose.evaluation import evaluate_dirs, evaluate_videos
from diffpose.evaluation.random_split import random_video
from diffpose.keypoints import POSETRACK18, POSETRACK18_UNLABELED
from tests.cross.json_mutations import damaged_json
from tests.helpers import SHARED_DATA

FUZZ_EXAMPLES = 40
FUZZ_EXAMPLES_SLOW = 250
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
J = POSETRACK18.num_joints
LABELLED = np.array([k not in POSETRACK18_UNLABELED for k in range(J)])


def props(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=QUIET)


# --------------------------------------------------------------------------------------------------
# The documents to damage: (kind, JSON text)
# --------------------------------------------------------------------------------------------------
def _generated_documents() -> dict[str, tuple[str, str]]:
    gt, pred = random_video(np.random.default_rng(5), 1, frames=4, people=2)
    dets = [Detection(f.image_id, box_from_keypoints(p.keypoints, p.present), 0.5)
            for f in pred.frames for p in f.persons if p.present.any()]
    return {
        "gen_pt18_gt": ("posetrack18", json.dumps(posetrack18_to_dict(gt))),
        "gen_pt18_pred": ("posetrack18", json.dumps(posetrack18_to_dict(pred))),
        "gen_pt17": ("posetrack17", json.dumps(posetrack17_to_dict(gt))),
        "gen_coco": ("coco", json.dumps(coco_to_dict(gt, fill_missing=True))),
        "gen_coco_results": ("coco_results", json.dumps(coco_results_to_list(
            {f.image_id: f.persons for f in pred.frames if f.persons}))),
        "gen_detections": ("detections", json.dumps(detections_to_list(dets))),
    }


def _real_documents() -> dict[str, tuple[str, str]]:
    if not SHARED_DATA.is_dir():
        return {}
    pt18 = SHARED_DATA / "posetrack18" / "annotations" / "val" / "009473_mpii_test.json"
    merged = json.loads((SHARED_DATA / "posetrack18" / "annotations" / "test_posetrack18_val.json").read_text())
    merged["images"] = merged["images"][::6]  # a few frames of each video keep the examples small
    kept = {img["id"] for img in merged["images"]}
    merged["annotations"] = [a for a in merged["annotations"] if a["image_id"] in kept]
    coco = json.loads((SHARED_DATA / "coco" / "test_coco.json").read_text())
    for ann in coco["annotations"]:
        ann["segmentation"] = []  # long polygons the readers keep verbatim: mutations there test nothing
    dets = json.loads((SHARED_DATA / "coco" / "test_coco_det_AP_H_56.json").read_text())[:12]
    pt_dets = json.loads((SHARED_DATA / "posetrack18" / "annotations" / "test_posetrack18_human_detections.json")
                         .read_text())[:12]
    return {
        "real_pt18": ("posetrack18", pt18.read_text()),
        "real_pt18_merged": ("posetrack18_merged", json.dumps(merged)),
        "real_pt17": ("posetrack17", json.dumps(posetrack17_to_dict(read_posetrack18(pt18)))),
        "real_jhmdb": ("posetrack18", (SHARED_DATA / "jhmdb" / "test_jhmdb_sub1.json").read_text()),
        "real_coco": ("coco", json.dumps(coco)),
        "real_coco_detections": ("detections", json.dumps(dets)),
        "real_pt18_detections": ("detections", json.dumps(pt_dets)),
    }


DOCUMENTS = {**_generated_documents(), **_real_documents()}


def _evaluate_as(role: str):
    """Evaluate the damaged file as the prediction (or GT) against the undamaged document."""

    def run(path: Path, original: str) -> None:
        gt_dir, pred_dir = path.parent.parent / "gt", path.parent.parent / "pred"
        for d in (gt_dir, pred_dir):
            d.mkdir(exist_ok=True)
        other = (gt_dir if role == "prediction" else pred_dir) / path.name
        other.write_text(original)
        mine = (pred_dir if role == "prediction" else gt_dir) / path.name
        mine.write_bytes(path.read_bytes())
        try:
            evaluate_dirs(gt_dir, pred_dir)
            evaluate_dirs(gt_dir, pred_dir, protocol="posetrack21", occluded=True)
        finally:
            mine.unlink()
            other.unlink()

    return run


READERS = {
    "read_posetrack18_videos": lambda p, _: read_posetrack18_videos(p),
    "read_posetrack18": lambda p, _: read_posetrack18(p),
    "read_posetrack17": lambda p, _: read_posetrack17(p),
    "read_coco": lambda p, _: read_coco(p),
    "read_coco_results": lambda p, _: read_coco_results(p),
    "read_detections": lambda p, _: read_detections(p),
    "read_annotations": lambda p, _: read_annotations(p),
    "evaluate_as_prediction": _evaluate_as("prediction"),
    "evaluate_as_gt": _evaluate_as("gt"),
}
READERS_OF = {
    "posetrack18": ("read_posetrack18_videos", "read_posetrack18", "read_annotations", "evaluate_as_prediction",
                    "evaluate_as_gt"),
    "posetrack18_merged": ("read_posetrack18_videos", "read_annotations"),
    "posetrack17": ("read_posetrack17", "read_annotations", "evaluate_as_prediction"),
    "coco": ("read_coco", "read_annotations"),
    "coco_results": ("read_coco_results",),
    "detections": ("read_detections",),
}
PAIRS = [(doc, reader) for doc, (kind, _) in DOCUMENTS.items() for reader in READERS_OF[kind]]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "files"
    folder.mkdir()
    return folder


def fuzz(doc: str, reader: str, folder: Path, examples: int) -> dict[str, int]:
    """Run ``examples`` damaged copies of ``doc`` through ``reader``; count what came back."""
    kind, original = DOCUMENTS[doc]
    path = folder / "000001_mpii_test.json"  # a GT-like name (the evaluator pairs files by name)
    counts = {"examples": 0, "accepted": 0, "refused": 0}

    @props(examples)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        path.write_bytes(data.draw(damaged_json(original), label="file"))
        counts["examples"] += 1
        try:
            READERS[reader](path, original)
        except DiffPoseError as e:
            message = str(e)
            assert "\n" not in message, message
            root = path.parent.parent
            names = (str(path), str(root / "gt" / path.name), str(root / "pred" / path.name))
            assert message.startswith(names), f"the message does not name the file: {message}"
            counts["refused"] += 1
        else:
            counts["accepted"] += 1

    check()
    return counts


@pytest.mark.parametrize("doc, reader", PAIRS)
def test_damaged_files_get_a_one_line_error_naming_the_file(doc, reader, fuzz_dir):
    counts = fuzz(doc, reader, fuzz_dir, FUZZ_EXAMPLES)
    assert counts["refused"] > 0  # the damage reaches the checks (not everything is kept as 'extra')


@pytest.mark.slow
def test_fuzzing_run_of_every_json_reader(fuzz_dir, capsys):
    """The acceptance run: FUZZ_EXAMPLES_SLOW damaged files per (document, reader) pair."""
    start = time.perf_counter()
    totals = {"examples": 0, "accepted": 0, "refused": 0}
    for doc, reader in PAIRS:
        for key, value in fuzz(doc, reader, fuzz_dir, FUZZ_EXAMPLES_SLOW).items():
            totals[key] += value
    with capsys.disabled():
        print(f"\nfuzzing: {totals['examples']} examples over {len(PAIRS)} (document, reader) pairs in "
              f"{time.perf_counter() - start:.0f} s; {totals['refused']} refused with a DiffPoseError, "
              f"{totals['accepted']} accepted, no other exception")
    assert totals["examples"] >= 0.9 * FUZZ_EXAMPLES_SLOW * len(PAIRS)


# --------------------------------------------------------------------------------------------------
# Readers: read -> write -> read loses nothing
# --------------------------------------------------------------------------------------------------
@props(25)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 4), people=st.floats(0, 3))
def test_posetrack_and_coco_round_trips_lose_nothing(seed, frames, people, tmp_path_factory):
    folder = tmp_path_factory.mktemp("round_trip")
    gt, pred = random_video(np.random.default_rng(seed), 1, frames=frames, people=people)
    for video in (gt, pred):
        first = read_posetrack18(write_posetrack18(video, folder / f"{video.name}.json"))
        again = read_posetrack18(write_posetrack18(first, folder / f"{video.name}.json"))
        assert again == first
    first17 = read_posetrack17(_write_json(posetrack17_to_dict(gt), folder / "pt17.json"))
    assert read_posetrack17(_write_json(posetrack17_to_dict(first17), folder / "pt17.json")) == first17
    first_coco = read_coco(_write_json(coco_to_dict(gt, fill_missing=True), folder / "coco.json"))
    assert read_coco(_write_json(coco_to_dict(first_coco), folder / "coco.json")) == first_coco


def _write_json(obj: object, path: Path) -> Path:
    path.write_text(json.dumps(obj, allow_nan=False))
    return path


FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@props(50)
@given(rows=st.lists(st.tuples(st.one_of(st.integers(0, 10**12), st.text(max_size=8)), FINITE, FINITE,
                               st.floats(0, 1e4), st.floats(0, 1e4), st.floats(0, 1)), max_size=6))
def test_detection_round_trip_is_exact(rows, tmp_path_factory):
    dets = [Detection(image_id, np.array([x, y, w, h]), score) for image_id, x, y, w, h, score in rows]
    path = _write_json(detections_to_list(dets), tmp_path_factory.mktemp("dets") / "d.json")
    assert read_detections(path) == dets


# --------------------------------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------------------------------
@props(150)
@given(heatmap=st.tuples(st.integers(3, 48), st.integers(3, 48)), stride=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0]),
       sigma=st.floats(0.75, 8.0), where=st.lists(st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)), min_size=1,
                                                  max_size=8))
def test_codec_round_trip_within_005px_inside_the_heatmap(heatmap, stride, sigma, where):
    """Sigma from 0.75 heatmap pixels (the presets use 1 to 2): at sigma 0.5 a joint on the heatmap's edge decodes
    up to ~0.8 px off, because the 3x3 stencil moved inward reaches values below the codec's log floor (1e-10)."""
    hm_h, hm_w = heatmap
    codec = HeatmapCodec((round(hm_w * stride), round(hm_h * stride)), (hm_h, hm_w), sigma)
    heat_xy = np.array([[u * hm_w - 0.5, v * hm_h - 0.5] for u, v in where])  # anywhere in [-0.5, W - 0.5)
    keypoints = codec.to_input(heat_xy)[None].astype(np.float32)  # (1, J, 2) crop pixels
    heatmaps, weights = codec.encode(keypoints, np.ones((1, len(where))))
    assert weights.min() == 1
    decoded, scores = codec.decode(heatmaps)
    assert np.abs(decoded - keypoints).max() < 0.05
    assert np.all((scores > 0) & (scores <= 1))


# --------------------------------------------------------------------------------------------------
# Evaluator
# --------------------------------------------------------------------------------------------------
def _in_range_or_poseval_nan(metrics, protocol: str) -> None:
    for values in (metrics.ap, metrics.precision, metrics.recall):
        finite = ~np.isnan(values)
        assert np.all((values[finite] >= 0) & (values[finite] <= 100 + 1e-9))
    nan = np.isnan(metrics.ap)
    if protocol == "posetrack21":
        assert not nan.any()  # the kit divides recall by max(#GT, 1)
    assert np.all(metrics.num_gt[nan] == 0)  # poseval: a joint predicted in a split without GT of it


@props(60)
@given(seed=st.integers(0, 2**32 - 1), videos=st.integers(1, 3), frames=st.integers(1, 6),
       people=st.floats(0, 4), unlabeled=st.floats(0, 0.5))
def test_evaluator_never_crashes_on_valid_splits_and_ap_stays_in_range(seed, videos, frames, people, unlabeled):
    rng = np.random.default_rng(seed)
    pairs = [random_video(rng, v + 1, frames, people, unlabeled_rate=unlabeled) for v in range(videos)]
    for protocol in ("poseval", "posetrack21"):
        result = evaluate_videos(pairs, protocol=protocol)
        _in_range_or_poseval_nan(result.joints, protocol)
        total = result.groups["Total"]
        assert np.isnan(total) or 0 <= total <= 100


@props(15)
@given(seed=st.integers(0, 2**32 - 1), people=st.floats(0.5, 4))
def test_a_split_scores_the_same_from_files_as_in_memory(seed, people, tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(seed)
    pairs = [random_video(rng, v + 1, 4, people) for v in range(2)]
    for gt, pred in pairs:
        write_posetrack18(gt, root / "gt" / f"{gt.name}.json")
        write_posetrack18(pred, root / "pred" / f"{pred.name}.json")
    from_files = evaluate_dirs(root / "gt", root / "pred")
    in_memory = evaluate_videos(pairs)
    for a, b in ((from_files.joints.ap, in_memory.joints.ap), (from_files.joints.recall, in_memory.joints.recall)):
        assert np.array_equal(a, b, equal_nan=True)


SPACING = 600.0  # px between GT persons: far beyond any PCKh threshold here (at most 0.3 x 85 px)


def _person(centre: np.ndarray, offsets: np.ndarray, present: np.ndarray, track_id: int, head: bool = True,
            scores: np.ndarray | None = None) -> Person:
    kps = np.where(present[:, None], centre + offsets, 0.0)  # (J, 2)
    return Person(keypoints=kps, visibility=present.astype(float), present=present, scores=scores,
                  head_box=np.array([centre[0] - 15, centre[1] - 90, 30, 40]) if head else None, track_id=track_id)


@st.composite
def separated_split(draw: st.DrawFn) -> list[tuple[Video, Video]]:
    """GT persons ``SPACING`` apart, at most one prediction near each, false positives far from all, and
    distinct joint scores: no tie anywhere in poseval's matching or ranking."""
    joint_mask = st.lists(st.booleans(), min_size=J, max_size=J).map(lambda m: np.array(m) & LABELLED)
    offsets = st.lists(st.floats(-50, 50), min_size=2 * J, max_size=2 * J).map(lambda v: np.reshape(v, (J, 2)))
    pairs, predicted = [], []
    for v in range(draw(st.integers(1, 3))):
        name = f"{v + 1:06d}_mpii_test"
        gt_frames, pred_frames = [], []
        for f in range(draw(st.integers(1, 3))):
            gts, preds = [], []
            for g in range(draw(st.integers(0, 3))):
                centre = np.array([300.0 + SPACING * g, 300.0])
                gt = _person(centre, draw(offsets), draw(joint_mask), g)
                gts.append(gt)
                if draw(st.booleans()):  # found: each joint moved by 0 .. 2 thresholds (threshold 15 px here)
                    shift = draw(st.lists(st.sampled_from([0.0, 5.0, 14.0, 16.0, 30.0]), min_size=J, max_size=J))
                    angle = draw(st.floats(0, 2 * np.pi))
                    moved = gt.keypoints - centre + np.array(shift)[:, None] * [np.cos(angle), np.sin(angle)]
                    preds.append(_person(centre, moved, draw(joint_mask), len(preds), head=False))
            for k in range(draw(st.integers(0, 2))):  # false positives, far below every GT person
                preds.append(_person(np.array([300.0 + SPACING * k, 1500.0]), draw(offsets), draw(joint_mask),
                                     len(preds), head=False))
            predicted.extend(preds)
            image_id = 10_000_000_000 + 10_000 * v + f
            file_name = f"images/val/{name}/{f:06d}.jpg"
            gt_frames.append(Frame(file_name=file_name, frame_index=f, image_id=image_id, is_labeled=True,
                                   persons=gts))
            pred_frames.append(Frame(file_name=file_name, frame_index=f, image_id=image_id, persons=preds))
        pairs.append((Video(name=name, frames=gt_frames), Video(name=name, frames=pred_frames)))
    count = sum(int(p.present.sum()) for p in predicted)
    ranks = iter(draw(st.permutations(range(count))))
    for p in predicted:  # distinct joint scores in (0, 1]
        p.scores = np.zeros(J)
        p.scores[p.present] = [(next(ranks) + 1) / count for _ in range(int(p.present.sum()))]
        p.visibility = p.scores.copy()
    return pairs


def _same(a, b) -> bool:
    return all(np.array_equal(x, y, equal_nan=True) for x, y in ((a.ap, b.ap), (a.precision, b.precision),
                                                                   (a.recall, b.recall), (a.num_gt, b.num_gt)))


@props(60)
@given(pairs=separated_split(), data=st.data())
def test_permuting_persons_within_frames_does_not_change_ap(pairs, data):
    permuted = []
    for gt, pred in pairs:
        new = []
        for video in (gt, pred):
            frames = []
            for frame in video.frames:
                order = data.draw(st.permutations(range(len(frame.persons))))
                frames.append(Frame(file_name=frame.file_name, frame_index=frame.frame_index, image_id=frame.image_id,
                                    is_labeled=frame.is_labeled, persons=[frame.persons[i] for i in order]))
            new.append(Video(name=video.name, frames=frames))
        permuted.append(tuple(new))
    for protocol in ("poseval", "posetrack21"):
        assert _same(evaluate_videos(pairs, protocol).joints, evaluate_videos(permuted, protocol).joints)


@props(40)
@given(pairs=separated_split())
def test_ground_truth_as_prediction_scores_100_on_every_joint_with_ground_truth(pairs):
    as_predictions = [(gt, gt) for gt, _ in pairs]
    result = evaluate_videos(as_predictions).joints
    has_gt = result.num_gt > 0
    assert np.all(result.ap[has_gt] == 100) and np.all(result.ap[~has_gt] == 0)


@props(40)
@given(pairs=separated_split(), lowest=st.booleans())
def test_a_false_positive_ranked_last_changes_no_ap_and_ranked_first_never_raises_it(pairs, lowest):
    before = evaluate_videos(pairs).joints
    evaluated = [pf for gt, pred in pairs for gf, pf in zip(gt.frames, pred.frames) if gf.persons]
    if not evaluated:
        return  # no frame is evaluated
    pred_frame = evaluated[0]
    score = -1.0 if lowest else 2.0  # below / above every existing joint score
    far = _person(np.array([300.0, 3000.0]), np.zeros((J, 2)), LABELLED.copy(), 99, head=False,
                  scores=np.where(LABELLED, score, 0.0))
    pred_frame.persons.append(far)
    after = evaluate_videos(pairs).joints
    has_gt = before.num_gt > 0
    if lowest:
        assert np.array_equal(after.ap[has_gt], before.ap[has_gt])
    else:
        assert np.all(after.ap[has_gt] <= before.ap[has_gt] + 1e-9)
