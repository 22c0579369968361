"""Data the tool should question, paths that must stay inside their root, images that cannot ask for huge work.

Through the command line where a command reads the data (``test``, ``infer``, ``evaluate``, ``train``): the
exit status, exactly one line on stderr naming the file (and the field), and nothing outside the root read
(the run is refused before any frame is decoded). docs/reliability.md lists the cases.

* Confinement is lexical: a ``file_name`` / split / graph name that is absolute or holds ``..`` is refused;
  a symlinked folder *inside* the root (``images -> /elsewhere``) is followed.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import diffpose.data.images as images_module
from diffpose.data.images import MAX_PIXELS, header_size, read_rgb
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.errors import DataFormatError
from diffpose.evaluation import evaluate_dirs
from diffpose.inference.boxes import Boxes, sanitize_boxes
from tests.helpers import ASSETS, MICRO, refused, run, val_json

pytestmark = pytest.mark.usefixtures("one_thread")

CKPT = ASSETS / "tiny_baseline.pt"


def edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def infer_gt(capsys, data: Path, tmp_path: Path) -> tuple[int, str, str]:
    return run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", "gt", "--json", tmp_path / "o.json",
               "--no-progress")


def png_claiming(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR (and its CRC) says ``width x height``: a few hundred bytes."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    assert ok and data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --------------------------------------------------------------------------------------------------
# Paths from data files stay inside their root
# --------------------------------------------------------------------------------------------------
def test_file_names_leaving_the_root_are_refused_and_nothing_outside_is_read(data, tmp_path, capsys):
    outside = Path(shutil.copytree(data / "images", tmp_path / "images"))  # the frames again, outside the root
    before = {f: f.stat().st_atime_ns for f in outside.rglob("*.jpg")}
    seq = val_json(data)
    original = seq.read_text()
    for prefix, words in (("../", "holds '..'"), (f"{tmp_path}/", "is an absolute path"),
                          ("images/../../", "holds '..'")):
        # every frame renamed, so the file is still one video and every name reaches a real image outside
        edit(seq, lambda d, p=prefix: [i.__setitem__("file_name", p + i["file_name"]) for i in d["images"]])
        name = json.loads(seq.read_text())["images"][0]["file_name"]
        assert (data / name).is_file()  # followed, the name would read the copy outside
        for command, result in (("infer", infer_gt(capsys, data, tmp_path)),
                                ("test", run(capsys, "test", "-c", CKPT, "--data", data, "--out", tmp_path / "t",
                                             "--no-progress", "--device", "cpu"))):
            refused(result, command, str(seq), "[images[0].file_name]", repr(name), words)
        seq.write_text(original)
    assert {f: f.stat().st_atime_ns for f in outside.rglob("*.jpg")} == before  # nothing outside was opened
    assert not (tmp_path / "o.json").exists()


def test_a_symlinked_images_folder_inside_the_root_is_followed(data, tmp_path, capsys):
    elsewhere = Path(shutil.move(str(data / "images"), tmp_path / "elsewhere"))
    (data / "images").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = infer_gt(capsys, data, tmp_path)
    assert code == 0, err


def test_split_names_must_be_one_folder_name(data, tmp_path, capsys):
    shutil.copytree(data / "annotations" / "val", tmp_path / "val")  # what ../val would reach
    refused(run(capsys, "test", "-c", CKPT, "--data", data, "--split", "../val", "--out", tmp_path / "t",
                "--no-progress", "--device", "cpu"), "test", str(data), "[split]", "'../val'", "single folder")
    refused(run(capsys, "train", "--data", data, "--out", tmp_path / "run", "--no-progress", "--set", *MICRO,
                "model.kind=baseline", "train.max_steps=1", "data.train_split=../train"),
            "train", "[split]", "'../train'")
    assert not (tmp_path / "run" / "final.pt").exists()


def test_onnx_manifests_that_leave_the_folder_or_disagree_with_their_graphs(exported, data, tmp_path, capsys):
    cases = {
        "outside": (lambda m: m["graphs"].__setitem__("heatmaps", "../../etc/passwd"),
                    ["[graphs.heatmaps]", "'../../etc/passwd' must be a single"]),
        "absolute": (lambda m: m["graphs"].__setitem__("heatmaps", "/etc/passwd"), ["[graphs.heatmaps]"]),
        "swapped": (lambda m: m["graphs"].update(backbone_features="head.onnx", heatmaps="backbone.onnx"),
                    ["head.onnx: graph does not fit the manifest: it reads (cond)", "swapped or foreign"]),
        "missing": (lambda m: m["graphs"].pop("heatmaps"), ["lists no graph for heatmaps"]),
        "frames": (lambda m: m.__setitem__("num_frames", 5), ["condition.onnx: graph reads clips of 1 frames",
                                                              "num_frames 5"]),
        "not a count": (lambda m: m.__setitem__("num_frames", "x"), ["[num_frames]", "positive integer"]),
    }
    for name, (change, words) in cases.items():
        folder = Path(shutil.copytree(exported, tmp_path / name))
        edit(folder / "diffpose_onnx.json", change)
        refused(run(capsys, "infer", val_json(data), "--onnx", folder, "--boxes", "gt", "--json",
                    tmp_path / "o.json", "--no-progress"), "infer", *words)
    assert not (tmp_path / "o.json").exists()


# --------------------------------------------------------------------------------------------------
# Images that cannot ask for huge work
# --------------------------------------------------------------------------------------------------
def test_a_small_png_claiming_20000_squared_pixels_is_refused_without_decoding(data, tmp_path, capsys, monkeypatch):
    bomb = png_claiming(20000, 20000)
    assert len(bomb) < 1000 and header_size(bomb) == (20000, 20000) and 20000 * 20000 > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    decoded = []
    monkeypatch.setattr(images_module.cv2, "imdecode", lambda *a: decoded.append(a))  # must not be reached
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"header says 20000 x 20000 pixels.*refused without decoding"):
        read_rgb(path)
    assert time.perf_counter() - start < 0.5 and not decoded
    monkeypatch.undo()
    frame = data / json.loads(val_json(data).read_text())["images"][5]["file_name"]
    frame.write_bytes(bomb)  # a frame of the sequence (a .jpg name, PNG bytes: decoders read the content)
    refused(infer_gt(capsys, data, tmp_path), "infer", str(frame), "20000 x 20000")


def test_opencvs_own_pixel_limit_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(40000, 40000))  # 1.6e9 pixels: beyond OPENCV_IO_MAX_IMAGE_PIXELS (2**30)
    monkeypatch.setattr(images_module, "header_size", lambda data: None)  # as for a kind whose header we skip
    with pytest.raises(DataFormatError, match="OPENCV_IO_MAX_IMAGE_PIXELS") as e:
        read_rgb(path)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path))


def test_header_sizes_of_every_parsed_kind():
    image = np.zeros((37, 53, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".webp"):
        ok, buf = cv2.imencode(ext, image)
        assert ok and header_size(buf.tobytes()) == (53, 37), ext
    ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless: VP8L
    assert header_size(buf.tobytes()) == (53, 37)
    assert header_size(b"not an image") is None


# --------------------------------------------------------------------------------------------------
# Data to question
# --------------------------------------------------------------------------------------------------
def test_a_frame_far_smaller_than_its_stated_size_is_refused(data, tmp_path, capsys):
    doc = json.loads(val_json(data).read_text())
    key = doc["annotations"][0]["image_id"]  # a labelled frame: diffpose test reads it too
    frame = data / next(i["file_name"] for i in doc["images"] if i["id"] == key)
    cv2.imwrite(str(frame), np.zeros((29, 38, 3), np.uint8))  # the JSON says 384 x 288
    for command, result in (("infer", infer_gt(capsys, data, tmp_path)),
                            ("test", run(capsys, "test", "-c", CKPT, "--data", data, "--out", tmp_path / "t",
                                         "--no-progress", "--device", "cpu"))):
        refused(result, command, str(frame), "[width/height]", "38 x 29 pixels", "width 384, height 288")


def test_keypoints_of_1e300_are_refused_naming_file_and_field(data, tmp_path, capsys):
    seq = val_json(data)
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(seq, pred / seq.name)
    edit(pred / seq.name, lambda d: d["annotations"][4]["keypoints"].__setitem__(0, 1e300))
    refused(run(capsys, "evaluate", "--gt", seq.parent, "--pred", pred, "--no-progress"), "evaluate",
            str(pred / seq.name), "annotations[4]", ".keypoints]", "1e+300 is not a pixel position")
    edit(seq, lambda d: d["annotations"][0]["keypoints"].__setitem__(1, -2e6))
    with pytest.raises(DataFormatError, match=r"annotations\[0\].*keypoints.*-2e\+06"):
        read_posetrack18(seq)


def test_detection_boxes_below_one_pixel_are_dropped_and_counted(data, tmp_path, capsys):
    doc = json.loads(val_json(data).read_text())
    dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9, "category_id": 1}
            for a in doc["annotations"] if a.get("bbox")]
    dets.append({"image_id": dets[0]["image_id"], "bbox": [50, 50, 1e-9, 80], "score": 0.99, "category_id": 1})
    (tmp_path / "det.json").write_text(json.dumps(dets))
    code, _, err = run(capsys, "test", "-c", CKPT, "--data", data, "--boxes", tmp_path / "det.json", "--out",
                       tmp_path / "t", "--no-progress", "--device", "cpu")
    assert code == 0 and err == (f"diffpose test: warning: {tmp_path / 'det.json'}: dropped 1 of {len(dets)} boxes "
                                 "(1 narrower or lower than 1 pixel)"), err
    boxes = Boxes(np.array([[10, 10, 1e-9, 50], [10, 10, 50, 0.5], [10, 10, 1, 1]]), np.ones(3), "detections")
    kept, dropped = sanitize_boxes(boxes, (100, 100))
    assert dropped == 2 and kept.xywh.tolist() == [[10, 10, 1, 1]]


def test_a_ground_truth_box_of_negative_size_is_refused(data, tmp_path, capsys):
    seq = val_json(data)
    ann_id = json.loads(seq.read_text())["annotations"][1]["id"]
    edit(seq, lambda d: d["annotations"][1].__setitem__("bbox", [10, 10, -40, 100]))
    for command, result in (("infer", infer_gt(capsys, data, tmp_path)),
                            ("test", run(capsys, "test", "-c", CKPT, "--data", data, "--out", tmp_path / "t",
                                         "--no-progress", "--device", "cpu"))):
        refused(result, command, str(seq), f"[annotations (id {ann_id}).bbox]", "negative size (-40 x 100)")


def test_evaluate_warns_about_zero_size_head_boxes_and_keeps_poseval_arithmetic(data, tmp_path, capsys):
    gt_dir = data / "annotations" / "val"
    seq = val_json(data)
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(seq, pred / seq.name)  # the GT as prediction: every joint matches, AP 100
    edit(pred / seq.name, lambda d: [a.__setitem__("scores", [1.0] * 17) for a in d["annotations"]])
    perfect = evaluate_dirs(gt_dir, pred)
    assert perfect.total == pytest.approx(100.0) and not perfect.bad_head_boxes
    edit(seq, lambda d: [d["annotations"][k].__setitem__("bbox_head", [70, 95, 0, 0]) for k in (0, 1)])
    code, out, err = run(capsys, "evaluate", "--gt", gt_dir, "--pred", pred, "--no-progress", "--json",
                         tmp_path / "ap.json")
    assert code == 0
    assert err == (f"diffpose evaluate: warning: 2 GT head boxes of zero or negative size in 1 file ({seq.name}); "
                   "scored with poseval's arithmetic unchanged, so the AP of those persons' joints is meaningless "
                   "(a zero-size head box matches no prediction)"), err
    result = evaluate_dirs(gt_dir, pred)
    assert result.bad_head_boxes == {str(seq): 2}
    assert json.loads((tmp_path / "ap.json").read_text()) == json.loads(json.dumps(result.to_json()))
    # poseval: distance / 0 is inf (or NaN at distance 0), never <= 0.5, so those GT persons match nothing
    assert result.total < perfect.total
