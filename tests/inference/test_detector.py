"""The built-in person detector: output contract, person filter + NMS, weights files, offline errors, real frames.

Models have random weights (nothing is ever downloaded). A random Faster R-CNN scores every class alike, so the
contract tests raise the person logit's bias: the model then finds "persons" (boxes regressed from random
proposals) that exercise the whole path -- resize, box mapping back to the frame, filter, NMS -- on any image.
"""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest

torchvision = pytest.importorskip("torchvision")

import torch  # noqa: E402

from diffpose.data.images import read_rgb  # noqa: E402
from diffpose.errors import DiffPoseError  # noqa: E402
from diffpose.inference.detector import (  # noqa: E402
    DEFAULT_DETECTOR,
    DETECTORS,
    PERSON,
    PersonDetector,
    cached_weights_path,
    detector_model,
    person_boxes,
)
from diffpose.inference.sources import SourceFrame  # noqa: E402

FAST = "frcnn-mobilenet-320"


def make_detector(person_bias: float = 6.0, **kwargs) -> PersonDetector:
    """A random-weight detector of the fast model whose person score is ~0.8 (``person_bias`` added)."""
    torch.manual_seed(0)
    det = PersonDetector(FAST, pretrained=False, **kwargs)
    with torch.no_grad():
        det.model.roi_heads.box_predictor.cls_score.bias[PERSON] += person_bias
    return det


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return make_detector()


@pytest.fixture(scope="module")
def weights_file(detector, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "det.pth"
    torch.save(detector.model.state_dict(), path)
    return path


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def check_contract(rows: np.ndarray, image: np.ndarray, min_score: float, nms_iou: float) -> None:
    h, w = image.shape[:2]
    assert rows.dtype == np.float64 and rows.ndim == 2 and rows.shape[1] == 5
    assert np.isfinite(rows).all()
    x, y, bw, bh, s = rows.T
    assert (bw > 0).all() and (bh > 0).all()
    tol = 1e-3  # torchvision clips the boxes to [0, W] x [0, H] in float32
    assert (x >= -tol).all() and (y >= -tol).all() and (x + bw <= w + tol).all() and (y + bh <= h + tol).all()
    assert (s >= min_score).all() and (s <= 1).all()
    assert (np.diff(s) <= 0).all()  # sorted by decreasing score
    xyxy = torch.from_numpy(np.column_stack([x, y, x + bw, y + bh]))
    iou = torchvision.ops.box_iou(xyxy, xyxy).fill_diagonal_(0)
    assert (iou <= nms_iou + 1e-6).all()


def one_line(error: pytest.ExceptionInfo, *parts: str) -> str:
    text = str(error.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    return text


# ------------------------------------------------------------------------------------------------- the table


def test_the_table_names_torchvisions_models_and_their_coco_ap():
    assert [m.name for m in DETECTORS] == ["frcnn-r50", "frcnn-mobilenet", "frcnn-mobilenet-320"]
    assert DEFAULT_DETECTOR == "frcnn-r50"
    assert detector_model("frcnn-r50").builder is torchvision.models.detection.fasterrcnn_resnet50_fpn_v2
    assert detector_model("frcnn-mobilenet").builder is torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn
    for m in DETECTORS:
        assert m.coco_box_ap == m.weights.meta["_metrics"]["COCO-val2017"]["box_map"]
        assert m.url.startswith("https://download.pytorch.org/models/") and m.url.endswith(".pth")
        assert m.weights.meta["categories"][PERSON] == "person"
    with pytest.raises(DiffPoseError) as e:
        detector_model("yolo")
    one_line(e, "unknown detector 'yolo'", "frcnn-r50, frcnn-mobilenet, frcnn-mobilenet-320")


def test_bad_settings_are_refused():
    with pytest.raises(DiffPoseError, match="min_score"):
        PersonDetector(FAST, pretrained=False, min_score=1.5)
    with pytest.raises(DiffPoseError, match="nms_iou"):
        PersonDetector(FAST, pretrained=False, nms_iou=0.0)
    with pytest.raises(ValueError):
        PersonDetector(FAST, weights="x.pth", pretrained=False)


# ----------------------------------------------------------------------------------- post-processing, by hand


def test_person_boxes_keeps_persons_above_the_threshold_after_nms():
    raw = {
        "boxes": torch.tensor([
            [10.25, 20.5, 110.75, 220.125],  # person, 0.9: kept
            [12.0, 22.0, 112.0, 222.0],  # person, 0.8, IoU ~0.95 with the first: dropped by NMS
            [300.0, 300.0, 350.0, 400.0],  # person, 0.7: kept
            [10.0, 20.0, 110.0, 220.0],  # car, 0.95: not a person
            [400.0, 10.0, 450.0, 90.0],  # person, 0.3: below min_score
            [0.0, 0.0, float("nan"), 5.0],  # person, 0.99, not finite
            [50.0, 50.0, 50.0, 80.0],  # person, 0.97, no width
        ]),
        "labels": torch.tensor([1, 1, 1, 3, 1, 1, 1]),
        "scores": torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3, 0.99, 0.97]),
    }
    rows = person_boxes(raw, min_score=0.5, nms_iou=0.5)
    assert rows.dtype == np.float64
    expected = np.array([[10.25, 20.5, 100.5, 199.625, np.float32(0.9)], [300, 300, 50, 100, np.float32(0.7)]])
    np.testing.assert_array_equal(rows, expected)  # xyxy -> xywh exactly
    loose = person_boxes(raw, min_score=0.5, nms_iou=0.99)  # the two overlapping persons both stay, by score
    np.testing.assert_array_equal(loose[:, 4], np.float32([0.9, 0.8, 0.7]).astype(np.float64))
    empty = person_boxes({k: v[3:4] for k, v in raw.items()}, 0.5, 0.5)
    assert empty.shape == (0, 5) and empty.dtype == np.float64


