"""Arguments every command spells the same way, so a new command gets them for free.

* a checkpoint: ``-c/--checkpoint CKPT`` (``test`` and ``export`` also accept it positionally, the spelling
  of version 0.1, with a note on stderr, until the next release);
* a config: ``--preset NAME`` (default ``tiny``), ``--config YAML``, ``--set KEY=VALUE [KEY=VALUE ...]``
  (``train`` also accepts bare ``KEY=VALUE`` arguments, the spelling of version 0.1, with a note);
* sampling: ``--steps``, ``--ensemble``, ``--combine``, ``--eta``, defaulting to the checkpoint's values;
* ``--device``, ``--seed``, ``--batch-size``, ``--no-progress`` (``--quiet`` is kept as an alias).

Each ``add_*`` function adds a group of arguments to a parser; the matching ``*_from_args`` function reads
them back.

One way to check an option: a numeric option declares its accepted values in its ``type`` (:func:`number`, or
:func:`config_number` for an option that sets a config field, whose range the field declares), so argparse
refuses a bad value while parsing, before any work, in one line (:class:`OneLineParser`):
``diffpose infer: error: argument --steps: 0 is out of range, expected >= 1``. What ties options together
(``--boxes`` or ``--detector``, not both) is checked by the command, with a :class:`~diffpose.errors.DiffPoseError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from typing import Any

from diffpose.config import COMBINE_MODES, PRESETS, SEED_MAX, Config, SamplingConfig, check_device_name, load_config
from diffpose.config_ranges import describe_range, in_range
from diffpose.errors import DiffPoseError

DEFAULT_PRESET = "tiny"
LEGACY = "the spelling of diffpose 0.1; it will stop working in the next release"


def note(command: str, text: str) -> None:
    """A one-line note on stderr (deprecated spellings, settings a model ignores)."""
    print(f"diffpose {command}: note: {text}", file=sys.stderr)


class UsageError(DiffPoseError):
    """A command line argparse refuses; ``prog`` is the command (``diffpose infer``)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing its usage and exiting, so that its
    errors are one line, ``diffpose COMMAND: error: ...``, like every other error (``--help`` still exits)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


def number(kind: type = int, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(text)``, finite, within ``lo``..``hi`` (None: unbounded; ``*_open``: strict)."""
    meta = {"range": (lo, hi), "open": (lo_open, hi_open)} if lo is not None or hi is not None else {}

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if meta and not in_range(value, meta):
            raise argparse.ArgumentTypeError(f"{value} is out of range, expected {describe_range(meta)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def config_number(cls: type, name: str) -> Callable[[str], Any]:
    """An argparse ``type`` for an option that sets field ``name`` of config dataclass ``cls``: the field's type
    and the range its metadata declares (:func:`~diffpose.config_ranges.ranged_field`)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    kind = float if f.type in (float, "float") else int
    lo, hi = f.metadata.get("range", (None, None))
    lo_open, hi_open = f.metadata.get("open", (False, False))
    return number(kind, lo, hi, lo_open=lo_open, hi_open=hi_open)


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
    g.add_argument("--steps", type=config_number(SamplingConfig, "steps"), help="DDIM steps S")
    g.add_argument("--ensemble", type=config_number(SamplingConfig, "ensemble"),
                   help="hypotheses K per person; the uncertainty is their spread")
    g.add_argument("--combine", choices=COMBINE_MODES, help="how hypotheses combine: heatmap mean, keypoint median "
                   "medoid (per joint the hypothesis nearest the others) or peak (the most confident one)")
    g.add_argument("--eta", type=config_number(SamplingConfig, "eta"), help="DDIM noise (0 deterministic, 1 DDPM-like)")


def sampling_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling settings the user gave (those left out come from the checkpoint). Their ranges were checked
    while parsing; the rules that involve the checkpoint's config when the predictor takes them
    (:func:`~diffpose.config.with_sampling`)."""
    return {k: getattr(args, k) for k in ("steps", "ensemble", "combine", "eta") if getattr(args, k) is not None}


def warn_unused_sampling(args: argparse.Namespace, samples: bool) -> None:
    """A note when sampling settings were given for a model that does not sample."""
    given = sampling_from_args(args)
    if given and not samples:
        flags = ", ".join(f"--{k}" for k in given)
        note(args.command, f"this model does not sample (single pass): {flags} ignored")


# ------------------------------------------------------------------------------------------------ common
def device_name(text: str) -> str:
    """An argparse ``type`` for ``--device``: auto, cpu, cuda or cuda:N (whether it is present is checked when the
    device is used, :func:`~diffpose.checkpoint.resolve_device`)."""
    try:
        return check_device_name(text, "--device")
    except DiffPoseError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--device: ")) from None


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device_name, default="auto",
                   help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")


def add_seed(p: argparse.ArgumentParser, what: str = "the sampling noise") -> None:
    p.add_argument("--seed", type=number(int, 0, SEED_MAX), default=0,
                   help=f"seed of {what}, 0 to {SEED_MAX} (default 0)")


def add_batch_size(p: argparse.ArgumentParser, default: int = 32) -> None:
    p.add_argument("--batch-size", type=number(int, 1), default=default,
                   help=f"person clips per model call (default {default})")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")
