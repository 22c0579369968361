"""The bad-input catalogue, end to end through the command line; training cases are in
test_reliability_training.py.

Every refused case runs ``diffpose <command>`` in-process and checks the exit status (2 for bad input; 1
where documented: ``model-info`` when backbone keys are missing), exactly one line on stderr,
``diffpose <command>: error: <file> ...`` naming the file (and the field where there is one), and that
nothing the user gave changed (SHA-256 of every input file before and after). Cases the tool handles
gracefully check the outcome instead. docs/reliability.md lists every case and what the tool does.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffpose.checkpoint import load_checkpoint
from diffpose.config import load_config
from diffpose.data.images import read_rgb
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.inference.render import letterbox
from diffpose.models import build_backbone
from tests.helpers import ASSETS, CodePayload, digest, refused, run, val_json

pytestmark = pytest.mark.usefixtures("one_thread")


def bad_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Checkpoint files and the words their error must contain."""
    folder.mkdir(exist_ok=True)
    good = (ASSETS / "tiny_baseline.pt").read_bytes()
    marker = folder / "PAYLOAD_RAN"
    out = {}

    def put(name: str, data: bytes, words: str) -> None:
        (folder / name).write_bytes(data)
        out[name] = (folder / name, words)

    put("truncated.pt", good[: len(good) // 2], "cannot be read (truncated")
    put("empty.pt", b"", "checkpoint file is empty")
    put("text.pt", b"hello, not a checkpoint\n", "cannot be read")
    torch.save({"config": {}, "model": CodePayload(marker)}, folder / "code_zip.pt")
    out["code_zip.pt"] = (folder / "code_zip.pt", "refused: the file holds pickled Python objects (posix.system)")
    (folder / "code_pickle.pt").write_bytes(pickle.dumps({"model": CodePayload(marker)}, protocol=2))
    out["code_pickle.pt"] = (folder / "code_pickle.pt", "refused")
    ckpt = torch.load(ASSETS / "tiny_baseline.pt", weights_only=True)
    torch.save({"state_dict": ckpt["model"]}, folder / "vitpose_style.pt")
    out["vitpose_style.pt"] = (folder / "vitpose_style.pt",
                               "neither a diffpose checkpoint (no 'config' entry) nor a published ViTPose")
    other = dict(ckpt, config=json.loads(json.dumps(ckpt["config"])))
    other["config"]["model"]["backbone"]["embed_dim"] = 64  # the weights of another model size
    torch.save(other, folder / "other_model.pt")
    out["other_model.pt"] = (folder / "other_model.pt", "weights do not fit the baseline model of its own config")
    return out


# --------------------------------------------------------------------------------------------------
# Checkpoints: truncated, empty, foreign, another model, pickled code (refused and never run)
# --------------------------------------------------------------------------------------------------
def test_bad_checkpoints_are_refused_by_test_and_infer_and_no_payload_runs(data, tmp_path, capsys):
    cases = bad_checkpoints(tmp_path / "ckpt")
    before = digest(tmp_path / "ckpt", data)
    for path, words in cases.values():
        refused(run(capsys, "test", "-c", path, "--data", data, "--out", tmp_path / "t", "--no-progress", "--device",
                    "cpu"), "test", str(path), words)
        refused(run(capsys, "infer", val_json(data), "-c", path, "--boxes", "gt", "--json", tmp_path / "o.json",
                    "--no-progress"), "infer", str(path), words)
    assert not (tmp_path / "ckpt" / "PAYLOAD_RAN").exists()
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "t" / "ap.json").exists()
    assert digest(tmp_path / "ckpt", data) == before


def test_model_info_backbone_weights(tmp_path, capsys):
    cases = bad_checkpoints(tmp_path / "ckpt")
    for name in ("truncated.pt", "empty.pt", "code_zip.pt", "code_pickle.pt"):
        path, words = cases[name]
        refused(run(capsys, "model-info", "--preset", "tiny", "--backbone-weights", path), "model-info", str(path),
                words)
    assert not (tmp_path / "ckpt" / "PAYLOAD_RAN").exists()
    refused(run(capsys, "model-info", "--backbone-weights", tmp_path / "missing.pt"), "model-info",
            "missing.pt", "does not exist")
    # a checkpoint of another model size: its backbone does not fit (documented exit status 1)
    small = load_config("tiny", overrides=["model.backbone.embed_dim=32", "model.backbone.depth=2",
                                           "model.backbone.num_heads=2"])
    torch.save({f"backbone.{k}": v for k, v in build_backbone(small.model).state_dict().items()},
               tmp_path / "small.pth")
    err = refused(run(capsys, "model-info", "--preset", "tiny", "--backbone-weights", tmp_path / "small.pth"),
                  "model-info", "small.pth", "backbone key(s) missing", "shape mismatch", status=1)
    assert "backbone.pos_embed" in err


# --------------------------------------------------------------------------------------------------
# Frames and videos: missing, cut short, empty; odd images handled
# --------------------------------------------------------------------------------------------------
def test_missing_or_cut_short_frames_stop_before_any_work(data, tmp_path, capsys, monkeypatch):
    import diffpose.inference.sources as sources

    names = [f["file_name"] for f in json.loads(val_json(data).read_text())["images"]]
    decoded = []
    monkeypatch.setattr(sources, "read_rgb", lambda path: decoded.append(path) or read_rgb(path))
    (data / names[5]).unlink()
    before = digest(data)
    infer = ("infer", val_json(data), "-c", ASSETS / "tiny_baseline.pt", "--boxes", "gt", "--json",
             tmp_path / "o.json", "--no-progress")
    refused(run(capsys, *infer), "infer", names[5], "1 of the 12 frame images", "missing")
    assert decoded == []  # reported before the first frame was decoded
    # diffpose test needs frame 5 as a neighbour of key frame 4 (DiffPose, offsets -2..2)
    refused(run(capsys, "test", "-c", ASSETS / "tiny_diffpose.pt", "--data", data, "--out", tmp_path / "t",
                "--no-progress", "--device", "cpu"), "test", names[5], "these clips need are missing")
    assert not (tmp_path / "t" / "predictions").exists() or not any((tmp_path / "t" / "predictions").iterdir())
    assert digest(data) == before
    jpeg = (data / names[6]).read_bytes()
    (data / names[6]).write_bytes(jpeg[: len(jpeg) // 2])  # an interrupted download
    (data / names[5]).write_bytes(jpeg)
    before = digest(data)
    refused(run(capsys, *infer), "infer", names[6], "JPEG is cut short")
    assert digest(data) == before and not (tmp_path / "o.json").exists()


def test_cut_short_empty_and_junk_videos(tmp_path, capsys):
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    whole = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name, words in (("cut.mp4", "cannot open as a video"), ("empty.mp4", "video file is empty")):
        refused(run(capsys, "infer", tmp_path / name, "-c", ASSETS / "tiny_baseline.pt", "--boxes",
                    tmp_path / "none.json", "--json", tmp_path / "o.json", "--no-progress"), "infer", name, words)
    assert not (tmp_path / "o.json").exists()


def test_images_of_mixed_sizes_gray_rgba_and_16_bit_are_read_as_rgb(data, tmp_path, capsys):
    names = [f["file_name"] for f in json.loads(val_json(data).read_text())["images"]]
    folder = tmp_path / "mixed"
    folder.mkdir()
    first = cv2.imread(str(data / names[0]))
    kinds = ("rgb", "gray", "rgba", "16bit", "double", "rgb")  # frame 4: frame 0 at twice the size
    for i, kind in enumerate(kinds):
        bgr = cv2.imread(str(data / names[i]))
        image = bgr
        if kind == "gray":
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        elif kind == "rgba":
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        elif kind == "16bit":
            image = bgr.astype(np.uint16) * 257
        elif kind == "double":
            image = cv2.resize(first, (768, 576), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
        got = read_rgb(folder / f"{i:02d}.png")
        assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3
        if kind in ("rgba", "16bit"):
            assert np.array_equal(got, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # alpha dropped; 16 bits -> top 8
        if kind == "gray":
            assert np.array_equal(got[..., 0], got[..., 2]) and np.array_equal(got[..., 0], image)
    box = read_posetrack18(val_json(data)).frames[0].persons[0].box
    dets = [{"image_id": i, "bbox": (box * (2 if kind == "double" else 1)).tolist(), "score": 0.9}
            for i, kind in enumerate(kinds)]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    before = digest(folder, tmp_path / "dets.json")
    common = ("--boxes", tmp_path / "dets.json", "--no-propagate", "--no-progress")
    # the single-frame baseline: frame 4 (twice the size) gets twice frame 0's keypoints, in its own pixels
    code, _, err = run(capsys, "infer", folder, "-c", ASSETS / "tiny_baseline.pt", *common, "--json",
                       tmp_path / "base.json")
    assert code == 0, err
    video = read_posetrack18(tmp_path / "base.json")
    assert [len(f.persons) for f in video.frames] == [1] * 6
    small, big = video.frames[0].persons[0], video.frames[4].persons[0]
    np.testing.assert_allclose(big.box, 2 * box)
    shown = small.present & (small.scores > 0.3)
    assert shown.sum() >= 5
    assert np.median(np.abs(big.keypoints[shown] - (2 * small.keypoints[shown] + 0.5))) < 3.0
    # DiffPose crops every frame of a clip with the key frame's box: neighbours of another size do not
    # break it; the rendered video takes the first frame's size and fits the larger frame into it
    code, _, err = run(capsys, "infer", folder, "-c", ASSETS / "tiny_diffpose.pt", *common, "--json",
                       tmp_path / "poses.json", "--render", tmp_path / "poses.mp4", "--render-frames",
                       tmp_path / "frames", "--steps", "1", "--ensemble", "1")
    assert code == 0, err
    assert [len(f.persons) for f in read_posetrack18(tmp_path / "poses.json").frames] == [1] * 6
    cap = cv2.VideoCapture(str(tmp_path / "poses.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 384
    cap.release()
    assert cv2.imread(str(tmp_path / "frames" / "000004.png")).shape == (576, 768, 3)
    assert digest(folder, tmp_path / "dets.json") == before


def test_letterbox_keeps_the_aspect_on_black_bars():
    image = np.full((100, 50, 3), 255, np.uint8)
    out = letterbox(image, (200, 100))  # into (W, H) = (200, 100): 50 wide, 100 high, centred
    assert out.shape == (100, 200, 3)
    assert out[:, 75:125].min() == 255 and out[:, :75].max() == 0 and out[:, 125:].max() == 0


# --------------------------------------------------------------------------------------------------
# Boxes and detection files
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, field", [
    ('[{"image_id": 0, "bbox": [NaN, 1, 10, 10], "score": 0.9}]', "[0].bbox"),
    ('[{"image_id": 0, "bbox": [1, 1, Infinity, 10], "score": 0.9}]', "[0].bbox"),
    ('[{"image_id": 0, "bbox": [1, 1, 10, 10], "score": -Infinity}]', "[0].score"),
])  # fmt: skip
def test_detection_files_with_nan_or_infinity_are_refused(data, tmp_path, capsys, text, field):
    dets = tmp_path / "dets.json"
    dets.write_text(text)  # Python's json reads these literals; the file is still not valid data
    before = digest(dets, data)
    refused(run(capsys, "infer", data / "images" / "val" / val_json(data).stem, "-c", ASSETS / "tiny_baseline.pt",
                "--boxes", dets, "--json", tmp_path / "o.json", "--no-progress"), "infer", f"dets.json [{field}]",
            "finite")
    refused(run(capsys, "test", "-c", ASSETS / "tiny_baseline.pt", "--data", data, "--boxes", dets, "--out",
                tmp_path / "t", "--no-progress", "--device", "cpu"), "test", f"dets.json [{field}]", "finite")
    assert digest(dets, data) == before


def test_boxes_outside_the_image_of_zero_area_and_frames_without_people(data, tmp_path, capsys):
    frames = data / "images" / "val" / val_json(data).stem
    dets = [{"image_id": 0, "bbox": [-500, -500, 20, 20], "score": 0.9},  # wholly outside: dropped
            {"image_id": 1, "bbox": [100, 50, 0, 80], "score": 0.9},  # zero area: dropped
            {"image_id": 2, "bbox": [-30, -30, 150, 200], "score": 0.9},  # partly outside: kept whole
            {"image_id": 3, "bbox": [100, 50, 60, 120], "score": 0.1}]  # below --min-box-score: nobody
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    code, out, err = run(capsys, "infer", frames, "-c", ASSETS / "tiny_baseline.pt", "--boxes", tmp_path / "dets.json",
                         "--min-box-score", "0.5", "--no-propagate", "--json", tmp_path / "o.json", "--no-progress")
    assert code == 0, err
    assert "dropped 2 boxes" in out
    video = read_posetrack18(tmp_path / "o.json")
    assert len(video.frames) == 12 and [len(f.persons) for f in video.frames] == [0, 0, 1] + [0] * 9
    np.testing.assert_allclose(video.frames[2].persons[0].box, [-30, -30, 150, 200])


# --------------------------------------------------------------------------------------------------
# Annotation and prediction files through the evaluator (gaps left by test_evaluation)
# --------------------------------------------------------------------------------------------------
NAN = float("nan")  # json.dumps writes the literal NaN, which Python's json reads back


def _with(d: dict, **changes: object) -> str:
    return json.dumps({**d, **changes})


def _first_annotation(d: dict, **changes: object) -> list[dict]:
    return [{k: v for k, v in {**d["annotations"][0], **changes}.items() if v is not None}]


@pytest.mark.parametrize("damage, field, words", [
    (lambda d: _with(d, annotations=_first_annotation(d, keypoints=[NAN] + d["annotations"][0]["keypoints"][1:])),
     ".keypoints]", "expected finite numbers, found NaN"),
    (lambda d: "", "", "file is empty"),
    (lambda d: _with(d, categories=[{**d["categories"][0], "keypoints": d["categories"][0]["keypoints"][:-1] + ["x"]}]),
     " [categories[0].keypoints]", "'right_ankle' is not among"),
    (lambda d: _with(d, images=d["images"] + d["images"][:1]), " [images[12].id]", "duplicate image id"),
    (lambda d: _with(d, annotations=_first_annotation(d, keypoints="many")), ".keypoints]",
     "expected a list of numbers, got string"),
    (lambda d: _with(d, annotations=_first_annotation(d, keypoints=d["annotations"][0]["keypoints"][:-3])),
     ".keypoints]", "expected 51 numbers, got 48"),
    (lambda d: _with(d, annotations=_first_annotation(d, image_id=None)), " [annotations[0].image_id]",
     "missing required key"),
    (lambda d: _with(d, annotations=_first_annotation(d, track_id="seven")), ".track_id]", "expected an integer"),
])  # fmt: skip
def test_malformed_prediction_files(data, tmp_path, capsys, damage, field, words):
    gt_dir = data / "annotations" / "val"
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    pred = pred_dir / val_json(data).name
    pred.write_text(damage(json.loads(val_json(data).read_text())))
    before = digest(gt_dir, pred_dir)
    err = refused(run(capsys, "evaluate", "--gt", gt_dir, "--pred", pred_dir, "--quiet"), "evaluate", str(pred), words)
    assert field in err
    assert digest(gt_dir, pred_dir) == before


def test_evaluate_output_path_problems_are_found_before_evaluating(data, tmp_path, capsys):
    gt_dir = data / "annotations" / "val"
    before = digest(gt_dir)
    refused(run(capsys, "evaluate", "--gt", gt_dir, "--pred", gt_dir, "--json", gt_dir / "ap.json", "--quiet"),
            "evaluate", "refusing to write into an input folder")
    (tmp_path / "a_file").write_text("x")
    refused(run(capsys, "evaluate", "--gt", gt_dir, "--pred", gt_dir, "--json", tmp_path / "a_file" / "ap.json",
                "--quiet"), "evaluate", "a_file/ap.json", "a_file is a file, not a folder")
    assert digest(gt_dir) == before and (tmp_path / "a_file").read_text() == "x"


# --------------------------------------------------------------------------------------------------
# Output paths that cannot be written (tests run as root, so chmod cannot make a folder read-only here:
# a path under an existing *file*, or under /proc, is unwritable for root too)
# --------------------------------------------------------------------------------------------------
def test_unwritable_outputs_fail_before_the_first_frame(data, tmp_path, capsys, monkeypatch):
    import diffpose.inference.sources as sources

    decoded = []
    monkeypatch.setattr(sources, "read_rgb", lambda path: decoded.append(path) or read_rgb(path))
    (tmp_path / "a_file").write_text("x")
    infer = ("infer", val_json(data), "-c", ASSETS / "tiny_baseline.pt", "--boxes", "gt", "--no-progress")
    for option in ("--json", "--coco", "--render", "--render-frames"):
        refused(run(capsys, *infer, option, tmp_path / "a_file" / "out"), "infer", "a_file is a file, not a folder")
    refused(run(capsys, *infer, "--json", "/proc/diffpose_out.json"), "infer", "/proc/diffpose_out.json",
            "cannot write here")
    assert decoded == [] and (tmp_path / "a_file").read_text() == "x"
    refused(run(capsys, "test", "-c", ASSETS / "tiny_baseline.pt", "--data", data, "--out", tmp_path / "a_file" / "t",
                "--no-progress", "--device", "cpu"), "test", "a_file is a file, not a folder")
    refused(run(capsys, "synth", tmp_path / "a_file" / "st", "--videos", "1", "--frames", "2", "--workers", "1",
                "--quiet"), "synth", "a_file is a file, not a folder")
    refused(run(capsys, "synth", "/proc/diffpose_synth", "--videos", "1", "--frames", "2", "--workers", "1",
                "--quiet"), "synth", "/proc/diffpose_synth", "cannot write here")


def test_checkpoint_loads_after_the_refusals(tmp_path):
    """The checks above must not reject good files: the bundled checkpoints still load."""
    for name in ("tiny_baseline.pt", "tiny_diffpose.pt"):
        assert "model" in load_checkpoint(ASSETS / name)