# ------------------------------------------------------------------------------------------- output contract


def test_a_batch_of_frames_of_different_sizes_gives_person_boxes_in_each_frames_pixels(detector):
    frames = [noise(240, 320, 1), noise(300, 200, 2)]
    copies = [f.copy() for f in frames]
    for f in frames:
        f.flags.writeable = False  # the pipeline passes read-only views
    out = detector.detect(frames)
    assert len(out) == 2
    for rows, frame, copy in zip(out, frames, copies, strict=True):
        assert len(rows) > 0
        check_contract(rows, frame, detector.min_score, detector.nms_iou)
        np.testing.assert_array_equal(frame, copy)
    # one frame as a box provider; a batch pads its frames to one size, so it matches frame by frame only up to
    # the padding's effect on the features near the border (with trained weights: nearly the same boxes)
    boxes = detector(SourceFrame(index=3, image=frames[1], name="v/000003.jpg", image_id=3))
    assert boxes.origin == "detector" and detector.name == "detector frcnn-mobilenet-320"
    np.testing.assert_array_equal(np.column_stack([boxes.xywh, boxes.scores]), detector.detect(frames[1:])[0])


def test_a_frame_with_nobody_gives_an_empty_array_and_an_empty_batch_nothing():
    det = make_detector(person_bias=0.0, min_score=1.0)  # random weights score ~1/91 everywhere
    grey = np.full((120, 160, 3), 128, dtype=np.uint8)
    (rows,) = det.detect([grey])
    assert rows.shape == (0, 5) and rows.dtype == np.float64
    assert len(det(SourceFrame(0, grey, "g/000000.jpg", 0))) == 0
    assert det.detect([]) == []


def test_an_image_that_is_not_rgb_uint8_is_refused(detector):
    with pytest.raises(DiffPoseError) as e:
        detector.detect([np.zeros((10, 10), np.uint8)])
    one_line(e, "expected an RGB uint8 (H, W, 3) image", "image 0")
    with pytest.raises(DiffPoseError, match="float32"):
        detector.detect([noise(8, 8, 0), np.zeros((8, 8, 3), np.float32)])


# --------------------------------------------------------------------------------------------------- weights


