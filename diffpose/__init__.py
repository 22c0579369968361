"""diffpose: video-based multi-person 2D pose estimation with a spatio-temporal diffusion model.

After *DiffPose: SpatioTemporal Diffusion Model for Video-Based Human Pose Estimation* (Feng et al.,
ICCV 2023). Package map (dependencies point downwards only):

* ``diffpose.cli``        the ``diffpose`` command
* ``diffpose.inference``  predictor, tracking, video in / rendered video out
* ``diffpose.engine``     training loop, checkpoints, test runs
* ``diffpose.models``     ViT backbone, STRL, Pose-Decoder with LMSFI, single-frame baseline
* ``diffpose.diffusion``  noise schedule, DDIM sampler, losses (the network knows nothing of these)
* ``diffpose.data``       typed records, PoseTrack/COCO readers and writers, clip dataset
* ``diffpose.synth``      SynthTrack, the procedural video benchmark
* ``diffpose.evaluation`` poseval-exact PoseTrack AP (no torch)
* ``diffpose.keypoints``, ``diffpose.config``  conventions and configuration

Symbol legend used in shape comments: ``B`` batch, ``T`` frames, ``J`` joints, ``C`` channels,
``h, w`` token grid, ``H, W`` heatmap or image height and width, ``S`` sampling steps,
``K`` ensemble hypotheses (the paper's N). Coordinates are ``(x, y)`` pixels (see ``diffpose.keypoints``).
"""

__version__ = "0.1.0"
