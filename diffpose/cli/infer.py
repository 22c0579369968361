"""Estimate and track the poses of everyone in a video with a checkpoint; write JSON and a rendered video.

INPUT is a video file (anything OpenCV decodes), a folder of frames (natural name order) or a PoseTrack18
per-video JSON file, whose image paths are read relative to --root (default: the JSON's grandparent's
parent, i.e. ROOT in ROOT/annotations/<split>/<seq>.json). Frames are decoded one at a time and only a
window of 2*delta+1 of them is kept, so memory does not grow with the video.

-c CKPT is a diffpose checkpoint (final.pt of `diffpose train`) or a published ViTPose checkpoint as it is
distributed: an mmpose .pth (ViTPose-S/B/L/H, classic or simple head), a Hugging Face transformers VitPose
folder or its .safetensors file. A ViTPose predicts COCO's 17 joints: --coco writes them in COCO order, and
--json writes PoseTrack18's joints with the two COCO lacks (head_bottom, head_top) absent.

Person boxes (without --boxes or --detector, the built-in detector finds the people):
  (built-in)            a COCO Faster R-CNN from torchvision, person class only: frcnn-r50 (accurate; the
                        default on a GPU), frcnn-mobilenet (lighter; the default on the CPU) or
                        frcnn-mobilenet-320 (fastest); choose with --detector NAME. Its COCO weights come
                        through torchvision's own download and cache (~/.cache/torch/hub/checkpoints), or
                        from --detector-weights FILE (the same .pth, downloaded elsewhere) offline
  --boxes DET.json      a COCO/PoseTrack detection file; image_id is the 0-based frame index for a video or
                        a folder (or the frame's file name), the real image id for a PoseTrack sequence
  --boxes gt            the annotated persons of a PoseTrack sequence
  --detector MOD:FUNC   your function, imported by name: called with each frame as a read-only RGB uint8
                        (H, W, 3) numpy array, returns a list of (x, y, w, h, score in [0, 1]); [] = nobody
  --detect-every N      ask the box source only on frames 0, N, 2N, ... (default 1: every frame)
Frames the box source says nothing about (a detection file that does not list the frame, an unlabelled
annotation frame, the frames between --detect-every frames) get boxes propagated from the previous frame's
poses (box of the joints scoring >= --propagate-score, scaled 1.3), unless --no-propagate. Boxes that are
not finite, have no area or miss the image are dropped and counted; a box partly outside the image is kept
whole (not clipped), as in training.

Feature reuse (models that read several frames; on by default): every person crop of a frame goes through
the backbone once, and a clip takes its neighbour frames' features from the crops already computed for them
(the crop of that frame overlapping the key crop most, mapped into the key crop); --exact crops every frame
of every clip with the key box instead, as `diffpose test` does (T backbone passes per person and frame).
What reuse costs in AP and saves in time is measured in docs/speed.md.

Track ids come from matching each frame's boxes and poses to the live tracks (IoU and OKS, Hungarian); a
track unmatched for --max-age frames is retired. Outputs are staged beside their targets and moved into
place together only when the whole run succeeded (a failure or Ctrl-C leaves every previous output as it was):
--json (PoseTrack18, readable by `diffpose evaluate` and poseval), --coco (COCO keypoint results),
--render (mp4 with skeletons coloured by track id and a circle of radius = uncertainty at each joint) and
--render-frames (one PNG per frame; the folder is replaced whole, so one holding anything but PNGs is
refused). An output that is one of the inputs (INPUT, the model, --boxes, --detector's module file,
--detector-weights, the dataset root) or lies inside an input folder is refused before any work.

examples:
  diffpose infer clip.mp4 -c vitpose-b.pth --render clip_poses.mp4 --json clip.json     # finds the people itself
  diffpose infer clip.mp4 -c vitpose-b.pth --detector frcnn-r50 --detector-weights frcnn.pth --render out.mp4
  diffpose infer clip.mp4 -c runs/tiny/final.pt --detector mydet:detect --render clip_poses.mp4
  diffpose infer frames/ -c final.pt --boxes dets.json --detect-every 5 --json poses.json
  diffpose infer data/synthtrack/annotations/val/000049_mpii_test.json -c final.pt --boxes gt \\
      --steps 2 --ensemble 4 --json preds/000049_mpii_test.json
  diffpose infer clip.mp4 --onnx exported/tiny --boxes dets.json --json clip.json   # onnxruntime
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from diffpose.cli.args import (
    add_batch_size,
    add_checkpoint,
    add_device,
    add_progress,
    add_sampling,
    add_seed,
    checkpoint_from_args,
    note,
    number,
    sampling_from_args,
    warn_unused_sampling,
)
from diffpose.data.detections import check_dropped
from diffpose.errors import DiffPoseError
from diffpose.inference import (
    CallableDetector,
    CocoResultsWriter,
    DetectionFileBoxes,
    FrameFolderRenderer,
    GroundTruthBoxes,
    PipelineOptions,
    PoseTrackWriter,
    Predictor,
    StreamingPipeline,
    Tracker,
    TrackerConfig,
    VideoRenderer,
    consume,
    load_detector,
    open_source,
)
from diffpose.inference.detector import DEFAULT_DETECTOR, DETECTORS, PersonDetector
from diffpose.inference.sources import PoseTrackSource, VideoFileSource
from diffpose.io_outputs import Outputs
from diffpose.io_utils import resolve_path

CPU_DETECTOR = "frcnn-mobilenet"  # the built-in detector on the CPU unless --detector names another
BUILTIN_MIN_SCORE = 0.5  # the built-in detector's score threshold unless --min-box-score says otherwise
GPU_FRAMES_PER_CALL = 4  # frames the built-in detector takes per call on a GPU (one on the CPU: no faster batched)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="video file, folder of frames or PoseTrack18 JSON file")
    add_checkpoint(p, required=False, help="a diffpose checkpoint (final.pt), any model kind, or a published ViTPose "
                   "checkpoint (mmpose .pth, transformers folder or .safetensors); or give --onnx")
    p.add_argument("--onnx", type=Path, metavar="DIR", help="run the graphs of `diffpose export --onnx DIR` with "
                   "onnxruntime instead of a checkpoint with PyTorch")
    p.add_argument("--root", help="dataset root for a PoseTrack JSON INPUT (default: the JSON's grandparent's parent)")
    src = p.add_argument_group("person boxes")
    src.add_argument("--boxes", metavar="DET.json|gt", help="detection file, or 'gt' for the annotations")
    src.add_argument("--detector", metavar="NAME|MODULE:FUNCTION", help="a built-in detector ("
                     f"{', '.join(m.name for m in DETECTORS)}) or your Python detector function (see above)")
    src.add_argument("--detector-weights", type=Path, metavar="FILE", help="the built-in detector's COCO weights "
                     "(torchvision's .pth) from a file instead of torchvision's download and cache")
    src.add_argument("--min-box-score", type=number(float, 0, 1),
                     help=f"drop boxes scoring below this (default: {BUILTIN_MIN_SCORE} for the built-in detector, "
                     "0 otherwise)")
    src.add_argument("--detect-every", type=number(int, 1), default=1, metavar="N",
                     help="consult the box source every N frames, propagate in between (default 1)")
    src.add_argument("--no-propagate", action="store_true", help="frames without boxes stay empty")
    src.add_argument("--propagate-score", type=number(float), default=0.2,
                     help="joints scoring below this do not shape a propagated box (default 0.2)")
    add_sampling(p)
    model = p.add_argument_group("model")
    add_batch_size(model)
    add_device(model)
    add_seed(model)
    reuse = model.add_mutually_exclusive_group()
    reuse.add_argument("--reuse", dest="reuse", action="store_true", default=True,
                       help="reuse backbone features across overlapping clips (default)")
    reuse.add_argument("--exact", dest="reuse", action="store_false",
                       help="crop every frame of every clip with its key box (5 backbone passes per person-frame)")
    model.add_argument("--reuse-iou", type=number(float, 0, 1, lo_open=True), default=0.5,
                       help="a neighbour frame's crop is reused when its region overlaps the key crop's with "
                       "IoU >= this (default 0.5); otherwise it is cropped anew")
    model.add_argument("--threads", type=number(int, 1),
                       help="CPU threads for PyTorch / onnxruntime (default: theirs, one per core, the fastest "
                       "on a quiet machine; on a shared or busy machine --threads 1 is faster, see docs/speed.md)")
    model.add_argument("--max-age", type=number(int, 0), default=30,
                       help="frames before a lost track is retired (default 30)")
    out = p.add_argument_group("outputs")
    out.add_argument("--json", type=Path, metavar="OUT.json", help="PoseTrack18 JSON with track ids")
    out.add_argument("--coco", type=Path, metavar="OUT.json", help="COCO keypoint results JSON")
    out.add_argument("--render", type=Path, metavar="OUT.mp4", help="rendered video (mp4v)")
    out.add_argument("--render-frames", type=Path, metavar="DIR", help="rendered frames as DIR/<index>.png")
    out.add_argument("--render-score", type=number(float), default=0.2, help="joints below this score are drawn faint")
    out.add_argument("--fps", type=number(float, 0, lo_open=True),
                     help="frame rate of --render for folder/PoseTrack input (default 25; a video keeps its own)")
    add_progress(p)


def _inputs(args: argparse.Namespace) -> list[Path]:
    """Everything the run reads: INPUT, the model, --boxes, --detector's module source, --detector-weights and
    the dataset root of a PoseTrack JSON INPUT (--root, or ROOT in ROOT/annotations/<split>/<seq>.json)."""
    model = Path(args.checkpoint) if args.checkpoint is not None else Path(args.onnx)
    given = [Path(args.input), model] + ([Path(args.boxes)] if args.boxes not in (None, "gt") else [])
    if _user_detector(args):
        origin = _module_file(args.detector.partition(":")[0])
        if origin is not None:
            given.append(origin)
    if args.detector_weights is not None:
        given.append(Path(args.detector_weights))
    if args.root is not None:
        given.append(Path(args.root))
    elif Path(args.input).suffix.lower() == ".json":  # ROOT/annotations/<split>/<seq>.json: the dataset is an input
        given.append(resolve_path(args.input).parents[2])
    return given


def _module_file(name: str) -> Path | None:
    """The source file of the module ``name``, found without importing it (None when it is not found: loading
    the detector then says why)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin not in ("built-in", "frozen") else None


