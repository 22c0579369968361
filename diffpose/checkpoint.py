"""Checkpoint files and the device they load onto (low level: used by the estimators, engine, export, CLI).

Checkpoints survive crashes: everything needed to resume bit-for-bit, written atomically.

A training checkpoint is a plain dict of tensors and Python primitives, saved with ``torch.save`` to a
temporary file and renamed over the target (a kill, a full disk or a power cut leaves the previous
checkpoint intact), and loaded with ``torch.load(..., weights_only=True)``: a checkpoint that carries
pickled code is refused.

Keys: ``format`` (version tag), ``config`` (the resolved config dict), ``model`` (state dict), and for
training checkpoints ``optimizer``, ``scheduler``, ``scaler``, ``ema``, ``step``, ``epoch``,
``rng`` (torch CPU/CUDA generator states and the trainer's noise generator), ``metrics``.

:func:`resolve_device` turns ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a ``torch.device`` (and
refuses every other device, and a CUDA device this machine does not have, in one line).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from diffpose.config import check_device_name
from diffpose.errors import DiffPoseError
from diffpose.io_utils import atomic_write_with, missing_reason

FORMAT = "diffpose-checkpoint-v1"


class CheckpointError(DiffPoseError):
    """A checkpoint file is missing, truncated, unsafe or of another model."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format tag) atomically."""
    state = {"format": FORMAT, **state}
    return atomic_write_with(lambda f: torch.save(state, f), path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), with a one-line error for every failure mode.

    A file that holds pickled Python objects other than tensors and plain data (a class, ``os.system``, ...)
    is refused before anything in it runs; a truncated, empty or foreign file is reported as unreadable.
    """
    path = Path(path)
    if not path.is_file():
        reason = missing_reason(path)
        raise CheckpointError("checkpoint file does not exist" if reason == "file does not exist" else reason, path)
    if path.stat().st_size == 0:
        raise CheckpointError("checkpoint file is empty", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(refusal_message(e), path) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError, zipfile.BadZipFile, ... on bad files
        raise CheckpointError(f"cannot be read (truncated, corrupt or not a PyTorch checkpoint): {first_sentence(e)}",
                              path) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"expected a dict, found {type(state).__name__}", path)
    return state


def first_sentence(error: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message (torch's are paragraphs), or its type name."""
    text = " ".join(str(error).split())
    text = text.split(". ")[0].rstrip(".")
    if not text or text.isdigit():  # e.g. KeyError(101) from a text file
        text = f"{type(error).__name__}({text})" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refusal_message(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line naming the offending global."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    what = f" ({found.group(1)})" if found else ""
    return (f"refused: the file holds pickled Python objects{what} that could run code; only tensors and plain "
            "data are loaded (torch.load weights_only=True)")


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


def resolve_device(name: str, local_rank: int = 0, field: str = "train.device") -> torch.device:
    """``"auto"`` -> CUDA (this process's GPU) if available, else CPU; ``"cpu"``, ``"cuda"`` (this process's GPU)
    or ``"cuda:N"`` (N below the number of CUDA devices). Any other device (``meta``, ``mps``, ``xpu``, ...), or a
    CUDA device this machine does not have, is a one-line error naming ``field``."""
    check_device_name(name, field)
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DiffPoseError(f"device {name!r} requested but CUDA is not available", field=field)
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
        if device.index >= count:
            raise DiffPoseError(f"device {name!r} requested but this machine has {count} CUDA device"
                                f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})", field=field)
    return device


def free_memory(device: torch.device) -> int | None:
    """Bytes free for tensors on ``device`` (MemAvailable on Linux for the CPU), or None when unknown: what a
    model built from a config may use (:func:`diffpose.estimators.kinds.check_model_fits`) and what the
    predictor sizes its batches by."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, RuntimeError):
        return None
    return None
