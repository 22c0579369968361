"""Batched box sources: a provider taking several frames per call gives what it gives frame by frame."""

from __future__ import annotations

import numpy as np

from diffpose.data.posetrack18 import read_posetrack18
from diffpose.inference import GroundTruthBoxes, PipelineOptions, PoseTrackSource, Predictor, StreamingPipeline
from tests.helpers import ASSETS


def test_a_provider_that_batches_frames_gives_the_per_frame_results(synth_small):
    """The built-in detector on a GPU takes several frames per call (``frames_per_call``, ``many``): the pipeline
    hands it the consulted frames in groups, and the results equal asking frame by frame."""

    class Batching:
        name = "batching"

        def __init__(self, per_call: int):
            self.frames_per_call, self.calls, self.inner = per_call, [], GroundTruthBoxes()

        def __call__(self, frame):
            self.calls.append([frame.index])
            return self.inner(frame)

        def many(self, frames):
            self.calls.append([f.index for f in frames])
            return [self.inner(f) for f in frames]

    val_json = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    runs = {}
    for per_call in (1, 3):
        provider = Batching(per_call)
        predictor = Predictor.from_checkpoint(ASSETS / "tiny_diffpose.pt", "cpu")
        pipeline = StreamingPipeline(predictor, provider, options=PipelineOptions(detect_every=2))
        results = list(pipeline.run(PoseTrackSource(val_json)))
        runs[per_call] = ([[p.keypoints for p in r.persons] for r in results], provider.calls)
    n = len(read_posetrack18(val_json).frames)
    consulted = list(range(0, n, 2))
    assert runs[1][1] == [[i] for i in consulted]
    assert runs[3][1] == [consulted[i:i + 3] for i in range(0, len(consulted), 3)]  # groups of 3 consulted frames
    for a, b in zip(runs[1][0], runs[3][0]):
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
