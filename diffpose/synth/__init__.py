"""SynthTrack: a procedural multi-person video pose benchmark written in the PoseTrack18 format.

Articulated 3D-posed figures (PoseTrack18's 17 joints) walk, run, wave, jump, turn and bend over cluttered
procedural backgrounds under a moving camera; moving occluders, blur bursts and dropouts hide joints for a
few frames. The ground truth marks every joint that is hidden in the rendered pixels as occluded
(``keypoints_occluded``) while keeping its true position. No torch and no model imports here.

Entry points: :func:`generate` (a whole dataset, parallel over videos), :func:`simulate` (one video in
memory, with the canvas maps behind the occlusion flags) and :func:`make_preview` (a contact sheet).
"""

from diffpose.synth.generate import generate, labeled_frames, sequence_name, sequence_numbers
from diffpose.synth.presets import PRESETS, SynthPreset, get_preset
from diffpose.synth.preview import make_preview
from diffpose.synth.video import simulate

__all__ = [
    "PRESETS", "SynthPreset", "generate", "get_preset", "labeled_frames", "make_preview", "sequence_name",
    "sequence_numbers", "simulate",
]
