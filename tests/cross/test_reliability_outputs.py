"""Outputs that never damage inputs, and inputs that never end in a traceback.

Every output path is resolved before any work: an output equal to an input file or inside an input folder
(a dataset root, an annotation split) is refused; a FIFO, a device or a socket is refused and left as it was;
a symlink is written through (its target is replaced atomically, the link stays a link). Symlink loops,
deeply nested JSON and a truncated checkpoint behind a link are one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.helpers import ASSETS, digest, refused, run, val_json

pytestmark = pytest.mark.usefixtures("one_thread")
CKPT = ASSETS / "tiny_baseline.pt"


def infer(capsys, root: Path, *out: object):
    return run(capsys, "infer", val_json(root), "-c", CKPT, "--boxes", "gt", "--no-progress", *out)


def test_test_out_inside_the_dataset_is_refused(data, tmp_path, capsys):
    before = digest(data)
    for out in (data / "annotations" / "val", data, data / "annotations" / "val" / "res", data / "images"):
        refused(run(capsys, "test", "-c", CKPT, "--data", data, "--out", out, "--no-progress"), "test",
                "refusing to write over or into an input", "--out")
    assert digest(data) == before
    assert not (data / "annotations" / "val" / "ap.json").exists()


def test_test_out_that_is_the_checkpoint_is_refused(data, tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    shutil.copy(CKPT, ckpt)
    refused(run(capsys, "test", "-c", ckpt, "--data", data, "--out", ckpt, "--no-progress"), "test",
            "is one of the inputs")
    assert digest(ckpt)[str(ckpt)] == digest(CKPT)[str(CKPT)]


def test_train_out_inside_the_dataset_is_refused(data, capsys):
    before = digest(data)
    refused(run(capsys, "train", "--data", data, "--out", data / "annotations" / "run", "--no-progress"), "train",
            "inside the input folder")
    assert digest(data) == before and not (data / "annotations" / "run").exists()


def test_infer_json_among_the_sequence_annotations_is_refused(data, capsys):
    before = digest(data)
    target = data / "annotations" / "val" / "pred.json"
    refused(infer(capsys, data, "--json", target), "infer", "refusing to write over or into an input")
    assert digest(data) == before and not target.exists()


def test_json_through_a_symlink_replaces_the_target_and_keeps_the_link(data, tmp_path, capsys):
    real = tmp_path / "elsewhere" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    code, _, err = infer(capsys, data, "--json", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["images"]  # the target holds the result
    assert not [p for p in real.parent.iterdir() if p.name != "real.json"]  # no temporary file left


@pytest.mark.parametrize("flag", ["--json", "--coco", "--render"])
def test_a_fifo_output_is_refused_and_left_a_fifo(flag, data, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(infer(capsys, data, flag, fifo), "infer", str(fifo), "is a FIFO (named pipe), not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_device_output_is_refused(data, tmp_path, capsys):
    refused(infer(capsys, data, "--json", "/dev/null"), "infer", "is a character device")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    gt = data / "annotations" / "val"
    refused(run(capsys, "evaluate", "--gt", gt, "--pred", gt, "--json", "/dev/null", "--no-progress"),
            "evaluate", "is a character device")


def test_a_symlink_loop_output_is_a_one_line_error(data, tmp_path, capsys):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    refused(infer(capsys, data, "--json", loop), "infer", "cannot resolve")


def test_symlink_loop_inputs_are_one_line_errors(data, tmp_path, capsys):
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    refused(run(capsys, "test", "-c", loop, "--data", data, "--out", tmp_path / "t", "--no-progress"), "test",
            "cannot resolve")
    refused(run(capsys, "infer", loop, "-c", CKPT, "--boxes", "gt", "--json", tmp_path / "o.json", "--no-progress"),
            "infer", "cannot resolve")
    refused(infer(capsys, data, "-c", loop, "--json", tmp_path / "o.json"), "infer", "cannot resolve")
    refused(run(capsys, "train", "--data", data, "--out", tmp_path / "r", "--config", loop, "--no-progress"),
            "train", "cannot resolve")
    dets = tmp_path / "dets.json"
    dets.symlink_to(dets)
    refused(run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", dets, "--json", tmp_path / "o.json",
                "--no-progress"), "infer", "cannot resolve")


def test_deeply_nested_json_is_a_one_line_error(data, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", deep, "--json", tmp_path / "o.json",
                "--no-progress"), "infer", str(deep), "nested too deeply")
    gt = val_json(data)
    before = digest(data)
    gt.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(infer(capsys, data, "--json", tmp_path / "o.json"), "infer", "nested too deeply")
    refused(run(capsys, "test", "-c", CKPT, "--data", data, "--out", tmp_path / "t", "--no-progress"), "test",
            "nested too deeply")
    assert digest(data) != before  # (we damaged it ourselves); the commands wrote nothing
    assert not (tmp_path / "o.json").exists()
