"""Clip dataset: shared transform across frames, crop geometry, augmentation draws, targets, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from diffpose.codec import HeatmapCodec
from diffpose.data.clip_dataset import IMAGENET_MEAN, IMAGENET_STD, ClipDataset, gt_items, load_split
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.data.records import Frame, Person, Video
from diffpose.data.transforms import Augmentation, CropBox, apply_affine, crop_matrix, invert_affine
from diffpose.errors import DataFormatError
from diffpose.keypoints import POSETRACK18

J = POSETRACK18.num_joints
CROP = (48, 64)  # (W, H)
CODEC = HeatmapCodec(input_size=CROP, heatmap_size=(16, 12), sigma=1.0)


def make_dataset(root: Path, frames: int = 5, dot=(70, 50)) -> list[Video]:
    """One video of grey frames with a white 3x3 dot at the same image position in every frame."""
    name = "000001_mpii_train"
    recs = []
    for f in range(frames):
        image = np.full((120, 160, 3), 60, np.uint8)
        image[dot[1] - 1:dot[1] + 2, dot[0] - 1:dot[0] + 2] = 255
        rel = f"images/train/{name}/{f:06d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        kps = np.zeros((J, 2))
        present = np.zeros(J, bool)
        for k, (x, y) in {0: dot, 5: (60, 70), 6: (80, 70), 11: (62, 95), 12: (78, 95)}.items():
            kps[k], present[k] = (x, y), True
        person = Person(keypoints=kps, visibility=present.astype(float), present=present,
                        box=np.array([50.0, 40.0, 40.0, 60.0]), head_box=np.array([60.0, 40, 20, 20]), track_id=0)
        recs.append(Frame(file_name=rel, frame_index=f, image_id=10_000_010_000 + f, is_labeled=f == 2,
                          persons=[person] if f == 2 else []))
    write_posetrack18(Video(name=name, frames=recs), root / "annotations" / "train" / f"{name}.json")
    return load_split(root, "train")


def dot_centre(frame: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre ``(x, y)`` of the bright dot in a normalised ``(3, H, W)`` frame."""
    g = frame.sum(0)  # (H, W)
    w = np.clip(g - (g.max() + np.median(g)) / 2, 0, None)
    ys, xs = np.mgrid[: g.shape[0], : g.shape[1]]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def test_crop_matrix_maps_box_onto_crop_edges():
    box = CropBox(cx=100.0, cy=50.0, w=40.0, h=80.0)
    mat = crop_matrix(box, (20, 40))
    # the box edges land on the crop's outer pixel edges (-0.5 and W - 0.5)
    corners = apply_affine(mat, np.array([[80.0, 10.0], [120.0, 90.0], [100.0, 50.0]]))
    assert np.allclose(corners, [[-0.5, -0.5], [19.5, 39.5], [9.5, 19.5]])
    flipped = apply_affine(crop_matrix(box, (20, 40), flip=True), np.array([[80.0, 10.0]]))
    assert np.allclose(flipped, [[19.5, -0.5]])
    rot = crop_matrix(box, (20, 40), rotation=90.0)
    inv = invert_affine(rot)
    pts = np.array([[3.0, 7.0], [15.0, 30.0]])
    assert np.allclose(apply_affine(inv, apply_affine(rot, pts)), pts)


def test_crop_box_fixes_aspect_and_enlarges():
    box = CropBox.from_xywh(np.array([10.0, 20.0, 30.0, 90.0]), aspect=0.75, enlarge=1.25)
    assert (box.cx, box.cy) == (25.0, 65.0)
    assert box.w / box.h == pytest.approx(0.75) and box.h == pytest.approx(90 * 1.25)


def test_frames_of_a_clip_share_one_transform(tmp_path):
    videos = make_dataset(tmp_path)
    ds = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, augment=Augmentation(), seed=3)
    for epoch in range(3):
        ds.set_epoch(epoch)
        sample = ds[0]
        frames = sample["frames"].numpy()  # (T, 3, H, W)
        assert frames.shape == (5, 3, 64, 48)
        # the dot is at the same image place in every frame, so at the same crop place in every frame
        centres = np.array([dot_centre(f) for f in frames])  # (T, 2) crop (x, y)
        assert np.abs(centres - centres[0]).max() < 1e-6
        # and the labelled nose (the dot) maps onto it, flipped or not
        nose = sample["keypoints"][POSETRACK18.index("nose")].numpy()
        assert np.abs(nose - centres[0]).max() < 0.5