def test_a_saved_state_dict_loads_and_detects_the_same(detector, weights_file):
    loaded = PersonDetector(FAST, weights=weights_file)
    frames = [noise(200, 260, 5), noise(180, 180, 6)]
    for a, b in zip(detector.detect(frames), loaded.detect(frames), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.weights_path == weights_file


def test_wrapped_and_frozen_batchnorm_state_dicts_load(detector, tmp_path):
    """``{"state_dict": ...}`` without BatchNorm's ``num_batches_tracked`` (torchvision's own files, which come
    from frozen batch norm, have none) loads into the same weights."""
    state = {k: v for k, v in detector.model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = PersonDetector(FAST, weights=path)
    for k, v in loaded.model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state[k]), k


class NotWeights:
    pass


def test_files_that_are_not_detector_weights_give_one_line_naming_the_file(detector, tmp_path):
    cases = {}
    cases["bytes.pth"] = lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096))
    cases["classifier.pth"] = lambda p: torch.save(torchvision.models.mobilenet_v3_small().state_dict(), p)
    two_class = dict(detector.model.state_dict())
    two_class["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(2, 1024)
    two_class["roi_heads.box_predictor.cls_score.bias"] = torch.zeros(2)
    cases["two_class.pth"] = lambda p: torch.save(two_class, p)
    cases["plain.pth"] = lambda p: torch.save({"epoch": 3, "name": "x"}, p)
    cases["list.pth"] = lambda p: torch.save([torch.zeros(3)], p)
    cases["object.pth"] = lambda p: torch.save(NotWeights(), p)
    cases["object4.pth"] = lambda p: p.write_bytes(pickle.dumps([NotWeights()], protocol=4))
    expected = {"bytes.pth": "cannot be read as a PyTorch file: Unsupported operand",
                "object4.pth": "cannot be read as a PyTorch file: Unsupported operand 149",
                "classifier.pth": "(fasterrcnn_mobilenet_v3_large_320_fpn):",
                "two_class.pth": "2 shape mismatches, e.g. 'roi_heads.box_predictor.cls_score.weight' (2, 1024) vs "
                                 "(91, 1024)",
                "plain.pth": "found 2 non-tensor entries, e.g. 'epoch'",
                "list.pth": "found a list",
                "object.pth": "refused: the file holds pickled Python objects "
                              "(tests.inference.test_detector.NotWeights)"}
    for name, write in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(DiffPoseError) as e:
            PersonDetector(FAST, weights=path)
        text = one_line(e, str(path), "[--detector-weights]", f"not {FAST} weights", expected[name])
        if name == "classifier.pth":
            assert "missing keys, e.g. 'backbone." in text and "unexpected keys, e.g. 'features." in text
    with pytest.raises(DiffPoseError) as e:
        PersonDetector(FAST, weights=tmp_path / "absent.pth")
    one_line(e, str(tmp_path / "absent.pth"), "file does not exist")


def test_no_file_and_no_internet_says_both_ways_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DiffPoseError) as e:
        PersonDetector("frcnn-r50", progress=False)
    url = "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    one_line(e, "cannot download the frcnn-r50 detector weights (URLError:", url, "on a machine with internet",
             str(tmp_path / "hub" / "checkpoints"), "--detector-weights FILE")

    def bad_hash(url, dst, hash_prefix=None, progress=True):
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "0123")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", bad_hash)
    with pytest.raises(DiffPoseError) as e:
        PersonDetector("frcnn-mobilenet", progress=False)
    one_line(e, 'RuntimeError: invalid hash value (expected "fb6a3cc7"', "--detector-weights FILE")


def test_weights_in_torch_hubs_cache_load_without_a_download(detector, weights_file, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded"))
    cached = cached_weights_path(detector_model(FAST))
    assert cached == tmp_path / "hub" / "checkpoints" / "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"
    cached.parent.mkdir(parents=True)
    cached.symlink_to(weights_file)
    det = PersonDetector(FAST, progress=False)
    assert det.weights_path == cached
    frame = noise(150, 200, 9)
    np.testing.assert_array_equal(det.detect([frame])[0], detector.detect([frame])[0])


# ----------------------------------------------------------------------------------------------- real frames


def test_real_frames_of_posetrack18_and_bonn(detector, shared_data):
    bonn = sorted((shared_data / "bonn_multiperson_posetrack" / "videos").glob("*/*.jpg"))
    posetrack = sorted((shared_data / "posetrack18" / "images" / "val").glob("*/*.jpg"))
    if not bonn or not posetrack:
        pytest.skip("no Bonn or PoseTrack18 val frames in the sample data")
    frames = [read_rgb(bonn[0]), read_rgb(posetrack[0])]
    assert frames[0].shape != frames[1].shape
    out = detector.detect(frames)
    assert len(out) == 2
    for rows, frame in zip(out, frames, strict=True):
        assert len(rows) > 0
        check_contract(rows, frame, detector.min_score, detector.nms_iou)
