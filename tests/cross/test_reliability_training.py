"""Training reliability through ``diffpose train``: no run loses a finished step, no file runs code.

* a NaN or infinite loss stops the run naming the step and keeps the last good ``last.pt``;
* a full disk while saving leaves the previous ``last.pt`` intact (the write is failed half-way, through
  the real ``torch.save`` and atomic-rename path), and ``--resume`` then finishes the run;
* ``--resume`` refuses a truncated ``last.pt``, one that carries pickled code (which never runs), a
  weights-only ``final.pt`` and one of another model config, each with one line and exit status 2;
* a half-downloaded dataset (a missing frame) fails before training; a cut-short frame fails with one
  line naming it, also when it is read in a data-loading worker process;
* a run folder that cannot be made, and a split without people, are one-line errors.

The bad-input catalogue of the other commands is test_reliability.py.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

import diffpose.checkpoint as checkpoint_module
from diffpose.checkpoint import load_checkpoint
from diffpose.config import load_config
from diffpose.engine.distributed import DistContext
from diffpose.engine.trainer import Trainer
from diffpose.errors import DiffPoseError
from tests.helpers import MICRO, CodePayload, digest, refused, run

BASE = [*MICRO, "model.kind=baseline", "train.checkpoint_every=1"]  # the smallest model trains fastest


pytestmark = pytest.mark.usefixtures("one_thread")


def train(capsys, root: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    """``diffpose train`` with ``extra`` flags (``--...``) and config overrides (``KEY=VALUE``)."""
    flags = [e for e in extra if e.startswith("--")]
    overrides = [e for e in extra if not e.startswith("--")]
    return run(capsys, "train", "--data", root, "--out", out, "--no-progress", *flags, "--set", *BASE, *overrides)


@pytest.fixture
def data(synth_small, tmp_path) -> Path:
    return Path(shutil.copytree(synth_small, tmp_path / "st"))


def train_frames(root: Path) -> list[str]:
    return [f["file_name"] for f in json.loads(next((root / "annotations" / "train").glob("*.json")).read_text())
            ["images"]]


# --------------------------------------------------------------------------------------------------
# Losses that are not finite
# --------------------------------------------------------------------------------------------------
def test_nan_loss_from_a_learning_rate_far_too_high_stops_and_keeps_the_last_checkpoint(synth_small, tmp_path, capsys):
    before = digest(synth_small)
    err = refused(train(capsys, synth_small, tmp_path / "run", "train.max_steps=6", "train.lr=1e30",
                        "train.backbone_lr=1e30", "train.warmup_steps=0"), "train", "loss is nan at step 1")
    assert f"last good checkpoint kept at {tmp_path / 'run' / 'last.pt'}" in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1
    assert not (tmp_path / "run" / "final.pt").exists()
    assert digest(synth_small) == before


def test_infinite_loss_stops_naming_the_step(synth_small, tmp_path, monkeypatch):
    cfg = load_config("tiny", overrides=[*BASE, f"data.root={synth_small}", "train.max_steps=5",
                                         "train.checkpoint_every=2"])
    trainer = Trainer(cfg, tmp_path, progress=False, ctx=DistContext())
    real_loss = trainer.loss
    monkeypatch.setattr(trainer, "loss", lambda batch: real_loss(batch) * (float("inf") if trainer.step == 3 else 1))
    with pytest.raises(DiffPoseError, match="loss is inf at step 3; stopping .last good checkpoint kept"):
        trainer.run()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


# --------------------------------------------------------------------------------------------------
# A full disk while saving
# --------------------------------------------------------------------------------------------------
class FullDisk:
    """A file that accepts ``room`` bytes, then fails every write with ENOSPC, as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.f.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def fill_disk_at_save(monkeypatch, number: int) -> list[int]:
    """Make checkpoint save ``number`` (1-based) fail half-way; returns the list of attempted saves."""
    real = checkpoint_module.atomic_write_with
    attempts: list[int] = []

    def writer_on_a_full_disk(write, path):
        attempts.append(1)
        if len(attempts) != number:
            return real(write, path)
        return real(lambda f: write(FullDisk(f, room=20_000)), path)

    monkeypatch.setattr(checkpoint_module, "atomic_write_with", writer_on_a_full_disk)
    return attempts