def test_augmentation_differs_between_epochs_and_repeats_within_one(tmp_path):
    videos = make_dataset(tmp_path)
    ds = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, augment=Augmentation(), seed=0)
    mats = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        mats.append(ds[0]["matrix"].numpy())
    assert all(not np.allclose(mats[0], m) for m in mats[1:])
    ds.set_epoch(2)
    assert np.allclose(ds[0]["matrix"].numpy(), mats[2])  # reproducible (resume-safe)


def test_flip_swaps_left_and_right(tmp_path):
    videos = make_dataset(tmp_path)
    aug = Augmentation(p_flip=1.0, p_rotate=0.0, scale_std=0.0, p_half_body=0.0, shift=0.0)
    plain = ClipDataset(videos, tmp_path, gt_items(videos), CODEC)[0]
    flipped = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, augment=aug)[0]
    ls, rs = POSETRACK18.index("left_shoulder"), POSETRACK18.index("right_shoulder")
    width = CROP[0]
    assert flipped["keypoints"][ls, 0].item() == pytest.approx(width - 1 - plain["keypoints"][rs, 0].item(), abs=1e-4)
    assert flipped["weights"][ls] == plain["weights"][rs]


def test_targets_and_normalisation(tmp_path):
    videos = make_dataset(tmp_path)
    s = ClipDataset(videos, tmp_path, gt_items(videos), CODEC)[0]
    assert s["heatmaps"].shape == (J, 16, 12) and s["weights"].shape == (J,)
    assert s["weights"].sum().item() == 5  # the five labelled joints, all inside the crop
    assert s["heatmaps"][POSETRACK18.index("left_ear")].abs().max() == 0
    grey = (60 / 255 - IMAGENET_MEAN) / IMAGENET_STD  # the background, normalised
    frame = s["frames"][0].numpy()
    assert np.allclose(frame[:, 5, 5], grey, atol=0.05)


def test_clamped_neighbours_at_video_ends(tmp_path):
    videos = make_dataset(tmp_path, frames=3)
    ds = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, offsets=(-2, -1, 0, 1, 2))
    assert ds[0]["frames"].shape[0] == 5  # key frame 2 of 3: offsets +1, +2 repeat the last frame


def test_missing_frame_is_a_clear_error(tmp_path):
    videos = make_dataset(tmp_path)
    (tmp_path / videos[0].frames[3].file_name).unlink()
    with pytest.raises(DataFormatError, match="000003.jpg.*1 of the 5 frame images these clips need are missing"):
        ClipDataset(videos, tmp_path, gt_items(videos), CODEC)  # found before any work
    ds = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, check_files=False)
    with pytest.raises(DataFormatError, match="000003.jpg.*does not exist"):
        ds[0]  # and when reading


def test_flip_pairs_every_left_joint_with_its_right_one_and_mirrors_its_heatmap(tmp_path):
    """The flip path of the temporal models' clips (a lopsided ankle AP asked for it): every left joint, ankles
    included, trades places with its right one, the rest stay, and the key frame's heatmap channels follow."""
    names = list(POSETRACK18.joints)
    perm = POSETRACK18.flip_permutation()
    for k, name in enumerate(names):
        side = name.split("_", 1)
        mirror = {"left": "right", "right": "left"}.get(side[0])
        assert names[perm[k]] == (f"{mirror}_{side[1]}" if mirror else name), name
    videos = make_dataset(tmp_path)
    aug = Augmentation(p_flip=1.0, p_rotate=0.0, scale_std=0.0, p_half_body=0.0, shift=0.0)
    plain = ClipDataset(videos, tmp_path, gt_items(videos), CODEC)[0]
    flipped = ClipDataset(videos, tmp_path, gt_items(videos), CODEC, augment=aug)[0]
    hm, hm_flip = plain["heatmaps"].numpy(), flipped["heatmaps"].numpy()  # (J, H, W)
    np.testing.assert_allclose(hm_flip, hm[perm][:, :, ::-1], atol=1e-6)
    # every frame of the clip is mirrored, neighbours as well as the key frame (the dot moves to W - 1 - x)
    for f, f_flip in zip(plain["frames"].numpy(), flipped["frames"].numpy()):  # (3, H, W) each
        (x, y), (x_flip, y_flip) = dot_centre(f), dot_centre(f_flip)
        assert x_flip == pytest.approx(CROP[0] - 1 - x, abs=0.05) and y_flip == pytest.approx(y, abs=0.05)