def _stage_outputs(args: argparse.Namespace, outputs: Outputs) -> dict[str, Path]:
    """Check every output against the inputs and each other, before any work; the staged paths to write to."""
    named = {"json": args.json, "coco": args.coco, "render": args.render, "render_frames": args.render_frames}
    if all(path is None for path in named.values()):
        raise DiffPoseError("nothing to write: give --json, --coco, --render and/or --render-frames")
    staged = {}
    for key, path in named.items():
        if path is None:
            continue
        flag = "--" + key.replace("_", "-")
        staged[key] = (outputs.folder(path, owned=("*.png",), flag=flag) if key == "render_frames"
                       else outputs.file(path, flag=flag))
    return staged


def _check_choices(args: argparse.Namespace) -> None:
    """The options that exclude or need each other (single values were checked while parsing)."""
    if (args.checkpoint is None) == (args.onnx is None):
        raise DiffPoseError("give either -c/--checkpoint CKPT or --onnx DIR")
    if args.boxes is not None and args.detector is not None:
        raise DiffPoseError("give either --boxes or --detector, not both")
    if args.detector_weights is not None and (args.boxes is not None or _user_detector(args)):
        raise DiffPoseError("--detector-weights is for the built-in detector; it cannot go with --boxes or a "
                            "MODULE:FUNCTION detector")


