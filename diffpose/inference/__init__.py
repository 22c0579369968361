"""Video in, poses out: a predictor outside the ``nn.Module``, streaming over a video, tracking, outputs.

Python API::

    from diffpose.inference import (DetectionFileBoxes, PipelineOptions, Predictor, StreamingPipeline,
                                     open_source)

    predictor = Predictor.from_checkpoint("runs/tiny/final.pt", device="cpu", steps=2, ensemble=4)
    pipeline = StreamingPipeline(predictor, DetectionFileBoxes("dets.json"))
    for result in pipeline.run(open_source("video.mp4")):   # one FrameResult per frame, in order
        for person in result.persons:
            person.keypoints, person.scores, person.uncertainty, person.box, person.track_id

Modules: :mod:`~diffpose.inference.sources` (video file, frame folder, PoseTrack sequence),
:mod:`~diffpose.inference.boxes` (box providers, propagation), :class:`Predictor` (from :mod:`diffpose.estimators`),
:mod:`~diffpose.inference.pipeline` (the frame window), :mod:`~diffpose.inference.tracking`,
:mod:`~diffpose.inference.outputs` (PoseTrack18 / COCO files), :mod:`~diffpose.inference.render`.
:mod:`~diffpose.inference.detector` (the built-in torchvision person detector, ``PersonDetector``) is not
imported here, because importing torchvision takes another 1.5 to 2 s: ``from diffpose.inference.detector import
PersonDetector``.
"""

from diffpose.estimators import PersonPose, Predictor
from diffpose.inference.boxes import (
    Boxes,
    CallableDetector,
    DetectionFileBoxes,
    GroundTruthBoxes,
    load_detector,
    propagate_boxes,
    sanitize_boxes,
)
from diffpose.inference.outputs import CocoResultsWriter, PoseTrackWriter, consume, person_record
from diffpose.inference.pipeline import FrameResult, PipelineOptions, PipelineStats, StreamingPipeline
from diffpose.inference.render import FrameFolderRenderer, VideoRenderer, draw_poses, track_colour
from diffpose.inference.sources import (
    FolderSource,
    FrameSource,
    PoseTrackSource,
    SourceFrame,
    VideoFileSource,
    open_source,
)
from diffpose.inference.tracking import Tracker, TrackerConfig, box_iou, identity_switches, match_to_ground_truth

__all__ = [
    "Boxes", "CallableDetector", "CocoResultsWriter", "DetectionFileBoxes", "FolderSource", "FrameFolderRenderer",
    "FrameResult", "FrameSource", "GroundTruthBoxes", "PersonPose", "PipelineOptions", "PipelineStats",
    "PoseTrackSource", "PoseTrackWriter", "Predictor", "SourceFrame", "StreamingPipeline", "Tracker",
    "TrackerConfig", "VideoFileSource", "VideoRenderer", "box_iou", "consume", "draw_poses", "identity_switches",
    "load_detector", "match_to_ground_truth", "open_source", "person_record", "propagate_boxes", "sanitize_boxes",
    "track_colour",
]
