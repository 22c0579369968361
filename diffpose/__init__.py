"""diffpose: video-based multi-person 2D pose estimation with a spatio-temporal diffusion model.

After *DiffPose: SpatioTemporal Diffusion Model for Video-Based Human Pose Estimation* (Feng et al.,
ICCV 2023). Package map, top layer first; a module imports only its own package and the layers below it,
never a sibling of its own layer, never inside a function (``tests/cross/test_layering.py`` checks this):

* ``diffpose.cli``          the ``diffpose`` command, one module per subcommand
* ``diffpose.inference``    video in, poses out: streaming, feature reuse, boxes, tracking, outputs, rendering
* ``diffpose.engine``       training loop, test runs  |  ``diffpose.export``  ONNX graphs
* ``diffpose.estimators``   each model kind's loss and prediction behind one interface; the predictor
* ``diffpose.models``       the networks (ViT, STRL, Pose-Decoder with LMSFI, heads)  |  ``diffpose.diffusion``
  noise schedule, DDIM sampler, ensemble, losses (the networks know nothing of these)
* ``diffpose.synth``        SynthTrack, the procedural video benchmark  |  ``diffpose.evaluation``  poseval-exact
  PoseTrack AP (neither reaches torch)
* ``diffpose.data``         typed records, PoseTrack/COCO readers and writers, clip dataset, crops
* ``diffpose.checkpoint``, ``diffpose.codec``  checkpoint files and devices; keypoints <-> heatmaps
* ``diffpose.config``       typed configuration and presets
* ``diffpose.config_dicts`` strict dict <-> dataclass conversion and overrides
* ``diffpose.config_ranges``, ``diffpose.io_utils``, ``diffpose.io_outputs``  value ranges and their checks; atomic
  writes; outputs staged and committed together
* ``diffpose.keypoints``, ``diffpose.errors``  conventions and the one-line error type

Symbol legend used in shape comments: ``B`` batch, ``T`` frames, ``J`` joints, ``C`` channels,
``h, w`` token grid, ``H, W`` heatmap or image height and width, ``S`` sampling steps,
``K`` ensemble hypotheses (the paper's N). Coordinates are ``(x, y)`` pixels (see ``diffpose.keypoints``).
"""

__version__ = "0.1.0"