def _user_detector(args: argparse.Namespace) -> bool:
    return args.detector is not None and ":" in args.detector


def _box_provider(args: argparse.Namespace, source: Any, device: Any) -> Any:
    """Where the person boxes come from: the annotations, a detection file, the user's detector or the built-in
    one (on ``device``; the lighter model on the CPU unless --detector names one)."""
    min_score = args.min_box_score
    if args.boxes == "gt":
        if not isinstance(source, PoseTrackSource):
            raise DiffPoseError("--boxes gt needs annotations: give a PoseTrack18 JSON file as INPUT", args.input)
        if min_score is not None:
            note("infer", "--min-box-score does not apply to annotation boxes (they have no score); ignored")
        return GroundTruthBoxes()
    if args.boxes is not None:
        provider = DetectionFileBoxes(args.boxes, min_score or 0.0)
        check_dropped(args.boxes, provider.total, provider.kept, provider.dropped, "infer")  # all dropped: an error
        return provider
    if _user_detector(args):
        return load_detector(args.detector, min_score or 0.0)
    name = args.detector or (DEFAULT_DETECTOR if torch.device(device).type == "cuda" else CPU_DETECTOR)
    cuda = torch.device(device).type == "cuda"
    return PersonDetector(name, args.detector_weights, device=device,
                          min_score=BUILTIN_MIN_SCORE if min_score is None else min_score,
                          progress=not args.no_progress, frames_per_call=GPU_FRAMES_PER_CALL if cuda else 1)


