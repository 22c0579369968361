"""A whole training run: train, write ``final.pt``, optionally score the validation split, summarise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from diffpose.checkpoint import save_checkpoint
from diffpose.config import Config, config_to_dict
from diffpose.engine.tester import evaluate_split
from diffpose.engine.trainer import Trainer, TrainResult
from diffpose.estimators import Predictor, load_estimator
from diffpose.io_utils import atomic_write_text


def write_final(trainer: Trainer, path: Path) -> Path:
    """Model weights (EMA when enabled) and the resolved config: what ``diffpose test`` / ``infer`` load."""
    weights = trainer.ema.state_dict() if trainer.ema is not None else trainer.model.state_dict()
    return save_checkpoint({"config": config_to_dict(trainer.cfg), "model": weights, "step": trainer.step}, path)


def train_and_finish(cfg: Config, out_dir: str | Path, resume: bool = False, validate: bool = False,
                     progress: bool = True) -> tuple[TrainResult, dict[str, Any] | None]:
    """Run :class:`Trainer` to the end; on the main process write ``final.pt`` and ``summary.json``."""
    out_dir = Path(out_dir)
    trainer = Trainer(cfg, out_dir, resume=resume, progress=progress)
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
        summary = {"steps": result.steps, "train_seconds": round(result.seconds, 1),
                   "samples_per_second": round(result.samples_per_second, 2), "final_loss": result.final_loss,
                   "val": val}
        atomic_write_text(json.dumps(summary, indent=2) + "\n", out_dir / "summary.json")
        print(f"trained {result.steps} steps in {result.seconds:.0f} s ({result.samples_per_second:.1f} samples/s); "
              f"wrote {final}")
    return result, val
