"""A whole training run: train, write ``final.pt``, optionally score the validation split, summarise."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from diffpose.checkpoint import save_checkpoint
from diffpose.config import Config, config_to_dict
from diffpose.data.clip_dataset import load_split
from diffpose.engine.run_folder import RunLock, check_run_folder
from diffpose.engine.tester import evaluate_split
from diffpose.engine.trainer import Trainer, TrainResult
from diffpose.estimators import Predictor, load_estimator
from diffpose.io_utils import atomic_write_json


def write_final(trainer: Trainer, path: Path) -> Path:
    """Model weights (EMA when enabled) and the resolved config: what ``diffpose test`` / ``infer`` load."""
    weights = trainer.ema.state_dict() if trainer.ema is not None else trainer.model.state_dict()
    return save_checkpoint({"config": config_to_dict(trainer.cfg), "model": weights, "step": trainer.step}, path)


def _json_number(x: float, digits: int) -> float | None:
    """``x`` rounded, or None when it is not finite (JSON has no NaN)."""
    return round(float(x), digits) if math.isfinite(x) else None


def train_and_finish(cfg: Config, out_dir: str | Path, resume: bool = False, validate: bool = False,
                     progress: bool = True, overwrite: bool = False) -> tuple[TrainResult, dict[str, Any] | None]:
    """Run :class:`Trainer` to the end; on the main process write ``final.pt`` and ``summary.json``.

    The run folder is checked first (:func:`~diffpose.engine.run_folder.check_run_folder`: another live run, or a
    run already there without ``resume`` / ``overwrite``, is refused) and locked while training. Resuming a
    finished run does nothing and says so.
    """
    out_dir = Path(out_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        check_run_folder(out_dir, resume, overwrite)
    if validate and cfg.data.root:
        load_split(cfg.data.root, cfg.data.val_split)  # --val with a missing split fails now, not after training
    lock = RunLock(out_dir) if main else None
    try:
        trainer = Trainer(cfg, out_dir, progress=progress)
        trainer.claim_folder(lock, new_run=not resume, overwrite=overwrite)
        if resume:
            trainer.resume()
        if resume and trainer.step >= trainer.total_steps and (out_dir / "final.pt").is_file():
            if trainer.ctx.is_main:
                print(f"{out_dir}: this run is already finished (step {trainer.step} of {trainer.total_steps}); "
                      "nothing to resume, final.pt and summary.json are left as they are")
            return TrainResult(out_dir, trainer.step, 0.0, 0.0, float("nan")), None
        result = trainer.run()
        val = None
        if trainer.ctx.is_main:
            final = write_final(trainer, out_dir / "final.pt")
            if validate:
                predictor = Predictor(load_estimator(final, trainer.ctx.device), trainer.ctx.device)
                with torch.inference_mode():
                    ap = evaluate_split(predictor, cfg.data.root, cfg.data.val_split, out_dir / "val",
                                        progress=progress)
                val = ap.to_json()
                print(f"validation AP ({ap.frames_evaluated} frames, {predictor.sampling_summary()}):")
                print(ap.table())
            summary = {"steps": result.steps, "train_seconds": _json_number(result.seconds, 1),
                       "samples_per_second": _json_number(result.samples_per_second, 2),
                       "final_loss": _json_number(result.final_loss, 8), "val": val}
            atomic_write_json(summary, out_dir / "summary.json", indent=2)
            print(f"trained {result.steps} steps in {result.seconds:.0f} s ({result.samples_per_second:.1f} "
                  f"samples/s); wrote {final}")
        return result, val
    finally:
        if lock is not None:
            lock.release()