def _predictor(args: argparse.Namespace) -> Predictor:
    settings = dict(seed=args.seed, batch_size=args.batch_size, **sampling_from_args(args))
    if args.onnx is not None:
        predictor = Predictor.from_onnx(args.onnx, threads=args.threads, **settings)
    else:
        predictor = Predictor.from_checkpoint(args.checkpoint, args.device, **settings)
    warn_unused_sampling(args, predictor.samples)
    return predictor


def run(args: argparse.Namespace) -> int:
    args.checkpoint = checkpoint_from_args(args)
    _check_choices(args)
    with Outputs(_inputs(args)) as outputs:  # every output lands when the run succeeded, or none changes
        return _run(args, _stage_outputs(args, outputs), outputs)


def _checked(results: Iterator[Any], provider: Any) -> Iterator[Any]:
    """The pipeline's results, then the box source's own end-of-run check (a detector whose every box fell below
    --min-box-score is an error, as a detection file is), before any output is committed."""
    yield from results
    if isinstance(provider, CallableDetector):
        provider.check_kept()


def _run(args: argparse.Namespace, staged: dict[str, Path], outputs: Outputs) -> int:
    source = open_source(args.input, args.root, args.fps)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    predictor = _predictor(args)
    provider = _box_provider(args, source, predictor.device)
    rendering = args.render is not None or args.render_frames is not None
    options = PipelineOptions(detect_every=args.detect_every, propagate=not args.no_propagate,
                              propagate_min_score=args.propagate_score, keep_images=rendering, reuse=args.reuse,
                              reuse_min_iou=args.reuse_iou)
    pipeline = StreamingPipeline(predictor, provider, Tracker(TrackerConfig(max_age=args.max_age)), options)
    sinks = []
    if "json" in staged:
        sinks.append(PoseTrackWriter(staged["json"], source.name, source.video, model_layout=predictor.layout))
    if "coco" in staged:
        sinks.append(CocoResultsWriter(staged["coco"], layout=predictor.layout))
    if "render" in staged:
        sinks.append(VideoRenderer(staged["render"], source.fps, layout=predictor.layout, min_score=args.render_score,
                                   shown=args.render))
    if "render_frames" in staged:
        sinks.append(FrameFolderRenderer(staged["render_frames"], layout=predictor.layout,
                                         min_score=args.render_score, shown=args.render_frames))
    results = tqdm(_checked(pipeline.run(source), provider), total=source.num_frames, unit="frame", desc="infer",
                   disable=args.no_progress, file=sys.stderr)
    written = consume(results, sinks, outputs)  # commits only when every sink closed fine
    stats = pipeline.stats
    print(f"{stats.frames} frames, {stats.persons} persons ({stats.propagated_persons} from propagated boxes), "
          f"{len(stats.track_ids)} track ids, {stats.fps:.2f} frames/s ({predictor.estimator.kind}, "
          f"{predictor.layout.name} joints, "
          f"{predictor.sampling_summary()}, {'onnxruntime' if args.onnx is not None else predictor.device})")
    print(f"person boxes from {provider.name} on {stats.provider_frames} frames")
    if stats.persons:
        how = "feature reuse" if pipeline.reuse else "exact crops"
        print(f"{stats.backbone_crops / stats.persons:.2f} backbone passes per person-frame ({how})")
    if stats.dropped_boxes:
        print(f"warning: dropped {stats.dropped_boxes} boxes (not finite, under 1 pixel or over 10 frame sizes wide "
              "or high, or no area inside the image)")
    if isinstance(source, VideoFileSource) and source.num_frames and stats.frames < source.num_frames:
        print(f"warning: decoded {stats.frames} of the {source.num_frames} frames the container reports "
              "(truncated or partly corrupt video?)")
    if isinstance(provider, DetectionFileBoxes) and provider.frames_matched == 0:
        print(f"warning: no frame matched an image_id of {args.boxes} (for a video or folder, image_id is the 0-based "
              "frame index)")
    for path in written:
        print(f"wrote {path}")
    return 0
