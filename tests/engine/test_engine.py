"""Training engine: DDP gradient parity (2 gloo processes vs 1), kill-and-resume, NaN stop, test runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from diffpose.checkpoint import load_checkpoint
from diffpose.cli import main as cli_main
from diffpose.config import load_config
from diffpose.engine.distributed import DistContext
from diffpose.engine.trainer import Trainer, step_generator
from diffpose.errors import DiffPoseError
from tests.helpers import MICRO

NO_PRIOR = ["model.decoder.prior_head=false", "model.decoder.residual=false", "diffusion.start=noise"]


def micro_config(root: Path, *extra: str):
    return load_config("tiny", overrides=[*MICRO, f"data.root={root}", *extra])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grads_of_first_step(trainer: Trainer) -> dict[str, torch.Tensor]:
    trainer.dataset.set_epoch(0)
    trainer.sampler.set_epoch(0)
    batch = next(iter(trainer.loader()))
    trainer.optimizer.zero_grad()
    trainer.loss(batch).backward()
    return {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from diffpose.engine.distributed import init_distributed, shutdown_distributed

    ctx = init_distributed("cpu")
    trainer = Trainer(micro_config(Path(root), *NO_PRIOR), Path(out) / f"rank{rank}", progress=False, ctx=ctx)
    grads = _grads_of_first_step(trainer)  # DDP all-reduces (averages) the gradients in backward
    if rank == 0:
        torch.save(grads, Path(out) / "ddp_grads.pt")
    shutdown_distributed()


def test_two_gloo_processes_average_to_the_single_process_gradient(synth_small, tmp_path):
    # without the prior head: its BatchNorm (ViTPose's head) takes each process's own batch statistics
    single = Trainer(micro_config(synth_small, *NO_PRIOR), tmp_path / "single", progress=False, ctx=DistContext())
    expected = _grads_of_first_step(single)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(synth_small), str(tmp_path)), nprocs=2,
                       join=True, start_method="spawn")
    got = torch.load(tmp_path / "ddp_grads.pt", weights_only=True)
    assert got.keys() == expected.keys() and len(got) > 20
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name
    assert any(g.abs().sum() > 0 for g in expected.values())


def _train_cmd(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "diffpose", "train", "--preset", "tiny", "--data", str(root), "--out", str(out),
            "--no-progress", "--set", *MICRO, "train.max_steps=30", "train.checkpoint_every=1", *extra]


def test_killed_and_resumed_run_ends_with_the_same_weights(synth_small, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(synth_small, tmp_path / "full"), check=True, env=env, capture_output=True)
    victim = subprocess.Popen(_train_cmd(synth_small, tmp_path / "cut"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    last = tmp_path / "cut" / "last.pt"
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and victim.poll() is None:
        if last.exists():
            step = int(load_checkpoint(last)["step"])
            if step >= 5:
                victim.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    victim.wait()
    assert killed_at is not None and killed_at < 30, "the run finished before it could be killed"
    assert not (tmp_path / "cut" / "final.pt").exists()
    subprocess.run(_train_cmd(synth_small, tmp_path / "cut", "--resume"), check=True, env=env, capture_output=True)
    a = load_checkpoint(tmp_path / "full" / "final.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "final.pt")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 30


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synth_small, tmp_path, monkeypatch):
    cfg = micro_config(synth_small, "train.max_steps=6", "train.checkpoint_every=2")
    trainer = Trainer(cfg, tmp_path, progress=False, ctx=DistContext())
    real_loss = trainer.loss

    def sometimes_nan(batch):
        loss = real_loss(batch)
        return loss * float("nan") if trainer.step == 3 else loss

    monkeypatch.setattr(trainer, "loss", sometimes_nan)
    with pytest.raises(DiffPoseError, match="at step 3"):
        trainer.run()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2  # the last good one, intact


def test_resume_refuses_another_model(synth_small, tmp_path):
    Trainer(micro_config(synth_small, "train.max_steps=1"), tmp_path, progress=False, ctx=DistContext()).run()
    with pytest.raises(DiffPoseError, match="different model config"):
        Trainer(micro_config(synth_small, "model.backbone.depth=2"), tmp_path, progress=False,
                ctx=DistContext()).resume()


@pytest.mark.parametrize("kind", ["diffpose", "baseline"])
def test_train_then_test_writes_predictions_the_evaluator_reads(synth_small, tmp_path, kind, capsys):
    out = tmp_path / "run"
    assert cli_main(["train", "--data", str(synth_small), "--out", str(out), "--no-progress", "--set", *MICRO,
                     "train.max_steps=3", f"model.kind={kind}"]) == 0
    assert (out / "config.yaml").is_file() and (out / "metrics.jsonl").is_file()
    for steps, ensemble in ((1, 1), (2, 3)):
        test_out = tmp_path / f"test_{steps}_{ensemble}"
        assert cli_main(["test", "-c", str(out / "final.pt"), "--data", str(synth_small), "--out", str(test_out),
                         "--steps", str(steps), "--ensemble", str(ensemble), "--no-progress", "--device", "cpu"]) == 0
        preds = sorted((test_out / "predictions").glob("*.json"))
        gts = sorted((synth_small / "annotations" / "val").glob("*.json"))
        assert [p.name for p in preds] == [g.name for g in gts]
        assert (test_out / "ap.json").is_file()
    text = capsys.readouterr().out
    assert "Total" in text and "AP occluded" in text


def test_val_every_scores_the_validation_split_between_epochs(synth_small, tmp_path):
    cfg = micro_config(synth_small, "train.epochs=3", "train.val_every=2", "model.kind=baseline")
    trainer = Trainer(cfg, tmp_path, progress=False, ctx=DistContext())
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_total" in r]
    per_epoch = trainer.sampler.batches_per_epoch
    assert [r["step"] for r in val] == [2 * per_epoch]  # after epoch 2; not after the last (3), --val does that
    assert 0.0 <= val[0]["val_total"] <= 100.0 and "val_occluded" in val[0]
    gts = sorted(p.name for p in (synth_small / "annotations" / "val").glob("*.json"))
    assert sorted(p.name for p in (tmp_path / "val_epoch2" / "predictions").glob("*.json")) == gts
    assert not (tmp_path / "val_epoch1").exists() and not (tmp_path / "val_epoch3").exists()


def test_val_every_with_a_missing_validation_split_fails_before_training(synth_small, tmp_path):
    cfg = micro_config(synth_small, "train.val_every=1", "data.val_split=nosuch")
    with pytest.raises(DiffPoseError, match="nosuch"):
        Trainer(cfg, tmp_path / "run", progress=False, ctx=DistContext())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["diffpose", "baseline"])
def test_the_trainer_minimises_the_estimators_own_loss(synth_small, tmp_path, kind):
    """One training loss: the trainer's step loss is the estimator's loss on the step's seeded draws."""
    trainer = Trainer(micro_config(synth_small, f"model.kind={kind}"), tmp_path, progress=False, ctx=DistContext())
    trainer.dataset.set_epoch(0)
    trainer.sampler.set_epoch(0)
    batch = next(iter(trainer.loader()))
    trainer.step = 7
    draws = trainer.estimator.training_noise(step_generator(trainer.cfg, 7), trainer.cfg.train.batch_size)
    expected = trainer.estimator.loss({k: batch[k] for k in ("frames", "heatmaps", "weights")}, draws)["loss"]
    assert torch.equal(trainer.loss(batch), expected)
    assert batch["frames"].shape[1] == trainer.estimator.num_frames == (5 if kind == "diffpose" else 1)
