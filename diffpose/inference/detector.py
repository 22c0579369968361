"""The built-in person detector: a COCO Faster R-CNN from torchvision, person class only.

:class:`PersonDetector` is a box provider (``detector(frame) -> Boxes``, origin ``"detector"``) and also
detects on a batch of frames (:meth:`PersonDetector.detect`). The models are torchvision's, built as
torchvision builds them and given torchvision's COCO weights (:data:`DETECTORS`):

* from a local state-dict file (``weights=FILE``: the ``.pth`` torchvision downloads, or any raw / ``{"model":
  ...}`` / ``{"state_dict": ...}`` dict of tensors for that architecture), read with ``weights_only=True``;
* else from torch.hub's cache (``<torch.hub.get_dir()>/checkpoints/<file of the weights URL>``, by default
  ``~/.cache/torch/hub/checkpoints``), the file torchvision itself would use, downloaded there (checked
  against the hash in its name) if missing;
* or none at all (``pretrained=False``: random weights, for tests and timing).

Frames are RGB uint8 ``(H, W, 3)`` of any size, never modified; torchvision's own transform resizes them
(shorter side to ``min_size``, longer side at most ``max_size``) and maps the boxes back. Boxes come out as
``(x, y, w, h, score)`` in the frame's pixels, in torchvision's (and COCO's) continuous coordinates where the
image spans ``[0, W] x [0, H]`` -- the frame detection files use, which
:class:`~diffpose.inference.boxes.DetectionFileBoxes` reads unchanged -- clipped to the image, with
``score >= min_score``, after class-agnostic NMS over the person boxes, sorted by decreasing score.

torchvision takes 1.5 to 2 s to import, so :mod:`diffpose.inference` does not import this module: import it
as ``from diffpose.inference.detector import PersonDetector``.
"""

from __future__ import annotations

import pickle
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision
from torchvision.models import WeightsEnum
from torchvision.models.detection import (
    FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
    FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    FasterRCNN_ResNet50_FPN_V2_Weights,
    fasterrcnn_mobilenet_v3_large_320_fpn,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
)

from diffpose.checkpoint import first_sentence, refusal_message, resolve_device
from diffpose.errors import DiffPoseError
from diffpose.inference.boxes import Boxes
from diffpose.inference.sources import SourceFrame
from diffpose.io_utils import missing_reason

PERSON = 1  # COCO category id of "person" (torchvision's label 1)
WEIGHTS_FIELD = "--detector-weights"


@dataclass(frozen=True)
class DetectorModel:
    """One built-in detector: our name, torchvision's builder and COCO weights, and box AP on COCO val2017."""

    name: str
    builder: Callable[..., torch.nn.Module]
    weights: WeightsEnum
    description: str
    coco_box_ap: float  # torchvision's docs (``weights.meta["_metrics"]["COCO-val2017"]["box_map"]``)

    @property
    def url(self) -> str:
        return str(self.weights.url)


DETECTORS: tuple[DetectorModel, ...] = (
    DetectorModel("frcnn-r50", fasterrcnn_resnet50_fpn_v2, FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
                  "Faster R-CNN ResNet-50 FPN v2: accurate (the default; best on a GPU)", 46.7),
    DetectorModel("frcnn-mobilenet", fasterrcnn_mobilenet_v3_large_fpn,
                  FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
                  "Faster R-CNN MobileNetV3-Large FPN: lighter, for CPUs", 32.8),
    DetectorModel("frcnn-mobilenet-320", fasterrcnn_mobilenet_v3_large_320_fpn,
                  FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
                  "the same at 320 px: fastest on a CPU, misses small people", 22.8),
)
DEFAULT_DETECTOR = "frcnn-r50"


def detector_model(name: str) -> DetectorModel:
    """The table entry called ``name``, or a one-line error listing the choices."""
    for model in DETECTORS:
        if model.name == name:
            return model
    raise DiffPoseError(f"unknown detector {name!r} (choose from {', '.join(m.name for m in DETECTORS)})",
                        field="--detector")


