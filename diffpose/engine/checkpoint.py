"""Checkpoints that survive crashes: everything needed to resume bit-for-bit, written atomically.

A training checkpoint is a plain dict of tensors and Python primitives, saved with ``torch.save`` to a
temporary file and renamed over the target (a kill, a full disk or a power cut leaves the previous
checkpoint intact), and loaded with ``torch.load(..., weights_only=True)``: a checkpoint that carries
pickled code is refused.

Keys: ``format`` (version tag), ``config`` (the resolved config dict), ``model`` (state dict), and for
training checkpoints ``optimizer``, ``scheduler``, ``scaler``, ``ema``, ``step``, ``epoch``,
``rng`` (torch CPU/CUDA generator states and the trainer's noise generator), ``metrics``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from diffpose.errors import DiffPoseError
from diffpose.io_utils import atomic_write_with

FORMAT = "diffpose-checkpoint-v1"


class CheckpointError(DiffPoseError):
    """A checkpoint file is missing, truncated, unsafe or of another model."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format tag) atomically."""
    state = {"format": FORMAT, **state}
    return atomic_write_with(lambda f: torch.save(state, f), path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), with a one-line error for every failure mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist" if not path.exists() else "is not a file", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError("refused: the file holds pickled objects other than tensors and plain data "
                              f"(weights_only load failed: {first[:160]})", path) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot be read (truncated or not a PyTorch checkpoint): {text[:160]}", path) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"expected a dict, found {type(state).__name__}", path)
    return state


def model_state(checkpoint: dict[str, Any], path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The model state dict of a diffpose checkpoint (or of a raw / ``state_dict``-wrapped one)."""
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError("no model weights found (expected a 'model' or 'state_dict' entry)", path)


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device) and an optional generator's state."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
