"""``diffpose train``: one readable training loop for every model kind.

The same code runs one CPU process, one GPU, or N processes under ``torchrun`` (DDP; NCCL or gloo).
Per optimiser step:

1. every process takes its contiguous share of the global batch (:class:`EpochBatchSampler`);
2. the random draws of the *whole* global batch (``estimator.training_noise``: for DiffPose ``t`` and the
   noise) come from a generator seeded by ``(seed, step)`` and each process slices its share, so N processes
   compute exactly the gradients of one process on the whole batch (BatchNorm layers, in ViTPose's heads, use
   each process's own batch statistics); the loss is the estimator's own
   (``estimator.loss``), whatever the model kind;
3. AdamW (backbone lr or layer decay), linear warm-up + cosine decay, gradient clipping, optional EMA,
   mixed precision on CUDA.

Checkpoints (``last.pt``) hold model, optimiser, scheduler, scaler, EMA, step, epoch, RNG states and the
resolved config; they are written atomically every ``train.checkpoint_every`` steps and at each epoch end,
so a killed run resumed with ``--resume`` ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from diffpose.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from diffpose.config import Config, config_from_dict, config_to_dict, save_config
from diffpose.data.clip_dataset import ClipDataset, gt_items, load_split
from diffpose.data.images import opencv_before_fork
from diffpose.data.transforms import Augmentation
from diffpose.engine.distributed import DistContext, EpochBatchSampler, all_reduce_mean, init_distributed
from diffpose.engine.run_folder import RunLock, clear_run
from diffpose.engine.tester import evaluate_split
from diffpose.engine.training_utils import MetricsLog, ModelEMA, warmup_cosine
from diffpose.errors import DiffPoseError
from diffpose.estimators import PoseEstimator, Predictor, build_estimator
from diffpose.io_utils import ensure_dir
from diffpose.models.optim import param_groups


@dataclass
class TrainResult:
    """What a finished run reports."""

    out_dir: Path
    steps: int
    seconds: float
    samples_per_second: float
    final_loss: float
    val: dict[str, Any] | None = None


# What --resume may change (everything else must be what last.pt was written with): how long the run goes (the
# schedule's cosine then spans the new length), how often it logs, saves and validates, data loading, the device
# (the state moves onto it), the sampling of validation and final.pt, and data.root spelled differently (the
# same folder). All of them act from the next step on and are saved with every later checkpoint.
RESUME_MAY_CHANGE = ("train.epochs", "train.max_steps", "train.log_every", "train.checkpoint_every",
                     "train.val_every", "train.device", "data.workers", "sampling.steps", "sampling.eta",
                     "sampling.ensemble", "sampling.combine")

RESUME_KEYS = ("config", "model", "optimizer", "scheduler", "scaler", "step", "epoch", "rng")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return {k.removesuffix("."): v for k, v in out.items()}


def _same_folder(a: Any, b: Any) -> bool:
    try:
        return isinstance(a, str) and isinstance(b, str) and bool(a) and Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def check_resume_config(saved: Any, cfg: Config, path: Path) -> None:
    """Refuse to resume from a checkpoint whose config differs from ``cfg`` outside :data:`RESUME_MAY_CHANGE`, in
    one line naming the keys (their values there and now): the optimiser, schedule and EMA of last.pt were made
    with its settings, and a checkpoint must say what ran."""
    if not isinstance(saved, dict):
        raise DiffPoseError(f"expected a config dict, found {type(saved).__name__}", path, "config")
    try:
        before = _flat(config_to_dict(config_from_dict(saved)))  # an older checkpoint's keys upgraded
    except DiffPoseError as e:
        raise DiffPoseError(f"its config cannot be used: {e}", path, "config") from None
    now = _flat(config_to_dict(cfg))
    changed = [k for k in now if before.get(k) != now[k] and k not in RESUME_MAY_CHANGE
               and not (k == "data.root" and _same_folder(before.get(k), now[k]))]
    if changed:
        sections = sorted({k.split(".")[0] for k in changed}, key=[k.split(".")[0] for k in now].index)
        shown = "; ".join(f"{k} is {before.get(k)!r} there, {now[k]!r} now" for k in changed[:3])
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise DiffPoseError(f"last.pt was written with a different {' and '.join(sections)} config: {shown}{more}; "
                            "resume with the settings the run was started with (its config.yaml), or start a new "
                            "run with --overwrite", path, "config")


def step_generator(cfg: Config, step: int) -> torch.Generator:
    """The CPU generator of the random draws of optimiser step ``step`` (same in every process)."""
    return torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)


def quiet_worker(_: int) -> None:
    """Data-loading workers use one thread each, leaving the cores to the model (OpenCV is single-threaded
    already: see :func:`~diffpose.data.images.opencv_before_fork`)."""
    torch.set_num_threads(1)


def training_items(cfg: Config) -> tuple[list[Any], list[Any]]:
    """The videos of ``data.train_split`` and their labelled persons; an error when there are none, or when
    periodic validation is on and ``data.val_split`` cannot be read (it fails now, not after an epoch)."""
    if not cfg.data.root:
        raise DiffPoseError("no dataset root given (data.root or --data)", field="data.root")
    videos = load_split(cfg.data.root, cfg.data.train_split)
    layouts = sorted({v.layout.name for v in videos} - {cfg.model.layout})
    if layouts:
        raise DiffPoseError(f"the training data has {layouts[0]} joints, the model predicts {cfg.model.layout} "
                            f"(model.layout); train with model.layout={layouts[0]}", field="model.layout")
    items = gt_items(videos)
    if not items:
        split = cfg.data.train_split
        raise DiffPoseError(f"no training samples: no labelled frame of split {split!r} has a person with a "
                            "labelled joint", Path(cfg.data.root) / "annotations" / split)
    if cfg.train.val_every > 0:
        load_split(cfg.data.root, cfg.data.val_split)
    return videos, items


class Trainer:
    """Data, model, optimiser and schedule of one run, built from a config; :meth:`run` trains.

    Constructing reads the dataset's annotations and checks that every frame the clips need exists (a
    half-downloaded dataset fails before anything is written) but writes nothing. The run folder is claimed
    with :meth:`claim_folder` (lock, ``--overwrite``) and an interrupted run continued with :meth:`resume`;
    :func:`~diffpose.engine.run.train_and_finish` does both in that order.
    """

    def __init__(self, cfg: Config, out_dir: str | Path, progress: bool = True, ctx: DistContext | None = None):
        self.cfg, self.out_dir, self.progress = cfg, Path(out_dir), progress
        self.ctx = ctx or init_distributed(cfg.train.device)
        torch.manual_seed(cfg.train.seed)
        videos, items = training_items(cfg)
        self.estimator: PoseEstimator = build_estimator(cfg)
        self.model = self.estimator.net
        self.dataset = ClipDataset(videos, cfg.data.root, items, self.estimator.codec, self.estimator.offsets,
                                   cfg.data.box_enlarge, Augmentation(), seed=cfg.train.seed)
        self.estimator.to(self.ctx.device)
        self.sampler = EpochBatchSampler(len(self.dataset), cfg.train.batch_size, self.ctx, cfg.train.seed)
        bb = cfg.model.backbone
        groups = param_groups(self.model, cfg.train.lr, cfg.train.weight_decay, cfg.train.backbone_lr, bb.layer_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr)
        self.total_steps = cfg.train.epochs * self.sampler.batches_per_epoch
        if cfg.train.max_steps:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.total_steps, cfg.train.warmup_steps, cfg.train.min_lr_ratio))
        cuda = self.ctx.device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16) if cuda \
            else None
        self.use_amp = cfg.train.amp and cuda
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.ema = ModelEMA(self.model, cfg.train.ema) if cfg.train.ema > 0 else None
        self.net = DistributedDataParallel(self.model, device_ids=[self.ctx.device.index] if cuda else None) \
            if self.ctx.distributed else self.model
        self.step, self.epoch = 0, 0
        self.log: MetricsLog | None = None  # opened by run()

    def claim_folder(self, lock: RunLock | None, new_run: bool = True, overwrite: bool = False) -> None:
        """Create the run folder and take its lock (main process only).

        Args:
            lock: the folder's lock; one train per run folder (a stale lock is taken over with a note).
            new_run: refuse, under the lock, a run that appeared since ``check_run_folder`` (another train
                finished meanwhile); False when resuming or overwriting.
            overwrite: delete the previous run's files (with a note).
        """
        if not self.ctx.is_main:
            return
        ensure_dir(self.out_dir)
        if lock is not None:
            lock.acquire(check_run=new_run and not overwrite)
        if overwrite:
            removed = clear_run(self.out_dir)
            if removed:
                print(f"diffpose train: note: --overwrite removed the previous run's {', '.join(removed)}",
                      file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "rng": rng_state(),
        }

    def save(self) -> None:
        """Write ``last.pt`` atomically; if that fails (a full disk), the previous ``last.pt`` stays as it was."""
        if not self.ctx.is_main:
            return
        path = self.out_dir / "last.pt"
        try:
            save_checkpoint(self.state(), path)
        except DiffPoseError as e:
            reason = str(e).removeprefix(f"{path}: ")
            kept = "the previous last.pt is intact" if path.exists() else "no earlier checkpoint exists"
            raise DiffPoseError(f"checkpoint of step {self.step} not saved ({reason}); {kept}", path) from None

    def resume(self) -> None:
        """Continue from ``OUT/last.pt``: weights, optimiser, schedule, scaler, EMA, step, epoch and RNG states."""
        path = self.out_dir / "last.pt"
        if not path.exists():
            raise DiffPoseError("nothing to resume: no last.pt here (start without --resume)", self.out_dir)
        ckpt = load_checkpoint(path, map_location=self.ctx.device)
        missing = [k for k in RESUME_KEYS if k not in ckpt]
        if missing:
            hint = " (final.pt holds weights only; resume needs last.pt)" if "optimizer" in missing else ""
            raise DiffPoseError(f"not a training checkpoint: missing {', '.join(missing)}{hint}", path)
        check_resume_config(ckpt["config"], self.cfg, path)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None and ckpt.get("ema") is not None:
                self.ema.load_state_dict(ckpt["ema"])
            self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
            restore_rng_state(ckpt["rng"])
        except Exception as e:  # shapes or entries that do not fit although the config does (an edited file)
            text = " ".join(str(e).split())[:160] or type(e).__name__
            raise DiffPoseError(f"cannot resume from it: {type(e).__name__}: {text}", path) from None

    # ------------------------------------------------------------------------------------------ one step
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of this process's share of the current global batch."""
        dev = self.ctx.device
        local = {k: batch[k].to(dev, non_blocking=True) for k in ("frames", "heatmaps", "weights")}
        b = local["frames"].shape[0]  # (b, T, 3, H, W): this process's share
        lo = self.ctx.rank * b
        draws = self.estimator.training_noise(step_generator(self.cfg, self.step), self.cfg.train.batch_size)
        noise = {k: v[lo:lo + b].to(dev) for k, v in draws.items()}  # this process's rows of the global draws
        with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
            return self.estimator.loss(local, noise, forward=self.net)["loss"]

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        self.net.train()
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            last = self.out_dir / "last.pt"
            kept = f"last good checkpoint kept at {last}" if last.exists() else "no checkpoint was saved before it"
            raise DiffPoseError(f"loss is {loss.item()} at step {self.step}; stopping ({kept})", field="train")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return float(loss.detach())

    # ------------------------------------------------------------------------------------------ the loop
    def loader(self) -> DataLoader:
        workers = self.cfg.data.workers
        if workers:
            opencv_before_fork()
        return DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers,
                          pin_memory=self.ctx.device.type == "cuda", persistent_workers=False,
                          worker_init_fn=quiet_worker if workers else None)

    def _log(self, **values: Any) -> None:
        try:
            self.log.log(self.step, **values)
        except OSError as e:  # a full disk: stop here, the last checkpoint is intact
            raise DiffPoseError(f"cannot append the metrics of step {self.step}: {e.strerror or e}",
                                self.log.path) from None

    def _validate_if_due(self) -> None:
        """Every ``train.val_every`` epochs (not after the last: ``diffpose train --val`` scores ``final.pt``),
        score the weights ``final.pt`` would hold on the validation split and log ``val_total`` (and
        ``val_occluded``) to ``metrics.jsonl``. Predictions go to ``val_epoch<N>/``; only the main process runs."""
        every = self.cfg.train.val_every
        done = self.epoch + 1  # epochs completed
        if every <= 0 or done % every or self.step >= self.total_steps or not self.ctx.is_main:
            return
        estimator = build_estimator(self.cfg, load_weights=False, net=copy.deepcopy(self.model))
        if self.ema is not None:
            estimator.net.load_state_dict(self.ema.state_dict())
        predictor = Predictor(estimator, self.ctx.device)
        with torch.inference_mode():
            result = evaluate_split(predictor, self.cfg.data.root, self.cfg.data.val_split,
                                    self.out_dir / f"val_epoch{done}")
        values = {"val_total": result.total}
        if result.occluded is not None:
            values["val_occluded"] = result.occluded.groups()["Total"]
        self._log(epoch=self.epoch, **values)
        if self.progress:
            print(f"epoch {done}: validation Total AP {result.total:.1f}", flush=True)

    def run(self) -> TrainResult:
        """Train until ``train.epochs`` (or ``train.max_steps``); returns timing and the last loss."""
        if self.ctx.is_main:
            ensure_dir(self.out_dir)
            save_config(self.cfg, self.out_dir / "config.yaml")
        self.log = MetricsLog(self.out_dir, enabled=self.ctx.is_main)
        bar = None
        if self.progress and self.ctx.is_main:
            bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        start, seen, last_loss, window = time.perf_counter(), 0, float("nan"), []
        per_epoch = self.sampler.batches_per_epoch
        while self.step < self.total_steps:
            self.epoch = self.step // per_epoch
            self.dataset.set_epoch(self.epoch)
            self.sampler.set_epoch(self.epoch, start_batch=self.step - self.epoch * per_epoch)
            for batch in self.loader():
                last_loss = self.train_step(batch)
                window.append(last_loss)
                seen += self.cfg.train.batch_size
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last_loss:.5f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if self.step % self.cfg.train.log_every == 0 or self.step == self.total_steps:
                    elapsed = time.perf_counter() - start
                    self._log(epoch=self.epoch, loss=all_reduce_mean(sum(window) / len(window), self.ctx),
                              lr=self.scheduler.get_last_lr()[0], samples_per_s=seen / max(elapsed, 1e-9))
                    window = []
                if self.step % self.cfg.train.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save()
                if self.step >= self.total_steps:
                    break
            else:
                self.save()  # epoch end
                self._validate_if_due()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - start
        self.log.close()
        return TrainResult(self.out_dir, self.step, elapsed, seen / max(elapsed, 1e-9), last_loss)
