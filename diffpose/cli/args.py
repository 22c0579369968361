"""Arguments every command spells the same way, so a new command gets them for free.

* a checkpoint: ``-c/--checkpoint CKPT`` (``test`` and ``export`` also accept it positionally, the spelling
  of version 0.1, with a note on stderr, until the next release);
* a config: ``--preset NAME`` (default ``tiny``), ``--config YAML``, ``--set KEY=VALUE [KEY=VALUE ...]``
  (``train`` also accepts bare ``KEY=VALUE`` arguments, the spelling of version 0.1, with a note);
* sampling: ``--steps``, ``--ensemble``, ``--combine``, ``--eta``, defaulting to the checkpoint's values;
* ``--device``, ``--seed``, ``--batch-size``, ``--no-progress`` (``--quiet`` is kept as an alias).

Each ``add_*`` function adds a group of arguments to a parser; the matching ``*_from_args`` function reads
them back, validating what argparse cannot.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from diffpose.config import COMBINE_MODES, PRESETS, Config, load_config
from diffpose.errors import DiffPoseError

DEFAULT_PRESET = "tiny"
LEGACY = "the spelling of diffpose 0.1; it will stop working in the next release"


def note(command: str, text: str) -> None:
    """A one-line note on stderr (deprecated spellings, settings a model ignores)."""
    print(f"diffpose {command}: note: {text}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ checkpoint
def add_checkpoint(p: argparse.ArgumentParser, required: bool = True, positional_alias: bool = False,
                   help: str = "a diffpose checkpoint (final.pt of diffpose train)") -> None:
    """``-c/--checkpoint CKPT``; with ``positional_alias`` a bare CKPT is accepted too (deprecated)."""
    p.add_argument("-c", "--checkpoint", metavar="CKPT", help=help + (" (required)" if required else ""))
    if positional_alias:
        p.add_argument("legacy_checkpoint", nargs="?", metavar="CKPT", help=argparse.SUPPRESS)
    p.set_defaults(_checkpoint_required=required)


def checkpoint_from_args(args: argparse.Namespace) -> str | None:
    """The checkpoint given with ``-c`` (or positionally, with a note); an error when required and missing."""
    given, legacy = args.checkpoint, getattr(args, "legacy_checkpoint", None)
    if legacy is not None:
        if given is not None:
            raise DiffPoseError("give the checkpoint once, with -c/--checkpoint")
        note(args.command, f"a positional checkpoint is {LEGACY}; write -c {legacy}")
        given = legacy
    if given is None and args._checkpoint_required:
        raise DiffPoseError("no checkpoint: give -c/--checkpoint CKPT")
    return given


# ------------------------------------------------------------------------------------------------ config
def add_config(p: argparse.ArgumentParser, positional_alias: bool = False) -> None:
    """``--preset``, ``--config YAML`` and ``--set KEY=VALUE ...``."""
    g = p.add_argument_group("configuration (preset, then YAML file, then --set, in that order)")
    g.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help=f"config preset (default {DEFAULT_PRESET}: sized for a CPU; paper: the paper's ViT-B/16)")
    g.add_argument("--config", metavar="YAML", help="YAML file of config values")
    g.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                   help="config overrides, e.g. --set train.lr=1e-4 model.kind=baseline (repeatable)")
    if positional_alias:
        p.add_argument("legacy_overrides", nargs="*", metavar="KEY=VALUE", help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace, extra: list[str] | tuple[str, ...] = ()) -> Config:
    """The config of ``--preset``, ``--config`` and ``--set`` (then ``extra`` overrides)."""
    overrides = list(args.overrides)
    legacy = list(getattr(args, "legacy_overrides", None) or [])
    if legacy:
        note(args.command, f"bare KEY=VALUE overrides are {LEGACY}; write --set {' '.join(legacy)}")
    return load_config(args.preset, args.config, [*legacy, *overrides, *extra])


# ------------------------------------------------------------------------------------------------ sampling
def add_sampling(p: argparse.ArgumentParser) -> None:
    """``--steps``, ``--ensemble``, ``--combine``, ``--eta``: default the checkpoint's ``sampling.*``."""
    g = p.add_argument_group("sampling (diffusion models; default: the checkpoint's own sampling settings)")
    g.add_argument("--steps", type=int, help="DDIM steps S")
    g.add_argument("--ensemble", type=int, help="hypotheses K per person; the uncertainty is their spread")
    g.add_argument("--combine", choices=COMBINE_MODES, help="how hypotheses combine: heatmap mean, keypoint median "
                   "medoid (per joint the hypothesis nearest the others) or peak (the most confident one)")
    g.add_argument("--eta", type=float, help="DDIM noise (0 deterministic, 1 DDPM-like)")


def sampling_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling settings the user gave (those left out come from the checkpoint), range-checked."""
    given = {k: getattr(args, k) for k in ("steps", "ensemble", "combine", "eta") if getattr(args, k) is not None}
    for key in ("steps", "ensemble"):
        if key in given:
            at_least(given[key], f"--{key}", 1)
    if "eta" in given:
        at_least(given["eta"], "--eta", 0.0)
    return given


def warn_unused_sampling(args: argparse.Namespace, samples: bool) -> None:
    """A note when sampling settings were given for a model that does not sample."""
    given = sampling_from_args(args)
    if given and not samples:
        flags = ", ".join(f"--{k}" for k in given)
        note(args.command, f"this model does not sample (single pass): {flags} ignored")


# ------------------------------------------------------------------------------------------------ common
def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")


def add_seed(p: argparse.ArgumentParser, what: str = "the sampling noise") -> None:
    p.add_argument("--seed", type=int, default=0, help=f"seed of {what} (default 0)")


def add_batch_size(p: argparse.ArgumentParser, default: int = 32) -> None:
    p.add_argument("--batch-size", type=int, default=default, help=f"person clips per model call (default {default})")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")


def batch_size_from_args(args: argparse.Namespace) -> int:
    """``--batch-size``, checked to be >= 1."""
    return int(at_least(args.batch_size, "--batch-size", 1))


def positive(value: int | float, flag: str) -> int | float:
    """``value`` if it is a finite number > 0, else a one-line error naming ``flag``."""
    if not (math.isfinite(value) and value > 0):
        raise DiffPoseError(f"{flag}: {value} is out of range, expected > 0", field=flag)
    return value


def at_least(value: int | float, flag: str, low: int | float, high: int | float | None = None) -> int | float:
    """``value`` if it is finite and ``low <= value`` (``<= high``), else one line naming ``flag`` and the range."""
    ok = math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        expected = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise DiffPoseError(f"{flag}: {value} is out of range, expected {expected}", field=flag)
    return value


def finite(value: float | None, flag: str) -> float | None:
    """``value`` (or None) if it is a finite number, else one line naming ``flag``."""
    if value is not None and not math.isfinite(value):
        raise DiffPoseError(f"{flag}: {value} is not a finite number", field=flag)
    return value
