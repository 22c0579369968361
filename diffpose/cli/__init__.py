"""The ``diffpose`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``; its one-line help is in
:data:`COMMANDS`. Only the module of the command being run is imported (``diffpose --help`` imports none, so
it stays fast however heavy the commands' imports are). Arguments every command spells the same way come
from :mod:`diffpose.cli.args`.
A :class:`~diffpose.errors.DiffPoseError` is printed as one line (``diffpose: error: ...``) with exit
status 2, never as a traceback (also when it was raised in a data-loading worker process).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import signal
import sys
import threading
from collections.abc import Sequence

from diffpose import __version__
from diffpose.cli.args import OneLineParser, UsageError
from diffpose.errors import DiffPoseError

# (command, module, one-line help): the order is the order of ``diffpose --help``.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "diffpose.cli.demo", "run the bundled model on a generated video: rendered video, JSON, AP vs the "
     "baseline"),
    ("evaluate", "diffpose.cli.evaluate", "score predictions with PoseTrack AP (poseval-exact)"),
    ("export", "diffpose.cli.export", "export a checkpoint as ONNX graphs for onnxruntime"),
    ("infer", "diffpose.cli.infer", "estimate and track poses in a video, a frame folder or a PoseTrack sequence"),
    ("model-info", "diffpose.cli.model_info", "parameter counts and GFLOPs of a preset; check a ViTPose backbone "
     "checkpoint"),
    ("synth", "diffpose.cli.synth", "generate the SynthTrack procedural video pose benchmark (PoseTrack18 format)"),
    ("train", "diffpose.cli.train", "train a model (DiffPose, temporal regression or the single-frame baseline)"),
    ("test", "diffpose.cli.test", "predict a split with a checkpoint and score it"),
)


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first argument that is not an option), if any."""
    names = {name for name, _, _ in COMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its arguments (all of them when ``argv`` is None)."""
    parser = OneLineParser(
        prog="diffpose",
        description="Video multi-person 2D pose estimation with a spatio-temporal diffusion model "
        "(DiffPose, ICCV 2023): data, training, evaluation and inference.",
    )
    parser.add_argument("--version", action="version", version=f"diffpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    chosen = None if argv is None else _chosen(argv)
    for name, module_name, help_line in COMMANDS:
        if argv is not None and name != chosen:
            sub.add_parser(name, help=help_line)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_line, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def one_line(error: DiffPoseError) -> str:
    """The error's message on one line.

    An error raised in a ``DataLoader`` worker process reaches the main process re-raised with the worker's
    traceback in its message; its last line (``diffpose.errors.DataFormatError: FILE: what``) holds the
    original message.
    """
    text = str(error).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1].strip()
    found = re.match(r"[\w.]*(?:Error|Exception): (.+)", last)
    return found.group(1) if found else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"{e.prog}: error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    previous = _terminate_as_interrupt()
    try:
        return int(args._run(args) or 0)
    except DiffPoseError as e:
        print(f"diffpose {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        print(f"diffpose {args.command}: error: {e.filename}: path too long for this system (a name longer than "
              "255 bytes, or the whole path longer than 4096); choose a shorter one", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: worker processes were stopped on the way out
        print(f"diffpose {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _terminate_as_interrupt() -> object:
    """SIGTERM raises KeyboardInterrupt, like Ctrl-C, so every ``finally`` runs: synth's worker pool is killed,
    DataLoader workers are shut down, temporary files are removed. Returns the previous handler (None when
    not on the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
