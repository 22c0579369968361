"""Is a dataset root complete? SynthTrack outputs say so themselves; real PoseTrack roots are taken as given.

``diffpose synth`` writes ``ROOT/synthtrack.incomplete`` first and ``ROOT/synthtrack.json`` (the manifest)
last, removing the marker after it. A root holding the marker, or a manifest that cannot be read, is a
SynthTrack output whose generation was interrupted: every reader of a dataset (``train``, ``test``,
``infer`` on a sequence, ``evaluate``) refuses it with the command that regenerates it. A complete root's
split folders must hold the sequences its manifest lists. A root with neither file (PoseTrack) is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffpose.errors import DataFormatError

MANIFEST = "synthtrack.json"
INCOMPLETE = "synthtrack.incomplete"


def regenerate_hint(root: Path) -> str:
    return f"regenerate it with: diffpose synth {root} --force"


def check_dataset_root(root: str | Path, split: str | None = None) -> None:
    """Refuse a SynthTrack root whose generation did not finish (see the module docstring)."""
    root = Path(root)
    if (root / INCOMPLETE).exists():
        raise DataFormatError(f"incomplete SynthTrack output (its generation was interrupted: {INCOMPLETE} is there, "
                              f"{MANIFEST} is not); {regenerate_hint(root)}", root)
    manifest = root / MANIFEST
    if not manifest.exists():
        return
    try:
        doc = json.loads(manifest.read_text())
        splits = doc["splits"] if doc.get("dataset") == "SynthTrack" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise DataFormatError(f"damaged SynthTrack manifest; {regenerate_hint(root)}", manifest) from None
    if splits is None or split is None or not isinstance(splits, dict) or split not in splits:
        return
    listed = splits[split].get("sequences") if isinstance(splits[split], dict) else None
    if not isinstance(listed, list):
        return
    folder = root / "annotations" / split
    found = sorted(p.stem for p in folder.glob("*.json"))
    if sorted(map(str, listed)) != found:
        missing = sorted(set(map(str, listed)) - set(found))
        raise DataFormatError(f"split {split!r} holds {len(found)} annotation files, {MANIFEST} lists {len(listed)}"
                              + (f" (missing e.g. {missing[0]}.json)" if missing else "") + f"; "
                              f"{regenerate_hint(root)}", folder)
