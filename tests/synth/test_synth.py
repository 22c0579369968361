"""SynthTrack: determinism, the PoseTrack18 layout, labeling rules, boxes, tracks and occlusion flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffpose.data.posetrack18 import read_posetrack18
from diffpose.errors import DiffPoseError
from diffpose.keypoints import POSETRACK18
from diffpose.synth import generate, get_preset, labeled_frames, make_preview, sequence_name, sequence_numbers, simulate
from diffpose.synth.annotate import LABELABLE, annotate_person, disc, joint_orders, labeled_joints, occlusion_flags
from diffpose.synth.appearance import sample_appearance
from diffpose.synth.figure import DOF, NUM_DOFS, J, pose_points, project, sample_body
from diffpose.synth.generate import image_id
from diffpose.synth.motion import action_track
from diffpose.synth.presets import val_videos_for
from diffpose.synth.raster import Canvas, polygon
from diffpose.synth.render import draw_person

# A small default-preset dataset: 1 train + 1 val video of 12 frames; train labels a run of 8 frames.
SMALL = dataclasses.replace(get_preset("default").with_overrides(videos=1, frames=12), train_labeled=8)
W, H = SMALL.image_size
MARGIN = SMALL.label_margin_px


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "st"
    generate(root, SMALL, seed=3, workers=1, progress=False)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _annotations(root: Path) -> list[Path]:
    return sorted((root / "annotations").glob("*/*.json"))


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def test_same_seed_gives_same_bytes_for_any_worker_count(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", SMALL, seed=3, workers=2, progress=False)
    first, second = _files(dataset), _files(tmp_path / "again")
    assert len(first) == 2 * 12 + 2 + 1  # 24 JPEGs, 2 JSON files, the manifest
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_different_seed_gives_different_data(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path / "other", SMALL, seed=4, workers=1, progress=False)
    first, other = _files(dataset), _files(tmp_path / "other")
    assert first.keys() == other.keys()  # same names and layout
    jpegs = [k for k in first if k.endswith(".jpg")]
    assert all(first[k] != other[k] for k in jpegs)
    assert first["annotations/val/000101_mpii_test.json"] != other["annotations/val/000101_mpii_test.json"]


# --------------------------------------------------------------------------------------------------
# Layout, names, ids and the labeling pattern
# --------------------------------------------------------------------------------------------------
def test_numbering_ids_and_labeling_pattern() -> None:
    assert sequence_numbers("train", 48, 12) == list(range(1, 49))
    assert sequence_numbers("val", 48, 12) == list(range(101, 113))
    assert sequence_numbers("val", 100, 2) == [201, 202]  # never collides with train numbers
    assert image_id(101, 7) == 10_001_010_007
    assert sequence_name("train", 1) == "000001_mpii_train" and sequence_name("val", 101) == "000101_mpii_test"
    preset = get_preset("default")
    assert val_videos_for(preset, 48) == 12 and val_videos_for(preset, 1) == 1 and val_videos_for(preset, 2) == 1
    train = labeled_frames("train", 36, preset)
    assert np.flatnonzero(train).tolist() == list(range(6, 30))  # a centred run of 24
    assert np.flatnonzero(labeled_frames("val", 36, preset)).tolist() == list(range(0, 36, 4))
    assert labeled_frames("train", 10, preset).all()  # a run longer than the video labels all of it


def test_posetrack18_files(dataset: Path) -> None:
    manifest = json.loads((dataset / "synthtrack.json").read_text())
    assert manifest["preset"] == "default" and manifest["seed"] == 3
    assert manifest["splits"]["train"]["sequences"] == ["000001_mpii_train"]
    assert manifest["splits"]["val"]["sequences"] == ["000101_mpii_test"]
    for path in _annotations(dataset):
        split = path.parent.name
        data = json.loads(path.read_text())
        assert data["categories"][0]["keypoints"] == list(POSETRACK18.joints)
        seq = int(path.stem[:6])
        labeled = labeled_frames(split, 12, SMALL)
        assert [img["is_labeled"] for img in data["images"]] == labeled.tolist()
        for f, img in enumerate(data["images"]):
            assert img["file_name"] == f"images/{split}/{path.stem}/{f:06d}.jpg"
            assert (dataset / img["file_name"]).is_file()
            assert img["id"] == img["frame_id"] == 10**10 + seq * 10**4 + f
            assert img["vid_id"] == f"{seq:06d}" and img["nframes"] == 12
            assert (img["width"], img["height"]) == (W, H)
            assert isinstance(img["ignore_regions_x"], list) and isinstance(img["ignore_regions_y"], list)
        labeled_ids = {img["id"] for img in data["images"] if img["is_labeled"]}
        per_image: dict[int, int] = {}
        for ann in data["annotations"]:
            assert ann["image_id"] in labeled_ids  # unlabeled frames have no annotations
            k = per_image.get(ann["image_id"], 0)
            per_image[ann["image_id"]] = k + 1
            assert ann["id"] == ann["image_id"] * 100 + k
            kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)  # (J, 3)
            assert set(kp[:, 2].tolist()) <= {0.0, 1.0}
            assert (kp[[3, 4]] == 0).all()  # ears are never labeled
            absent = kp[:, 2] == 0
            assert (kp[absent] == 0).all()  # an absent joint is exactly (0, 0, 0)
            assert ann["scores"] == [] and len(ann["keypoints_occluded"]) == 17
            assert set(ann["keypoints_occluded"]) <= {0, 1}
            assert not any(o and a for o, a in zip(ann["keypoints_occluded"], absent))
            assert len(ann["bbox"]) == 4 and len(ann["bbox_head"]) == 4
        assert per_image, f"{path} has no annotated person"


# --------------------------------------------------------------------------------------------------
# Labeling rules
# --------------------------------------------------------------------------------------------------
def test_label_margin_rule_by_hand() -> None:
    xy = np.full((17, 2), 100.0)
    xy[5] = (-12.4, 10.0)  # 12.4 px left of the first pixel's left edge + 0.5 -> within 12 px of the image
    xy[6] = (-12.6, 10.0)  # just beyond the margin
    xy[7] = (W - 0.5 + 11.9, 10.0)
    xy[8] = (W - 0.5 + 12.0, 10.0)  # the right end is exclusive
    xy[9] = (50.0, -12.5)
    present = labeled_joints(xy, (W, H), 12.0)
    assert present[[5, 7, 9]].all() and not present[[6, 8]].any()
    assert not present[[3, 4]].any()  # ears
    assert present.sum() == 13


def test_labeled_joints_lie_in_the_image_or_are_marked_outside() -> None:
    preset = get_preset("default")
    lo, hi = -0.5, np.array([W, H]) - 0.5
    absent_seen = margin_seen = 0
    for index in range(3):
        plan, frames = simulate(preset, 0, 0, index, 10)
        for fr in frames:
            annotated = {i for i, _ in fr.persons}
            for i, person in fr.persons:
                true = np.round(fr.joints[i], 2)  # written to 0.01 px
                near = (true >= lo - MARGIN).all(axis=1) & (true < hi + MARGIN).all(axis=1)
                inside = (true >= lo).all(axis=1) & (true < hi).all(axis=1)
                assert (person.present == (near & LABELABLE)).all()
                assert np.array_equal(person.keypoints[person.present], true[person.present])
                assert (inside & LABELABLE).any()  # partly inside
                assert not person.occluded[~inside].any()  # only pixels in the image can be hidden
                absent_seen += int((~person.present & LABELABLE).sum())
                margin_seen += int((person.present & ~inside).sum())
            for i, true in fr.joints.items():  # people left out are entirely outside (or tiny crowd people)
                if i not in annotated and not plan.people[i].crowd:
                    assert not ((true >= lo).all(axis=1) & (true < hi).all(axis=1) & LABELABLE).any()
    assert absent_seen > 0 and margin_seen > 0  # both rules were exercised


def test_head_boxes_contain_head_joints_and_boxes_follow_the_13_rule(dataset: Path) -> None:
    count = 0
    for path in _annotations(dataset):
        for frame in read_posetrack18(path).frames:
            for p in frame.persons:
                x, y, w, h = p.head_box
                for j in (0, 1, 2):  # nose, head_bottom, head_top
                    if p.present[j]:
                        px, py = p.keypoints[j]
                        assert x - 1e-6 <= px <= x + w + 1e-6 and y - 1e-6 <= py <= y + h + 1e-6
                        count += 1
                assert 0 < w < 0.5 * p.box[3] and 0 < h < 0.5 * p.box[3]
                # The person box is x1.3 the keypoint box, so every labeled joint is well inside it.
                kp = p.keypoints[p.present]
                bx, by, bw, bh = p.box
                assert (kp[:, 0] >= bx + 0.1 * bw).all() and (kp[:, 0] <= bx + 0.9 * bw).all()
                assert (kp[:, 1] >= by + 0.1 * bh).all() and (kp[:, 1] <= by + 0.9 * bh).all()
    assert count > 100


def test_track_ids_are_consistent_over_time(dataset: Path) -> None:
    video = read_posetrack18(dataset / "annotations/train/000001_mpii_train.json")
    labeled = [f for f in video.frames if f.is_labeled]
    assert len(labeled) == 8
    links = 0
    for a, b in zip(labeled, labeled[1:]):
        ids = [p.track_id for p in b.persons]
        assert len(set(ids)) == len(ids)  # unique within a frame
        for p in a.persons:
            # The nearest person in the next frame (mean distance over shared joints) has the same track id.
            dists = []
            for q in b.persons:
                both = p.present & q.present
                dists.append(np.linalg.norm(p.keypoints[both] - q.keypoints[both], axis=1).mean() if both.any()
                             else np.inf)
            k = int(np.argmin(dists))
            if np.isfinite(dists[k]):
                assert b.persons[k].track_id == p.track_id
                assert dists[k] < 0.25 * p.box[3]
                links += 1
    assert links >= 10
    first_seen = []
    for f in labeled:
        first_seen += [p.track_id for p in f.persons if p.track_id not in first_seen]
    assert first_seen == list(range(len(first_seen)))  # ids count people in order of appearance


# --------------------------------------------------------------------------------------------------
# Occlusion flags
# --------------------------------------------------------------------------------------------------
def _flags_by_hand(order: np.ndarray, xy: np.ndarray, own: np.ndarray, check: np.ndarray) -> np.ndarray:
    """The occlusion rule written out pixel by pixel (radius 2): more than half of the disc drawn in front."""
    out = np.zeros(len(xy), dtype=bool)
    for j in np.flatnonzero(check):
        cx, cy = int(np.floor(xy[j, 0] + 0.5)), int(np.floor(xy[j, 1] + 0.5))
        n = covered = 0
        for yy in range(cy - 2, cy + 3):
            for xx in range(cx - 2, cx + 3):
                if (xx - cx) ** 2 + (yy - cy) ** 2 <= 4 and 0 <= xx < order.shape[1] and 0 <= yy < order.shape[0]:
                    n += 1
                    covered += int(order[yy, xx] > own[j])
        out[j] = n > 0 and 2 * covered >= n
    return out


def test_occlusion_flags_agree_with_the_rendered_masks() -> None:
    preset = get_preset("hard")
    by_occluder = flagged = total = 0
    for index in range(2):
        _, frames = simulate(preset, 0, 1, index, 8)
        for fr in frames:
            order, owner = fr.canvas.order, fr.canvas.owner
            for i, person in fr.persons:
                xy = person.keypoints
                inside = person.present & (xy >= -0.5).all(axis=1) & (xy < np.array([W, H]) - 0.5).all(axis=1)
                expected = _flags_by_hand(order, xy, fr.own_orders[i], inside)
                assert (person.occluded == expected).all()
                for j in np.flatnonzero(inside):
                    px = np.floor(xy[j] + 0.5).astype(int) + disc(2)
                    px = px[(px >= 0).all(axis=1) & (px < [W, H]).all(axis=1)]
                    if 2 * (owner[px[:, 1], px[:, 0]] < 0).sum() >= len(px):  # under an occluder or torn rows
                        assert person.occluded[j]
                        by_occluder += 1
                flagged += int(person.occluded.sum())
                total += int(person.present.sum())
    assert by_occluder > 0
    assert 0.05 < flagged / total < 0.6


def test_occluder_over_one_knee_flags_exactly_the_joints_it_covers() -> None:
    rng = np.random.default_rng(0)
    body, look = sample_body(rng), sample_appearance(rng)
    angles = np.zeros((1, NUM_DOFS))  # standing straight, facing the camera
    xy, z = project(pose_points(body, angles), np.zeros(1), np.array([200.0]), np.array([[192.0, 270.0]]))
    canvas = Canvas(np.full((H, W, 3), 0.5, dtype=np.float32))
    light = np.array([0.0, -0.6, 0.8])
    parts, head = draw_person(canvas, xy[0], z[0], body, look, 0.0, 0.0, 200.0, light, 0.4, owner=1)
    knee = xy[0, J["left_knee"]]
    square = knee + np.array([[-6.0, -6.0], [6.0, -6.0], [6.0, 6.0], [-6.0, 6.0]])
    canvas.paint(polygon(square, canvas.size), np.zeros(3, dtype=np.float32), owner=-1)
    person = annotate_person(xy[0, :17], joint_orders(parts), head, canvas.order, MARGIN, 2)
    assert person is not None
    assert np.flatnonzero(person.occluded).tolist() == [J["left_knee"]]
    # Without the square nothing is hidden: a person facing the camera with arms down hides no joint.
    orders = canvas.order.copy()
    orders[canvas.owner == -1] = 0
    assert not occlusion_flags(orders, xy[0, :17], joint_orders(parts), person.present, 2).any()


# --------------------------------------------------------------------------------------------------
# Figure and motion
# --------------------------------------------------------------------------------------------------
def test_standing_figure_proportions_and_facing() -> None:
    body = sample_body(np.random.default_rng(1))
    pts = pose_points(body, np.zeros((1, NUM_DOFS)))[0]  # (P, 3) = (l, f, u)
    assert pts[J["left_ankle"], 2] == pytest.approx(body.ankle_height)
    top = body.ankle_height + body.shin + body.thigh + body.torso_len + body.neck_len + body.head_len
    assert pts[J["head_top"], 2] == pytest.approx(top)
    assert pts[J["left_shoulder"], 0] == pytest.approx(-pts[J["right_shoulder"], 0]) and pts[J["left_shoulder"], 0] > 0
    yaw = np.array([0.0, np.pi / 2])
    xy, z = project(np.repeat(pts[None], 2, axis=0), yaw, np.array([100.0, 100.0]), np.zeros((2, 2)))
    assert xy[0, J["left_shoulder"], 0] > xy[0, J["right_shoulder"], 0]  # facing us: their left on our right
    assert z[0, J["nose"]] > z[0, J["head_top"]]
    assert xy[1, J["nose"], 0] > xy[1, J["head_top"], 0]  # yaw +90 deg faces image-right
    assert z[1, J["right_shoulder"]] > 0 > z[1, J["left_shoulder"]]  # ... with the right side to the camera
    assert xy[0, J["head_top"], 1] == pytest.approx(-100.0 * top)


@pytest.mark.parametrize("action", ["walk", "run", "wave", "jump", "turn", "bend"])
def test_actions_do_what_they_say(action: str) -> None:
    angles, speed = action_track(action, np.random.default_rng(5), 60)
    assert angles.shape == (60, NUM_DOFS)
    moving = action in ("walk", "run")
    assert (speed > 0).all() if moving else (speed == 0).all()
    if action in ("walk", "run"):  # legs alternate
        assert np.corrcoef(angles[:, DOF["l_hip_flex"]], angles[:, DOF["r_hip_flex"]])[0, 1] < -0.9
    if action == "wave":
        assert max(angles[:, DOF["l_sho_abd"]].max(), angles[:, DOF["r_sho_abd"]].max()) > 1.8
    if action == "jump":
        assert angles[:, DOF["lift"]].max() > 0.08 and angles[:, DOF["lift"]].min() == 0
    if action == "turn":
        assert abs(angles[-1, DOF["yaw"]] - angles[0, DOF["yaw"]]) > np.pi / 2
    if action == "bend":
        assert angles[:, DOF["torso_pitch"]].max() > 0.8
    step = np.abs(np.diff(angles, axis=0)).max(axis=0)  # (D,) largest change between frames
    assert step.max() < 1.3  # smooth: no jumps between frames


# --------------------------------------------------------------------------------------------------
# Evaluation, preview, command line
# --------------------------------------------------------------------------------------------------
def test_ground_truth_as_predictions_scores_100(dataset: Path) -> None:
    evaluation = pytest.importorskip("diffpose.evaluation")
    for split in ("train", "val"):
        gt = dataset / "annotations" / split
        result = evaluation.evaluate_dirs(gt, gt, occluded=True)
        assert result.groups["Total"] == pytest.approx(100.0)
        assert all(v == pytest.approx(100.0) for v in result.per_joint_ap.values())
        assert result.to_json()["occluded"]["num_gt_joints"] > 0


def test_preview_draws_the_ground_truth(dataset: Path, tmp_path: Path) -> None:
    import cv2

    from diffpose.synth.preview import PALETTE, draw_ground_truth

    frame = next(f for f in read_posetrack18(dataset / "annotations/val/000101_mpii_test.json").frames if f.persons)
    raw = cv2.imread(str(dataset / frame.file_name))
    drawn = draw_ground_truth(raw, frame)
    marks = np.array(list(PALETTE) + [(0, 0, 0)])  # dots are filled with a track colour and ringed in black
    hits = total = 0
    for p in frame.persons:
        for j in np.flatnonzero(p.present & ~p.occluded):
            x, y = np.floor(p.keypoints[j] + 0.5).astype(int)
            if 0 <= x < W and 0 <= y < H:
                total += 1
                hits += int(np.abs(marks - drawn[y, x].astype(int)).max(axis=1).min() <= 8)
    assert total > 10 and hits >= 0.9 * total
    out = make_preview(dataset, tmp_path / "sheet.png", frames=2, scale=1.0)
    sheet = cv2.imread(str(out))
    assert sheet.shape == (4 + 2 * (H + 4), 4 + 2 * (W + 4), 3)  # 2 frames x (as generated, annotated), 4 px gaps
    top, bottom = sheet[4 + 20: 4 + H, 4: 4 + W], sheet[8 + H + 20: 8 + 2 * H, 4: 4 + W]  # below the caption
    val_images = sorted((dataset / "images/val/000101_mpii_test").glob("*.jpg"))
    same = [np.array_equal(top, cv2.imread(str(p))[20:]) for p in val_images]
    assert sum(same) == 1  # the top tile is one val frame as generated ...
    assert not np.array_equal(bottom, top)  # ... and the bottom one has its annotation drawn


def _cli(argv: list[str]) -> int:
    from diffpose.cli import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    return synth.run(parser.parse_args(argv))


def test_cli_protects_existing_directories(tmp_path: Path, dataset: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DiffPoseError, match="not empty"):
        _cli([str(tmp_path / "mine"), "--videos", "1", "--frames", "2", "--quiet"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    with pytest.raises(DiffPoseError, match="--force"):
        _cli([str(copy), "--videos", "1", "--frames", "2", "--quiet"])
    assert _cli([str(copy), "--videos", "1", "--frames", "2", "--quiet", "--force", "--workers", "1"]) == 0
    assert len(list((copy / "images/train/000001_mpii_train").iterdir())) == 2  # old frames are gone
    with pytest.raises(DiffPoseError, match="unknown preset|expected 1 to 9999"):
        _cli([str(tmp_path / "x"), "--frames", "0"])