def person_boxes(output: Mapping[str, torch.Tensor], min_score: float, nms_iou: float) -> np.ndarray:
    """One image's torchvision detections (``boxes`` (N, 4) ``x1, y1, x2, y2``, ``labels`` (N,), ``scores``
    (N,)) -> ``(M, 5)`` float64 ``(x, y, w, h, score)`` person boxes: label 1 only, finite, ``score >=
    min_score``, ``w, h > 0``, then class-agnostic NMS at ``nms_iou`` (a box overlapping a higher-scored kept
    box with IoU > ``nms_iou`` is dropped); sorted by decreasing score."""
    boxes, labels, scores = output["boxes"], output["labels"], output["scores"]
    keep = (labels == PERSON) & (scores >= min_score) & torch.isfinite(scores) & torch.isfinite(boxes).all(dim=1)
    keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores = boxes[keep], scores[keep]
    order = torchvision.ops.nms(boxes, scores, nms_iou)  # indices of the kept boxes, by decreasing score
    xyxy = boxes[order].detach().to("cpu", torch.float64).numpy()
    rows = np.empty((len(xyxy), 5), dtype=np.float64)
    rows[:, :2] = xyxy[:, :2]
    rows[:, 2:4] = xyxy[:, 2:] - xyxy[:, :2]
    rows[:, 4] = scores[order].detach().to("cpu", torch.float64).numpy()
    return rows


def read_weights(path: str | Path, model: DetectorModel) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (raw, or under ``"model"`` / ``"state_dict"``), read with ``weights_only``."""
    path = Path(path)
    if not path.is_file():
        raise DiffPoseError(f"{model.name} weights: {missing_reason(path)}", path, WEIGHTS_FIELD)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ... on other files
        if isinstance(e, pickle.UnpicklingError) and re.search(r"GLOBAL [\w.]+", str(e)):
            reason = refusal_message(e)  # a pickled class or function: refused before it runs
        else:
            found = re.search(r"WeightsUnpickler error: (.+?)(?: Check the documentation|$)", " ".join(str(e).split()))
            reason = f"cannot be read as a PyTorch file: {found.group(1) if found else first_sentence(e)}"
        raise DiffPoseError(f"not {model.name} weights: {reason}", path, WEIGHTS_FIELD) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else "an empty dict"
        raise DiffPoseError(f"not {model.name} weights: expected a state dict of tensors, found {what}", path,
                            WEIGHTS_FIELD)
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DiffPoseError(f"not {model.name} weights: expected a state dict of tensors, found {len(bad)} "
                            f"non-tensor entries, e.g. {bad[0]!r}", path, WEIGHTS_FIELD)
    return obj


def check_state_dict(state: Mapping[str, torch.Tensor], net: torch.nn.Module, model: DetectorModel,
                     path: str | Path) -> None:
    """A one-line error unless ``state`` has exactly ``net``'s keys and shapes (BatchNorm's
    ``num_batches_tracked`` may be absent: torchvision's own files come from frozen batch norm)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k!r} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and state[k].shape != own[k].shape]
    problems = [f"{len(items)} {what if len(items) == 1 else plural}, e.g. {items[0]}"
                for what, plural, items in (("missing key", "missing keys", [repr(k) for k in missing]),
                                            ("unexpected key", "unexpected keys", [repr(k) for k in unexpected]),
                                            ("shape mismatch", "shape mismatches", mismatched)) if items]
    if problems:
        raise DiffPoseError(f"not {model.name} weights ({model.builder.__name__}): {'; '.join(problems)}", path,
                            WEIGHTS_FIELD)