def test_disk_full_while_saving_keeps_the_previous_checkpoint_and_resume_finishes(synth_small, tmp_path, capsys,
                                                                                 monkeypatch):
    out = tmp_path / "run"
    fill_disk_at_save(monkeypatch, 3)  # saves after steps 1, 2, then 3 fails
    kept = {}
    real_save = Trainer.save

    def save_and_remember(self):
        if (out / "last.pt").exists():
            kept["bytes"] = (out / "last.pt").read_bytes()
        real_save(self)

    monkeypatch.setattr(Trainer, "save", save_and_remember)
    refused(train(capsys, synth_small, out, "train.max_steps=4"), "train",
            f"{out / 'last.pt'}: checkpoint of step 3 not saved (cannot write: No space left on device); "
            "the previous last.pt is intact")
    assert (out / "last.pt").read_bytes() == kept["bytes"]  # byte for byte the checkpoint of step 2
    assert load_checkpoint(out / "last.pt")["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "last.pt", "metrics.jsonl"]  # no temp file
    monkeypatch.undo()
    code, _, err = train(capsys, synth_small, out, "train.max_steps=4", "--resume")
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["step"] == 4 and (out / "final.pt").is_file()


def test_disk_full_on_the_first_save_says_no_checkpoint_exists(synth_small, tmp_path, monkeypatch):
    cfg = load_config("tiny", overrides=[*BASE, f"data.root={synth_small}", "train.max_steps=1"])
    trainer = Trainer(cfg, tmp_path, progress=False, ctx=DistContext())
    fill_disk_at_save(monkeypatch, 1)
    with pytest.raises(DiffPoseError, match="checkpoint of step 0 not saved .* no earlier checkpoint exists"):
        trainer.save()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# --resume with a checkpoint it must not use
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(synth_small, tmp_path_factory) -> Path:
    from diffpose.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--data", str(synth_small), "--out", str(out), "--no-progress", "--set", *BASE,
                 "train.max_steps=2"]) == 0
    return out


def test_resume_refuses_checkpoints_it_must_not_use(synth_small, finished_run, tmp_path, capsys):
    good = (finished_run / "last.pt").read_bytes()
    marker = tmp_path / "PAYLOAD_RAN"
    cases = {
        "truncated": (lambda p: p.write_bytes(good[: len(good) // 3]), "cannot be read (truncated"),
        "pickled code": (lambda p: torch.save({"model": CodePayload(marker)}, p), "refused: the file holds pickled"),
        "final.pt": (lambda p: p.write_bytes((finished_run / "final.pt").read_bytes()),
                     "not a training checkpoint: missing optimizer, scheduler, scaler, epoch, rng (final.pt holds"),
        "another config": (lambda p: p.write_bytes(good), "was written with a different model config"),
    }
    for name, (make, words) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        out.mkdir()
        make(out / "last.pt")
        before = digest(out, synth_small)
        extra = ["model.backbone.depth=2"] if name == "another config" else []
        refused(train(capsys, synth_small, out, "train.max_steps=3", *extra, "--resume"), "train",
                str(out / "last.pt"), words)
        assert digest(out, synth_small) == before  # last.pt untouched, nothing added
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------
# Datasets and run folders
# --------------------------------------------------------------------------------------------------
def test_half_downloaded_or_damaged_datasets(data, tmp_path, capsys):
    frames = train_frames(data)
    (data / frames[3]).unlink()
    before = digest(data)
    refused(train(capsys, data, tmp_path / "run", "train.max_steps=2"), "train", frames[3],
            "frame images these clips need are missing")
    assert not (tmp_path / "run").exists()  # found before the run folder was made
    assert digest(data) == before
    whole = (data / frames[4]).read_bytes()
    for name in frames:  # every frame cut short (the missing one back, cut short too): the first one read is named
        (data / name).write_bytes(whole[:1000])
    for workers in ("0", "1"):  # in the main process, and re-raised from a data-loading worker
        err = refused(train(capsys, data, tmp_path / f"run{workers}", "train.max_steps=2", f"data.workers={workers}"),
                      "train", "JPEG is cut short")
        assert any(name in err for name in frames), err


def test_run_folder_that_cannot_be_made_and_a_split_without_people(data, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "run"):
        refused(train(capsys, data, out, "train.max_steps=1"), "train", str(out), "a_file is a file, not a folder")
    assert (tmp_path / "a_file").read_text() == "x"
    for path in (data / "annotations" / "train").glob("*.json"):
        doc = json.loads(path.read_text())
        path.write_text(json.dumps({**doc, "annotations": []}))
    refused(train(capsys, data, tmp_path / "run", "train.max_steps=1"), "train", "annotations/train",
            "no training samples")
