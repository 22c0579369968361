"""Signals and partial outputs, media outputs, silent empties, through the CLI.

* SIGTERM during ``diffpose synth`` stops its worker processes and exits 130; the partial output carries
  ``synthtrack.incomplete`` and no manifest, so ``train`` / ``test`` refuse it naming ``diffpose synth DIR
  --force``, which then replaces it. A complete SynthTrack root whose split lost a file is refused; a root
  without any SynthTrack file (PoseTrack) is read as a plain PoseTrack root.
* An export whose parity check fails writes nothing; ``infer --onnx`` refuses a folder without a manifest, a
  truncated graph ("not a valid ONNX graph").
* A rendered video that does not read back (OpenCV's writer silently losing frames, as on a full disk) is an
  error and the previous video is kept.
* Detection boxes dropped by category, score or area are counted by reason (a warning), and dropping all
  of them is an error; an ensemble too large for memory is refused with the estimate.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from diffpose.data.clip_dataset import load_split
from diffpose.data.dataset_root import INCOMPLETE, MANIFEST
from tests.helpers import ASSETS, digest, refused, run, val_json

pytestmark = pytest.mark.usefixtures("one_thread")
CKPT = ASSETS / "tiny_baseline.pt"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in state  # a zombie has stopped running


# --------------------------------------------------------------------------------------------------
# synth: SIGTERM, partial outputs, the manifest
# --------------------------------------------------------------------------------------------------
def test_sigterm_during_synth_stops_the_workers_and_the_partial_output_is_refused(tmp_path, capsys):
    out = tmp_path / "st"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "diffpose", "synth", str(out), "--videos", "8", "--frames", "30",
                             "--workers", "2", "--no-progress"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and not (out / "images").exists():
        time.sleep(0.1)
    while time.time() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.1)
    assert (out / INCOMPLETE).exists() and workers, "synth did not start"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130, proc.stderr.read()
    assert "interrupted" in proc.stderr.read()
    gone_by = time.time() + 15  # the workers get SIGTERM with the parent; give a loaded machine time to reap them
    while time.time() < gone_by and not all(_gone(pid) for pid in workers):
        time.sleep(0.1)
    assert all(_gone(pid) for pid in workers), "worker processes still running"
    assert (out / INCOMPLETE).exists() and not (out / MANIFEST).exists()

    before = digest(out)
    refused(run(capsys, "train", "--data", out, "--out", tmp_path / "run", "--no-progress"), "train",
            "incomplete SynthTrack output", f"diffpose synth {out} --force")
    refused(run(capsys, "test", "-c", CKPT, "--data", out, "--out", tmp_path / "t", "--no-progress"), "test",
            "incomplete SynthTrack output")
    refused(run(capsys, "synth", out, "--no-progress"), "synth", "incomplete", "--force")
    assert digest(out) == before and not (tmp_path / "run").exists()
    code, _, err = run(capsys, "synth", out, "--force", "--videos", "1", "--val-videos", "1", "--frames", "4",
                       "--workers", "1", "--no-progress")
    assert code == 0, err
    assert (out / MANIFEST).is_file() and not (out / INCOMPLETE).exists()
    assert len(load_split(out, "train")) == 1


def test_a_synthtrack_split_missing_a_listed_sequence_is_refused(data, tmp_path, capsys):
    val_json(data).unlink()
    refused(run(capsys, "test", "-c", CKPT, "--data", data, "--out", tmp_path / "t", "--no-progress"), "test",
            "split 'val' holds 0 annotation files, synthtrack.json lists 1", "--force")


def test_a_damaged_manifest_is_refused_and_a_posetrack_root_without_one_is_read(data, tmp_path, capsys):
    (data / MANIFEST).write_text("{not json")
    refused(run(capsys, "evaluate", "--gt", data / "annotations" / "val", "--pred", data / "annotations" / "val",
                "--no-progress"), "evaluate", "damaged SynthTrack manifest")
    (data / MANIFEST).unlink()  # a real PoseTrack root has no manifest: accepted
    assert len(load_split(data, "val")) == 1
    code, _, err = run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", "gt", "--json", tmp_path / "o.json",
                       "--no-progress")
    assert code == 0, err


# --------------------------------------------------------------------------------------------------
# export and infer --onnx
# --------------------------------------------------------------------------------------------------
def test_an_export_failing_its_parity_check_writes_nothing(data, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "onnx"
    refused(run(capsys, "export", "-c", CKPT, "--onnx", folder, "--tolerance", "1e-30"), "export",
            "differ from PyTorch", "nothing was written")
    assert not list(folder.iterdir())  # no graph, no manifest, no temporary folder
    refused(run(capsys, "infer", val_json(data), "--onnx", folder, "--boxes", "gt", "--json", tmp_path / "o.json"),
            "infer", "not an exported diffpose model")


def test_infer_onnx_refuses_a_truncated_graph(exported, data, tmp_path, capsys):
    folder = Path(shutil.copytree(exported, tmp_path / "onnx"))
    graph = folder / "backbone.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    args = ("infer", val_json(data), "--onnx", folder, "--boxes", "gt", "--json", tmp_path / "o.json",
            "--no-progress")
    refused(run(capsys, *args), "infer", "not a valid ONNX graph", "truncated")
    manifest = json.loads((folder / "diffpose_onnx.json").read_text())
    del manifest["bytes"]  # an export without sizes: onnxruntime's own refusal, in one line
    (folder / "diffpose_onnx.json").write_text(json.dumps(manifest))
    refused(run(capsys, *args), "infer", "not a valid ONNX graph")
    assert not (tmp_path / "o.json").exists()


# --------------------------------------------------------------------------------------------------
# rendered video verified before it replaces the old one
# --------------------------------------------------------------------------------------------------
class LosingWriter:
    """cv2.VideoWriter that silently stops storing frames after 2 (what a full disk does to OpenCV's writer)."""

    real = cv2.VideoWriter

    def __init__(self, *args):
        self.writer, self.count = self.real(*args), 0

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.writer.isOpened()

    def write(self, frame):
        self.count += 1
        if self.count <= 2:
            self.writer.write(frame)

    def release(self):
        self.writer.release()


def test_a_rendered_video_that_does_not_read_back_keeps_the_old_one(data, tmp_path, capsys, monkeypatch):
    video = tmp_path / "out.mp4"
    args = ("infer", val_json(data), "-c", CKPT, "--boxes", "gt", "--render", video, "--no-progress")
    code, _, err = run(capsys, *args)
    assert code == 0, err
    good = video.read_bytes()
    monkeypatch.setattr(cv2, "VideoWriter", LosingWriter)
    refused(run(capsys, *args), "infer", "does not read back", "2 of 12 frames", "the previous file is kept")
    assert video.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".mp4"] == ["out.mp4"]  # no temporary file left