def cached_weights_path(model: DetectorModel) -> Path:
    """Where torchvision keeps ``model``'s COCO weights: torch.hub's checkpoint cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(model.url).path).name


def fetch_weights(model: DetectorModel, progress: bool = True) -> Path:
    """The cached weights file of ``model``, downloaded into torch.hub's cache first if missing (hash checked).

    No network and no cached file -> one line saying both ways out.
    """
    target = cached_weights_path(model)
    if target.is_file():
        return target
    if progress:
        print(f"downloading the {model.name} detector weights from {model.url} to {target}", file=sys.stderr)
    found = torch.hub.HASH_REGEX.search(target.name)  # torchvision's names end in -<sha256 prefix>.pth
    hash_prefix = found.group(1) if found else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(model.url, str(target), hash_prefix, progress=progress)
    except (OSError, RuntimeError) as e:  # URLError / HTTPError / timeouts are OSErrors; a bad hash a RuntimeError
        raise DiffPoseError(
            f"cannot download the {model.name} detector weights ({type(e).__name__}: {first_sentence(e)}) and "
            f"they are not in torch.hub's cache {target.parent}: download {model.url} on a machine with internet "
            f"and copy it there, or give the file with {WEIGHTS_FIELD} FILE", field="--detector") from None
    return target


class PersonDetector:
    """A torchvision COCO detector that returns person boxes.

    Args:
        model: a name in :data:`DETECTORS` (``frcnn-r50``, ``frcnn-mobilenet``, ``frcnn-mobilenet-320``).
        weights: a local state-dict file; None: torchvision's COCO weights from torch.hub's cache (downloaded
            there if missing).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        min_score: person boxes scoring below this are dropped (also the model's own score threshold).
        nms_iou: IoU above which the lower-scored of two person boxes is dropped (also the model's NMS).
        min_size, max_size: torchvision's resize (shorter side to ``min_size``, longer side at most
            ``max_size``); None: the model's default (800 / 1333, or 320 / 640 for ``frcnn-mobilenet-320``).
        pretrained: False builds the model with random weights (tests, timing); ``weights`` must then be None.
        progress: show the download's progress bar on stderr.
        frames_per_call: how many frames the streaming pipeline gives :meth:`many` at once (batched detection:
            worth it on a GPU; on the CPU one frame per call is as fast, see docs/speed.md).
    """

    def __init__(self, model: str = DEFAULT_DETECTOR, weights: str | Path | None = None,
                 device: str | torch.device = "cpu", min_score: float = 0.5, nms_iou: float = 0.5,
                 min_size: int | None = None, max_size: int | None = None, pretrained: bool = True,
                 progress: bool = True, frames_per_call: int = 1):
        self.spec = detector_model(model)
        if not 0.0 <= min_score <= 1.0:
            raise DiffPoseError(f"expected a detector min_score in [0, 1], got {min_score}")
        if not 0.0 < nms_iou <= 1.0:
            raise DiffPoseError(f"expected a detector nms_iou in (0, 1], got {nms_iou}")
        if weights is not None and not pretrained:
            raise ValueError("weights given with pretrained=False")
        self.min_score, self.nms_iou = float(min_score), float(nms_iou)
        self.frames_per_call = max(1, int(frames_per_call))
        self.device = device if isinstance(device, torch.device) else resolve_device(device, field="--device")
        sizes = {k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None}
        # num_classes=91 (COCO) without any download; the model's own thresholds match ours, so its
        # per-class NMS is already ours on person boxes and fewer boxes reach the post-processing
        self.model = self.spec.builder(weights=None, weights_backbone=None, num_classes=91,
                                       box_score_thresh=self.min_score, box_nms_thresh=self.nms_iou, **sizes)
        self.weights_path: Path | None = None
        if pretrained:
            self.weights_path = Path(weights) if weights is not None else fetch_weights(self.spec, progress)
            state = read_weights(self.weights_path, self.spec)
            check_state_dict(state, self.model, self.spec, self.weights_path)
            try:
                self.model.load_state_dict(state, strict=True)
            except RuntimeError as e:  # anything the key/shape check above did not foresee
                raise DiffPoseError(f"not {self.spec.name} weights: {first_sentence(e)}", self.weights_path,
                                    WEIGHTS_FIELD) from None
        self.model.eval().requires_grad_(False).to(self.device)
        self.name = f"detector {self.spec.name}"

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person boxes of each frame of a batch: RGB uint8 ``(H, W, 3)`` frames (sizes may differ) -> per
        frame an ``(N, 5)`` float64 array of ``(x, y, w, h, score)``, sorted by decreasing score."""
        tensors = [self._tensor(image, i) for i, image in enumerate(images)]
        if not tensors:
            return []
        with torch.inference_mode():
            outputs = self.model(tensors)
            return [person_boxes(out, self.min_score, self.nms_iou) for out in outputs]

    def __call__(self, frame: SourceFrame) -> Boxes:
        return self.many([frame])[0]

    def many(self, frames: Sequence[SourceFrame]) -> list[Boxes]:
        """The person boxes of several frames, detected in one batch (origin ``"detector"``)."""
        return [Boxes(rows[:, :4].copy(), rows[:, 4].copy(), "detector")
                for rows in self.detect([frame.image for frame in frames])]

    def _tensor(self, image: np.ndarray, i: int) -> torch.Tensor:
        """``(3, H, W)`` float32 in ``[0, 1]`` on the device, from a copy (the frame itself stays untouched)."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            what = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                    else type(image).__name__)
            raise DiffPoseError(f"expected an RGB uint8 (H, W, 3) image, got a {what}", field=f"{self.name} image {i}")
        return torch.tensor(image, device=self.device).permute(2, 0, 1).float().div_(255.0)

    def __repr__(self) -> str:
        return (f"PersonDetector({self.spec.name!r}, weights={str(self.weights_path) if self.weights_path else None!r}"
                f", device={str(self.device)!r}, min_score={self.min_score}, nms_iou={self.nms_iou})")