# --------------------------------------------------------------------------------------------------
# detections: dropped boxes counted; all dropped is an error. Ensembles too large for memory
# --------------------------------------------------------------------------------------------------
def _dets(root: Path, category: int = 1, score: float = 0.9) -> list[dict]:
    doc = json.loads(val_json(root).read_text())
    return [{"image_id": a["image_id"], "bbox": a["bbox"], "score": score, "category_id": category}
            for a in doc["annotations"]]


def test_detections_all_dropped_is_an_error_naming_the_reasons(data, tmp_path, capsys):
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(_dets(data, category=2)[:3] + _dets(data, score=0.1)[:2]))
    before = digest(dets)
    refused(run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", dets, "--min-box-score", "0.5", "--json",
                tmp_path / "o.json", "--no-progress"), "infer", "all 5 boxes dropped",
            "3 not a person (category_id != 1)", "2 score below 0.5")
    refused(run(capsys, "test", "-c", CKPT, "--data", data, "--boxes", dets, "--min-box-score", "0.5", "--out",
                tmp_path / "t", "--no-progress"), "test", "all 5 boxes dropped")
    assert digest(dets) == before and not (tmp_path / "o.json").exists()


def test_some_detections_dropped_is_a_warning(data, tmp_path, capsys):
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(_dets(data) + _dets(data, category=3)[:2]))
    code, _, err = run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", dets, "--json", tmp_path / "o.json",
                       "--no-progress")
    assert code == 0, err
    assert "warning:" in err and "dropped 2 of" in err and "2 not a person" in err


def test_an_ensemble_too_large_for_memory_is_refused_with_the_estimate(data, tmp_path, capsys):
    refused(run(capsys, "infer", val_json(data), "-c", ASSETS / "tiny_diffpose.pt", "--boxes", "gt", "--ensemble",
                "100000000", "--json", tmp_path / "o.json", "--no-progress"), "infer",
            "100000000 hypotheses per person need about", "GiB", "lower --ensemble")
    assert not (tmp_path / "o.json").exists()
